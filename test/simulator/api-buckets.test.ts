import { afterEach, describe, expect, it } from 'vitest';
import { apiBuckets, bucketFor, signingRegion, TokenBucket, type BucketRequest } from './api-buckets.js';
import { SimulatedClock } from './clock.js';

const authorization = (region: string, service: string) =>
  `AWS4-HMAC-SHA256 Credential=testing/20260101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`;

const ec2 = (operation: string, body = `Action=${operation}&Version=2016-11-15`, region = 'us-east-1'): BucketRequest => ({
  service: 'ec2',
  operation,
  body,
  authorization: authorization(region, 'ec2'),
});
const filteredDescribe = ec2('DescribeInstances', 'Action=DescribeInstances&Filter.1.Name=instance-id&Filter.1.Value.1=i-0abc');
const unfilteredDescribe = ec2('DescribeInstances');

/** Takes `count` tokens; returns how many were granted. */
function burst(buckets: ReturnType<typeof apiBuckets>, request: BucketRequest, count: number): number {
  let granted = 0;
  for (let n = 0; n < count; n += 1) if (buckets.take(request)?.ok) granted += 1;
  return granted;
}

describe('a token bucket', () => {
  it('serves its capacity at once, then throttles until time refills it at its rate', () => {
    let now = 0;
    const buckets = apiBuckets({ now: () => now });

    // Describe* (filtered): 100 tokens, 20 a second.
    expect(burst(buckets, filteredDescribe, 130)).toBe(100);
    now += 1_000;
    expect(burst(buckets, filteredDescribe, 30)).toBe(20);
    now += 500;
    expect(burst(buckets, filteredDescribe, 30)).toBe(10);
    // An idle minute refills it to its capacity, not beyond.
    now += 60_000;
    expect(burst(buckets, filteredDescribe, 150)).toBe(100);

    const [stats] = buckets.stats();
    expect(stats).toMatchObject({ account: '123456789012', region: 'us-east-1', bucket: 'ec2:DescribeInstances', calls: 340, throttles: 110 });
  });

  it('keeps fractional refill: 0.1 tokens a second gives one token after 10 s', () => {
    const bucket = new TokenBucket({ capacity: 1, refillPerSecond: 0.1 }, 0);
    expect(bucket.take(0)).toBe(true);
    expect(bucket.take(9_000)).toBe(false);
    expect(bucket.take(10_000)).toBe(true);
  });

  it('refuses figures that would never hold a token', () => {
    expect(() => new TokenBucket({ capacity: 0, refillPerSecond: 1 }, 0)).toThrow(/positive capacity/);
  });

  it('refills by the simulated clock (through Date.now, while the clock is installed), not only by real time', () => {
    const clock = new SimulatedClock().install();
    try {
      const buckets = apiBuckets();
      const realStart = performance.now();
      expect(burst(buckets, unfilteredDescribe, 60)).toBe(50);
      // Two simulated minutes: the 50-token bucket is full again, whatever little real time passed.
      clock.advance(120_000);
      expect(burst(buckets, unfilteredDescribe, 60)).toBe(50);
      // Two simulated seconds: 20 tokens at 10 a second, plus what the real time in between refilled.
      clock.advance(2_000);
      const realSeconds = (performance.now() - realStart) / 1000;
      const granted = burst(buckets, unfilteredDescribe, 60);
      expect(granted).toBeGreaterThanOrEqual(20);
      expect(granted).toBeLessThanOrEqual(20 + Math.ceil(realSeconds * 10));
    } finally {
      clock.uninstall();
    }
  });
});

describe('the EC2 buckets', () => {
  it('charges an unfiltered, unpaginated DescribeInstances to the smaller bucket (50 at 10 a second)', () => {
    let now = 0;
    const buckets = apiBuckets({ now: () => now });
    expect(burst(buckets, unfilteredDescribe, 80)).toBe(50);
    // The filtered call has its own, larger bucket, still full.
    expect(burst(buckets, filteredDescribe, 120)).toBe(100);
    now += 1_000;
    expect(burst(buckets, unfilteredDescribe, 30)).toBe(10);
    expect(buckets.stats().map((s) => [s.bucket, s.capacity, s.refillPerSecond])).toEqual([
      ['ec2:DescribeInstances(unfiltered)', 50, 10],
      ['ec2:DescribeInstances', 100, 20],
    ]);
  });

  it('counts a Filter, MaxResults or NextToken as filtered or paginated, and instance ids alone as neither', () => {
    const bucketOf = (body: string) => bucketFor(ec2('DescribeInstances', body), 'us-east-1')?.bucket;
    expect(bucketOf('Action=DescribeInstances&InstanceId.1=i-0abc&InstanceId.2=i-0def')).toBe('ec2:DescribeInstances(unfiltered)');
    expect(bucketOf('Action=DescribeInstances&Filter.1.Name=instance-id&Filter.1.Value.1=i-0abc')).toBe('ec2:DescribeInstances');
    expect(bucketOf('Action=DescribeInstances&MaxResults=1000')).toBe('ec2:DescribeInstances');
    expect(bucketOf('Action=DescribeInstances&NextToken=abc')).toBe('ec2:DescribeInstances');
    // DescribeIamInstanceProfileAssociations is not in the unfiltered subset: always the Describe* figures.
    expect(bucketFor(ec2('DescribeIamInstanceProfileAssociations'), 'us-east-1')).toEqual({
      bucket: 'ec2:DescribeIamInstanceProfileAssociations',
      figures: { capacity: 100, refillPerSecond: 20 },
    });
  });

  it('gives AssociateIamInstanceProfile its own figures (100 at 5) and other mutating actions 50 at 5', () => {
    expect(bucketFor(ec2('AssociateIamInstanceProfile'), 'us-east-1')?.figures).toEqual({ capacity: 100, refillPerSecond: 5 });
    expect(bucketFor(ec2('ModifyInstanceAttribute'), 'us-east-1')?.figures).toEqual({ capacity: 50, refillPerSecond: 5 });
  });

  it('throttles one API without touching another one (buckets are per API action)', () => {
    const buckets = apiBuckets({ now: () => 0 });
    expect(burst(buckets, ec2('AssociateIamInstanceProfile'), 101)).toBe(100);
    expect(buckets.take(ec2('ModifyInstanceAttribute'))).toEqual({ ok: true, bucket: 'ec2:ModifyInstanceAttribute' });
    expect(buckets.take(ec2('AssociateIamInstanceProfile'))).toEqual({ ok: false, bucket: 'ec2:AssociateIamInstanceProfile', throttle: true });
  });
});

describe('buckets per account and region', () => {
  it('keeps one set of buckets per signing region and per account placeOf names', () => {
    const buckets = apiBuckets({
      now: () => 0,
      placeOf: (request) => ({ account: request.body?.includes('member') ? '111111111111' : '123456789012', region: signingRegion(request.authorization) ?? 'us-east-1' }),
    });
    expect(burst(buckets, unfilteredDescribe, 60)).toBe(50);
    expect(burst(buckets, ec2('DescribeInstances', 'Action=DescribeInstances', 'eu-west-1'), 60)).toBe(50);
    expect(burst(buckets, ec2('DescribeInstances', 'Action=DescribeInstances&Comment=member'), 60)).toBe(50);
    expect(buckets.stats().map((s) => `${s.account}/${s.region} ${s.calls}/${s.throttles}`)).toEqual([
      '123456789012/us-east-1 60/10',
      '123456789012/eu-west-1 60/10',
      '111111111111/us-east-1 60/10',
    ]);
  });
});

describe('the other services', () => {
  const request = (service: string, operation: string, region = 'us-east-1'): BucketRequest => ({
    service,
    operation,
    authorization: authorization(region, service),
  });

  it('has assumed SSM buckets, Scheduler and CloudWatch per-second quotas, and no bucket for DynamoDB or SNS', () => {
    expect(bucketFor(request('ssm', 'SendCommand'), 'us-east-1')?.figures).toEqual({ capacity: 10, refillPerSecond: 5 });
    expect(bucketFor(request('ssm', 'DescribeInstanceInformation'), 'us-east-1')?.figures).toEqual({ capacity: 20, refillPerSecond: 10 });
    expect(bucketFor(request('scheduler', 'CreateSchedule'), 'us-east-1')?.figures).toEqual({ capacity: 1_000, refillPerSecond: 1_000 });
    expect(bucketFor(request('scheduler', 'DeleteSchedule'), 'eu-north-1')?.figures).toEqual({ capacity: 250, refillPerSecond: 250 });
    expect(bucketFor(request('monitoring', 'GetMetricData'), 'us-east-1')?.figures).toEqual({ capacity: 50, refillPerSecond: 50 });
    expect(bucketFor(request('monitoring', 'PutMetricAlarm'), 'us-east-1')?.figures).toEqual({ capacity: 3, refillPerSecond: 3 });
    expect(bucketFor(request('iam', 'AttachRolePolicy'), 'us-east-1')?.bucket).toBe('iam:AttachRolePolicy');
    expect(bucketFor(request('sts', 'AssumeRole'), 'us-east-1')?.bucket).toBe('sts:AssumeRole');
    expect(bucketFor(request('dynamodb', 'PutItem'), 'us-east-1')).toBeUndefined();
    expect(bucketFor(request('sns', 'Publish'), 'us-east-1')).toBeUndefined();
    expect(apiBuckets().take(request('dynamodb', 'GetItem'))).toBeUndefined();
  });

  it('lets a test replace a bucket\'s figures by name', () => {
    const buckets = apiBuckets({ now: () => 0, figures: { 'ssm:SendCommand': { capacity: 2, refillPerSecond: 1 } } });
    expect(burst(buckets, request('ssm', 'SendCommand'), 5)).toBe(2);
  });
});

describe('peak bucket share', () => {
  it('is the busiest window\'s tokens per second over the refill rate, for 1 s and 10 s windows', () => {
    let now = 0;
    const buckets = apiBuckets({ now: () => now });
    // 10 calls a second for 30 s against a 20-a-second bucket: half its sustained rate.
    for (let n = 0; n < 300; n += 1) {
      buckets.take(filteredDescribe);
      now += 100;
    }
    expect(buckets.peakBucketShare('1s')).toEqual({ 'ec2:DescribeInstances': 0.5 });
    expect(buckets.peakBucketShare('10s')).toEqual({ 'ec2:DescribeInstances': 0.5 });

    // Then, after a minute idle, the whole bucket at once: 100 tokens in one second is 5 times the
    // refill rate over 1 s, and 100 tokens in 10 s is half of it.
    now += 60_000;
    expect(burst(buckets, filteredDescribe, 100)).toBe(100);
    const [stats] = buckets.stats();
    expect(stats).toMatchObject({ peakTaken1s: 100, peakTaken10s: 100, peakShare1s: 5, peakShare10s: 0.5, throttles: 0 });
    expect(buckets.peakBucketShare()).toEqual({ 'ec2:DescribeInstances': 0.5 });
  });

  it('counts tokens taken, not throttled attempts, and reports the highest share over every place', () => {
    let now = 0;
    const buckets = apiBuckets({ now: () => now });
    expect(burst(buckets, unfilteredDescribe, 200)).toBe(50);
    now += 10_000;
    expect(burst(buckets, ec2('DescribeInstances', 'Action=DescribeInstances', 'eu-west-1'), 10)).toBe(10);
    // us-east-1: 50 tokens in the busiest second over 10 a second; eu-west-1: 10 over 10.
    expect(buckets.peakBucketShare('1s')).toEqual({ 'ec2:DescribeInstances(unfiltered)': 5 });
    expect(buckets.stats().map((s) => [s.region, s.peakShare1s, s.throttles])).toEqual([
      ['us-east-1', 5, 150],
      ['eu-west-1', 1, 0],
    ]);
  });

  it('forgets everything on reset', () => {
    const buckets = apiBuckets({ now: () => 0 });
    burst(buckets, unfilteredDescribe, 60);
    buckets.reset();
    expect(buckets.stats()).toEqual([]);
    expect(burst(buckets, unfilteredDescribe, 60)).toBe(50);
  });
});

describe('the share of a bucket the calls fit in', () => {
  it('is 0.5 for half the capacity at once and half the refill after it, and grows with either', () => {
    const paced = new TokenBucket({ capacity: 100, refillPerSecond: 5 }, 0);
    for (let i = 0; i < 50; i++) paced.take(0);
    for (let i = 1; i <= 25; i++) paced.take(i * 400); // 2.5 a second for 10 s
    expect(paced.fittedShare()).toBeCloseTo(0.5, 2);

    const greedy = new TokenBucket({ capacity: 100, refillPerSecond: 5 }, 0);
    for (let i = 0; i < 80; i++) greedy.take(0);
    expect(greedy.fittedShare()).toBeCloseTo(0.8, 5);

    const steady = new TokenBucket({ capacity: 100, refillPerSecond: 5 }, 0);
    // 4 a second for 150 s: 600 calls in a bucket of s x 100 refilled at s x 5 for 149.75 s needs
    // s = 600 / 848.75; a longer run approaches 4 / 5.
    for (let i = 0; i < 600; i++) steady.take(i * 250);
    expect(steady.fittedShare()).toBeCloseTo(600 / (100 + 5 * 149.75), 5);
  });
});
