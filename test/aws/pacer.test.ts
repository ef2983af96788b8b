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

  it('refuses a share outside (0, 1] and knows the throttling errors', () => {
    expect(() => new Pacer({ share: 0 })).toThrow(RangeError);
    expect(() => new Pacer({ share: 1.5 })).toThrow(/pacing share must be in \(0, 1\]/);
    expect(isThrottling(Object.assign(new Error('x'), { name: 'RequestLimitExceeded' }))).toBe(true);
    expect(isThrottling(Object.assign(new Error('x'), { name: 'ThrottlingException' }))).toBe(true);
    expect(isThrottling(Object.assign(new Error('x'), { name: 'AccessDenied' }))).toBe(false);
  });
});
