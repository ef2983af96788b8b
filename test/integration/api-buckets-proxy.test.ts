import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { isolateFromRealAws } from '../harness/aws-env.js';
import { startAwsProxy, type AwsProxy } from '../harness/aws-proxy.js';
import { localClientConfig } from '../harness/client-config.js';
import { apiBuckets, type ApiBuckets } from '../simulator/api-buckets.js';

// The proxy with API rate limits on, on real time: a burst of SDK calls meets the EC2 bucket,
// the SDK's retries (standard mode) meet the back-pressure, and with retries off the throttle
// surfaces as EC2 answers it.

isolateFromRealAws();
let proxy: AwsProxy;
let buckets: ApiBuckets;

beforeAll(async () => {
  buckets = apiBuckets();
  proxy = await startAwsProxy({ motoUrl: inject('motoUrl'), buckets });
});
afterAll(async () => {
  await proxy.stop();
});

interface Outcome {
  ok: boolean;
  attempts: number;
  error?: { name: string; status: number | undefined };
}

/** `count` DescribeInstances at once (no filter, no pagination: EC2's bucket of 50 at 10 a second). */
async function burst(count: number, maxAttempts: number): Promise<{ outcomes: Outcome[]; seconds: number }> {
  const ec2 = new EC2Client(localClientConfig(proxy.url, { maxAttempts }));
  const started = Date.now();
  const outcomes = await Promise.all(
    Array.from({ length: count }, () =>
      ec2.send(new DescribeInstancesCommand({})).then(
        (output): Outcome => ({ ok: true, attempts: output.$metadata.attempts ?? 1 }),
        (error: Error & { $metadata?: { attempts?: number; httpStatusCode?: number } }): Outcome => ({
          ok: false,
          attempts: error.$metadata?.attempts ?? 1,
          error: { name: error.name, status: error.$metadata?.httpStatusCode },
        }),
      ),
    ),
  );
  ec2.destroy();
  return { outcomes, seconds: (Date.now() - started) / 1000 };
}

const describeCalls = () => proxy.calls().filter((call) => call.service === 'ec2' && call.operation === 'DescribeInstances');

describe('the proxy with API rate limits', () => {
  it('throttles a burst of 150 DescribeInstances with RequestLimitExceeded, which the SDK retries until the bucket refills', async () => {
    proxy.resetCalls();
    buckets.reset();
    const { outcomes, seconds } = await burst(150, 5);

    const attempts = describeCalls();
    const throttled = attempts.filter((call) => call.status === 503);
    expect(throttled.length).toBeGreaterThan(0);
    // Every attempt the SDK made reached the proxy, and every one the proxy answered is counted
    // by the SDK: retries are the attempts beyond one per call.
    expect(attempts).toHaveLength(outcomes.reduce((sum, outcome) => sum + outcome.attempts, 0));
    expect(attempts.length).toBeGreaterThan(150);
    // Some calls succeeded on a later attempt: the retries met a refilled bucket.
    expect(outcomes.filter((outcome) => outcome.ok && outcome.attempts > 1).length).toBeGreaterThan(0);
    // The bucket bounds what succeeds: 50 at once plus 10 a second.
    const succeeded = attempts.filter((call) => call.status === 200).length;
    expect(succeeded).toBe(outcomes.filter((outcome) => outcome.ok).length);
    expect(succeeded).toBeGreaterThanOrEqual(50);
    expect(succeeded).toBeLessThanOrEqual(50 + Math.ceil(10 * seconds) + 1);
    // What did not get through surfaced as EC2's throttle, after all 5 attempts or an empty retry quota.
    for (const failed of outcomes.filter((outcome) => !outcome.ok)) {
      expect(failed.error).toEqual({ name: 'RequestLimitExceeded', status: 503 });
    }

    const [stats] = buckets.stats();
    expect(stats).toMatchObject({ bucket: 'ec2:DescribeInstances(unfiltered)', account: '123456789012', region: 'us-east-1' });
    expect(stats?.calls).toBe(attempts.length);
    expect(stats?.throttles).toBe(throttled.length);
    // The burst took more than the refill rate allows in a second: the 50-token capacity spent at
    // once. How much more depends on how fast this machine sends (it measured 4.8 to 6 of the 6 a
    // full bucket allows, 50 + 10, on a loaded 2-core machine): the bound is the bucket's, not a speed.
    expect(stats?.peakShare1s).toBeGreaterThan(1);
    expect(stats?.peakShare1s).toBeLessThanOrEqual(6);
  });

  it('surfaces RequestLimitExceeded (HTTP 503) to a client without retries, once per throttled call', async () => {
    proxy.resetCalls();
    buckets.reset();
    const { outcomes, seconds } = await burst(150, 1);

    const failed = outcomes.filter((outcome) => !outcome.ok);
    expect(failed.length).toBeGreaterThan(0);
    expect(new Set(failed.map((outcome) => `${outcome.error?.name} ${outcome.error?.status}`))).toEqual(new Set(['RequestLimitExceeded 503']));
    expect(outcomes.every((outcome) => outcome.attempts === 1)).toBe(true);
    const attempts = describeCalls();
    expect(attempts).toHaveLength(150);
    expect(attempts.filter((call) => call.status === 503)).toHaveLength(failed.length);
    const succeeded = outcomes.length - failed.length;
    expect(succeeded).toBeGreaterThanOrEqual(50);
    expect(succeeded).toBeLessThanOrEqual(50 + Math.ceil(10 * seconds) + 1);
  });
});

describe('the proxy without API rate limits (the default)', () => {
  it('throttles nothing', async () => {
    const plain = await startAwsProxy({ motoUrl: inject('motoUrl') });
    try {
      const ec2 = new EC2Client(localClientConfig(plain.url, { maxAttempts: 1 }));
      const results = await Promise.allSettled(Array.from({ length: 80 }, () => ec2.send(new DescribeInstancesCommand({}))));
      ec2.destroy();
      expect(results.filter((result) => result.status === 'rejected')).toEqual([]);
      expect(plain.calls().filter((call) => call.status === 503)).toEqual([]);
    } finally {
      await plain.stop();
    }
  });
});
