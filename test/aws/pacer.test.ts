import { describe, expect, it } from 'vitest';
import { accountBuckets, isThrottling, Pacer } from '../../shared/pacing/pacer.js';

function clock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('the pacer', () => {
  it('lets a container burst to half of a bucket, then refill at half its rate (default share)', () => {
    const time = clock();
    const pacer = new Pacer({ clock: time.now });
    const size = accountBuckets['ec2:associate-iam-instance-profile'];
    let went = 0;
    while (pacer.take('ec2:associate-iam-instance-profile').go) went++;
    expect(went).toBe(size.capacity / 2);
    const wait = pacer.take('ec2:associate-iam-instance-profile');
    expect(wait).toEqual({ go: false, waitMs: Math.ceil(1000 / (size.refillPerSecond / 2)) });
    time.advance(10_000);
    went = 0;
    while (pacer.take('ec2:associate-iam-instance-profile').go) went++;
    expect(went).toBe(10 * (size.refillPerSecond / 2));
  });

  it('splits the share across the reserved concurrency, so all containers together stay within it', () => {
    const time = clock();
    const pacers = Array.from({ length: 4 }, () => new Pacer({ clock: time.now, concurrency: 4 }));
    let calls = 0;
    // Each container calls again as soon as its pacer says (SendCommand's rate split four ways is
    // well under one call a second, so sampling whole seconds would undercount).
    while (time.now() < 60_000) {
      let soonest = Infinity;
      for (const pacer of pacers) {
        for (let pace = pacer.take('ssm:send-command'); ; pace = pacer.take('ssm:send-command')) {
          if (!pace.go) {
            soonest = Math.min(soonest, pace.waitMs);
            break;
          }
          calls++;
        }
      }
      time.advance(Math.min(soonest, 60_000 - time.now()));
    }
    const size = accountBuckets['ssm:send-command'];
    // The initial burst (half the capacity in all) plus at most half the refill for 60 s.
    expect(calls).toBeLessThanOrEqual(size.capacity / 2 + 60 * (size.refillPerSecond / 2));
    expect(calls).toBeGreaterThanOrEqual(59 * (size.refillPerSecond / 2));
  });

  it('halves its rate after a throttling error that reached it, and wins it back over minutes', () => {
    const time = clock();
    const pacer = new Pacer({ clock: time.now });
    const full = pacer.rate('scheduler:create-schedule');
    pacer.throttled('scheduler:create-schedule');
    expect(pacer.rate('scheduler:create-schedule')).toBe(full / 2);
    expect(pacer.take('scheduler:create-schedule').go).toBe(false);
    time.advance(5 * 60_000);
    expect(pacer.rate('scheduler:create-schedule')).toBe(full);
  });

  it('tells how long until n more tokens come at its rate, counting the ones there now', () => {
    const time = clock();
    const pacer = new Pacer({ clock: time.now });
    const bucket = 'ec2:associate-iam-instance-profile';
    // Half of 100 as a burst, refilled at half of 5 a second: 2.5 a second.
    expect(pacer.etaMs(bucket, 50)).toBe(0);
    expect(pacer.etaMs(bucket, 60)).toBe(4_000);
    for (let i = 0; i < 50; i++) expect(pacer.take(bucket).go).toBe(true);
    expect(pacer.etaMs(bucket, 1)).toBe(400);
    expect(pacer.etaMs(bucket, 40)).toBe(16_000);
    // An instance's share of a call for 50 instances.
    expect(pacer.etaMs('ssm:send-command', 1 / 50)).toBe(0);
    time.advance(2_000);
    expect(pacer.etaMs(bucket, 40)).toBe(14_000);
    // Asking takes nothing: the 5 tokens of the 2 s are still there.
    for (let i = 0; i < 5; i++) expect(pacer.take(bucket).go).toBe(true);
    expect(pacer.take(bucket).go).toBe(false);
  });

  it('agrees with the clock: after etaMs(n) has passed, n tokens can be taken (n within the bucket)', () => {
    const time = clock();
    const pacer = new Pacer({ clock: time.now });
    const bucket = 'ssm:send-command';
    while (pacer.take(bucket).go);
    // The container's SendCommand bucket holds 5 (half of 10): more never sit in it at once.
    for (const n of [1, 3, 5]) {
      time.advance(pacer.etaMs(bucket, n) - 1);
      expect(pacer.available(bucket), `${n} tokens 1 ms early`).toBeLessThan(n);
      time.advance(1);
      for (let i = 0; i < n; i++) expect(pacer.take(bucket).go, `token ${i + 1} of ${n}`).toBe(true);
    }
  });

  it('counts tokens promised to deferred work before the next estimate, until the refill has covered them', () => {
    const time = clock();
    const pacer = new Pacer({ clock: time.now });
    const bucket = 'ec2:associate-iam-instance-profile';
    while (pacer.take(bucket).go);
    // A first batch leaves 25 instances for later: 10 s of refill are theirs.
    expect(pacer.etaMs(bucket, 25)).toBe(10_000);
    pacer.promise(bucket, 25);
    // A second batch's first deferred instance comes after them.
    expect(pacer.etaMs(bucket, 1)).toBe(10_400);
    time.advance(4_000);
    expect(pacer.etaMs(bucket, 1)).toBe(6_400);
    // Once the promise is covered, only the bucket counts again.
    time.advance(6_000);
    expect(pacer.available(bucket)).toBe(25);
    expect(pacer.etaMs(bucket, 26)).toBe(400);
  });

  it('lets work that waits behind the promised tokens take none until the promise is covered; other work takes them', () => {
    const time = clock();
    const pacer = new Pacer({ clock: time.now });
    const bucket = 'ec2:associate-iam-instance-profile';
    while (pacer.take(bucket).go);
    pacer.promise(bucket, 10);
    time.advance(2_000);
    // 5 tokens have come: a new launch waits behind the 10 promised (4 s away) and one more.
    expect(pacer.take(bucket, 1, { afterPromised: true })).toEqual({ go: false, waitMs: 2_400 });
    // A returning message takes one of them.
    expect(pacer.take(bucket).go).toBe(true);
    time.advance(2_000);
    expect(pacer.take(bucket, 1, { afterPromised: true }).go).toBe(true);
  });

  it('estimates at its throttled rate after a throttle', () => {
    const time = clock();
    const pacer = new Pacer({ clock: time.now });
    pacer.throttled('ssm:send-command');
    // 5 a second x 0.5 share, halved: 1.25 a second.
    expect(pacer.etaMs('ssm:send-command', 5)).toBe(4_000);
  });

  it('refuses a share outside (0, 1] and knows the throttling errors', () => {
    expect(() => new Pacer({ share: 0 })).toThrow(RangeError);
    expect(() => new Pacer({ share: 1.5 })).toThrow(/pacing share must be in \(0, 1\]/);
    expect(isThrottling(Object.assign(new Error('x'), { name: 'RequestLimitExceeded' }))).toBe(true);
    expect(isThrottling(Object.assign(new Error('x'), { name: 'ThrottlingException' }))).toBe(true);
    expect(isThrottling(Object.assign(new Error('x'), { name: 'AccessDenied' }))).toBe(false);
  });
});
