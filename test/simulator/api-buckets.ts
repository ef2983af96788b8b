import type { Place } from '../../shared/aws/place.js';

// The API rate limits of the services the product calls, as token buckets per account, region
// and bucket, so that throttling comes from the call pattern rather than a random fault rate.
// Every figure and its source is in test/simulator/README.md, section M.
//
// EC2 ("Request throttling for the Amazon EC2 API", EC2 developer guide): "each API is evaluated
// individually ... requests for other API are not affected", and "Limits are applied to individual
// API actions, not API action categories". So a bucket is one API action; its category only gives
// its figures. The other services publish a rate per API action (TPS) or nothing; those buckets
// hold one second of their rate.

/** A bucket's size and how fast it refills. */
export interface BucketFigures {
  /** Tokens a full bucket holds: the largest burst. */
  capacity: number;
  /** Tokens added back per second, up to the capacity (fractions accumulate). */
  refillPerSecond: number;
}

/** One AWS request, as the proxy sees it before answering. */
export interface BucketRequest {
  /** SigV4 signing name: `ec2`, `ssm`, `monitoring`, `scheduler`, `iam`, `sts`, `dynamodb` ... */
  service: string;
  /** API action name (`DescribeInstances`, `SendCommand`, `CreateSchedule` ...). */
  operation: string;
  /** The request body as sent (EC2's query form is read to tell an unfiltered DescribeInstances). */
  body?: string;
  /** The request's `authorization` header; its SigV4 scope names the region. */
  authorization?: string;
  /**
   * The account and region the caller acts in, when the caller knows it (the proxy maps each access
   * key to its account). The default `placeOf` charges the request there.
   */
  place?: Place;
}

/** The bucket a request draws from. */
export interface BucketChoice {
  /** `ec2:DescribeInstances`, `ec2:DescribeInstances(unfiltered)`, `ssm:SendCommand` ... */
  bucket: string;
  figures: BucketFigures;
}

/** What one bucket saw. */
export interface BucketStats {
  account: string;
  region: string;
  bucket: string;
  capacity: number;
  refillPerSecond: number;
  /** Requests that reached the bucket, throttled or not. */
  calls: number;
  /** Requests answered with the throttling error. */
  throttles: number;
  /** Most tokens taken within any 1 s and any 10 s (sliding windows). */
  peakTaken1s: number;
  peakTaken10s: number;
  /**
   * Peak consumption over the refill rate: tokens taken per second in the busiest 1 s (10 s) window,
   * divided by `refillPerSecond`. 1 means the caller used the whole sustained rate; a burst out of
   * a full bucket can exceed 1 for a while.
   */
  peakShare1s: number;
  peakShare10s: number;
  /** Tokens in the bucket now. */
  tokens: number;
}

/** The answer of {@link ApiBuckets.take}. */
export type TakeResult = { ok: true; bucket: string } | { ok: false; bucket: string; throttle: true };

/**
 * A token bucket on a clock of ms since the epoch. Refill is continuous: after `t` seconds an empty
 * bucket holds `min(capacity, t * refillPerSecond)` tokens (the EC2 page's fractional refill rates,
 * such as 0.1 a second, only make sense that way).
 */
export class TokenBucket {
  readonly figures: BucketFigures;
  #tokens: number;
  #at: number;
  #calls = 0;
  #throttles = 0;
  readonly #windows = [new SlidingCount(1_000), new SlidingCount(10_000)] as const;

  constructor(figures: BucketFigures, now: number) {
    if (!(figures.capacity > 0) || !(figures.refillPerSecond > 0)) {
      throw new Error(`a token bucket needs a positive capacity and refill rate, got ${JSON.stringify(figures)}`);
    }
    this.figures = { ...figures };
    this.#tokens = figures.capacity;
    this.#at = now;
  }

  /** Takes one token at `now` (ms); false when the bucket is empty (the request is throttled). */
  take(now: number): boolean {
    this.#refill(now);
    this.#calls += 1;
    if (this.#tokens < 1) {
      this.#throttles += 1;
      return false;
    }
    this.#tokens -= 1;
    for (const window of this.#windows) window.add(now);
    this.#taken.push(now);
    return true;
  }

  readonly #taken: number[] = [];

  /**
   * The smallest share s for which every token taken fits a bucket of s x capacity refilled at
   * s x the rate (starting full): the largest count taken between two takes over the capacity plus
   * the refill between them. 0.5 is what the product's pacer promises (register N13): half the
   * capacity as a burst, half the refill after it. Unlike a windowed rate, a burst that spends the
   * allowed capacity at once stays within it.
   */
  fittedShare(): number {
    const times = this.#taken;
    let best = 0;
    for (let i = 0; i < times.length; i++) {
      const from = times[i] as number;
      for (let j = i; j < times.length; j++) {
        const share = (j - i + 1) / (this.figures.capacity + (((times[j] as number) - from) / 1000) * this.figures.refillPerSecond);
        if (share > best) best = share;
      }
    }
    return best;
  }

  /** Tokens in the bucket at `now`. */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  get calls(): number {
    return this.#calls;
  }

  get throttles(): number {
    return this.#throttles;
  }

  /** Most tokens taken within any window of 1 s (`1s`) or 10 s (`10s`). */
  peakTaken(window: '1s' | '10s'): number {
    return this.#windows[window === '1s' ? 0 : 1].peak;
  }

  /** {@link peakTaken} per second of the window, over the refill rate. */
  peakShare(window: '1s' | '10s'): number {
    const seconds = window === '1s' ? 1 : 10;
    return this.peakTaken(window) / seconds / this.figures.refillPerSecond;
  }

  #refill(now: number): void {
    // Real time may step back (a clock correction); a bucket never loses tokens to it.
    const elapsedMs = Math.max(0, now - this.#at);
    this.#tokens = Math.min(this.figures.capacity, this.#tokens + (elapsedMs / 1000) * this.figures.refillPerSecond);
    this.#at = Math.max(this.#at, now);
  }
}

/** Counts events in a sliding window and keeps the highest count any window held. */
class SlidingCount {
  readonly #windowMs: number;
  readonly #times: number[] = [];
  #head = 0;
  peak = 0;

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** An event at `at` (ms); the window is (at - windowMs, at]. */
  add(at: number): void {
    this.#times.push(at);
    while (this.#head < this.#times.length && (this.#times[this.#head] as number) <= at - this.#windowMs) this.#head += 1;
    // Drop the consumed prefix now and then, so a long run does not keep every timestamp.
    if (this.#head > 4096) {
      this.#times.splice(0, this.#head);
      this.#head = 0;
    }
    this.peak = Math.max(this.peak, this.#times.length - this.#head);
  }
}

// ---------------------------------------------------------------------------------------------
// The figures (README section M gives the source of each).

/** EC2 request-token figures by category ("Request token bucket sizes and refill rates"). */
export const ec2Figures = {
  nonMutating: { capacity: 100, refillPerSecond: 20 },
  unfilteredNonMutating: { capacity: 50, refillPerSecond: 10 },
  mutating: { capacity: 50, refillPerSecond: 5 },
  /** An "uncategorized action" with its own figures on the EC2 page. */
  associateIamInstanceProfile: { capacity: 100, refillPerSecond: 5 },
} as const satisfies Record<string, BucketFigures>;

/** EC2's "Unfiltered and unpaginated non-mutating actions". */
const ec2UnfilteredActions = new Set([
  'DescribeInstances',
  'DescribeInstanceStatus',
  'DescribeNetworkInterfaces',
  'DescribeSecurityGroups',
  'DescribeSnapshots',
  'DescribeSpotInstanceRequests',
  'DescribeVolumes',
]);

/** EC2 uncategorized actions with their own figures, among the ones the product or its tests call. */
const ec2OwnFigures: Record<string, BucketFigures> = {
  AssociateIamInstanceProfile: ec2Figures.associateIamInstanceProfile,
  DisassociateIamInstanceProfile: { capacity: 100, refillPerSecond: 5 },
  CreateTags: { capacity: 100, refillPerSecond: 10 },
  DeleteTags: { capacity: 100, refillPerSecond: 10 },
  // The request bucket; RunInstances, StartInstances, StopInstances and TerminateInstances also
  // have a resource bucket (per instance), which is not modelled.
  RunInstances: { capacity: 5, refillPerSecond: 2 },
  StartInstances: { capacity: 5, refillPerSecond: 2 },
  TerminateInstances: { capacity: 100, refillPerSecond: 5 },
};

/** Per-second rates as one-second buckets: `rate` tokens, refilled at `rate` a second. */
function perSecond(rate: number): BucketFigures {
  return { capacity: rate, refillPerSecond: rate };
}

/**
 * Systems Manager: AWS publishes no figures for these APIs (README N6). Assumed: a steady rate per
 * API with a burst of twice that.
 */
export const ssmFigures: Record<string, BucketFigures> = {
  SendCommand: { capacity: 10, refillPerSecond: 5 },
  DescribeInstanceInformation: { capacity: 20, refillPerSecond: 10 },
  GetCommandInvocation: { capacity: 40, refillPerSecond: 20 },
  ListCommandInvocations: { capacity: 20, refillPerSecond: 10 },
};

/** EventBridge Scheduler request rates, in the regions the quotas page lists with 1,000. */
const schedulerRegionsAt1000 = new Set([
  'us-east-1',
  'us-east-2',
  'us-west-2',
  'ap-northeast-1',
  'ap-south-1',
  'ap-southeast-1',
  'ap-southeast-2',
  'eu-central-1',
  'eu-west-1',
  'eu-west-2',
  'sa-east-1',
]);

function schedulerFigures(operation: string, region: string): BucketFigures | undefined {
  if (operation !== 'CreateSchedule' && operation !== 'DeleteSchedule') return undefined;
  return perSecond(schedulerRegionsAt1000.has(region) ? 1_000 : 250);
}

/** CloudWatch per-API TPS quotas. */
export const cloudWatchFigures: Record<string, BucketFigures> = {
  GetMetricData: perSecond(50),
  PutMetricAlarm: perSecond(3),
  DeleteAlarms: perSecond(3),
  DescribeAlarms: perSecond(9),
};

/** IAM (account-wide, figures unpublished: assumed, README N9). */
export const iamFigures: Record<string, BucketFigures> = {
  AttachRolePolicy: { capacity: 10, refillPerSecond: 5 },
  GetInstanceProfile: { capacity: 40, refillPerSecond: 20 },
  ListAttachedRolePolicies: { capacity: 40, refillPerSecond: 20 },
};

/** STS (figures unpublished: assumed, README N10). */
export const stsFigures: Record<string, BucketFigures> = {
  AssumeRole: { capacity: 100, refillPerSecond: 50 },
};

/**
 * Whether an EC2 query-protocol request names no filter and no pagination: no `Filter.N.*`, no
 * `MaxResults`, no `NextToken`. Instance ids (`InstanceId.N`) are not a filter on the EC2 page's
 * reading, which links "filter" to the `--filters` option (README N3).
 */
export function isUnfilteredAndUnpaginated(form: URLSearchParams): boolean {
  for (const key of form.keys()) {
    if (key.startsWith('Filter.') || key === 'MaxResults' || key === 'NextToken') return false;
  }
  return true;
}

function ec2Bucket(operation: string, body: string): BucketChoice {
  const own = ec2OwnFigures[operation];
  if (own) return { bucket: `ec2:${operation}`, figures: own };
  const nonMutating = /^(Describe|List|Search|Get)/.test(operation);
  if (!nonMutating) return { bucket: `ec2:${operation}`, figures: ec2Figures.mutating };
  if (ec2UnfilteredActions.has(operation) && isUnfilteredAndUnpaginated(new URLSearchParams(body))) {
    return { bucket: `ec2:${operation}(unfiltered)`, figures: ec2Figures.unfilteredNonMutating };
  }
  return { bucket: `ec2:${operation}`, figures: ec2Figures.nonMutating };
}

/**
 * The bucket a request draws from in `region`, or undefined for an API with no bucket here
 * (DynamoDB on-demand, SNS, Lambda, and every API the product does not call).
 */
export function bucketFor(request: BucketRequest, region: string): BucketChoice | undefined {
  const { service, operation } = request;
  const pick = (figures: BucketFigures | undefined): BucketChoice | undefined =>
    figures ? { bucket: `${service}:${operation}`, figures } : undefined;
  switch (service) {
    case 'ec2':
      return ec2Bucket(operation, request.body ?? '');
    case 'ssm':
      return pick(ssmFigures[operation]);
    case 'scheduler':
      return pick(schedulerFigures(operation, region));
    case 'monitoring':
      return pick(cloudWatchFigures[operation]);
    case 'iam':
      return pick(iamFigures[operation]);
    case 'sts':
      return pick(stsFigures[operation]);
    default:
      return undefined;
  }
}

/** moto's default account, which every request belongs to unless `placeOf` says otherwise. */
export const motoDefaultAccount = '123456789012';

/** The region of a SigV4 `authorization` header's credential scope. */
export function signingRegion(authorization: string | undefined): string | undefined {
  return authorization ? /Credential=[^/]+\/\d{8}\/([^/]+)\/[^/]+\/aws4_request/.exec(authorization)?.[1] : undefined;
}

/** Options of {@link apiBuckets}. */
export interface ApiBucketsOptions {
  /**
   * The time buckets refill by, in ms since the epoch. Default `Date.now()`, which is the simulated
   * time while a {@link SimulatedClock} is installed (it shifts `Date`) and real time otherwise.
   */
  now?: () => number;
  /**
   * The account and region a request is charged to. Default: the request's `place` when it has one,
   * else moto's default account (123456789012) and the request's signing region (us-east-1 when it
   * has none).
   */
  placeOf?: (request: BucketRequest) => Place;
  /** Replaces the figures of some buckets, by bucket name (`ec2:DescribeInstances`, ...). */
  figures?: Readonly<Record<string, BucketFigures>>;
}

/** The token buckets of every account and region a run touched. */
export interface ApiBuckets {
  /** Takes a token for the request, if its API has a bucket; undefined when it has none. */
  take(request: BucketRequest): TakeResult | undefined;
  /** What every bucket saw, in the order the buckets were first used. */
  stats(): BucketStats[];
  /**
   * The peak share of each bucket (README N1), the highest over every account and region:
   * `{ "ec2:DescribeInstances": 0.4, ... }`. Window default `10s`; `bucket`: the share of the
   * bucket the calls fit in ({@link TokenBucket.fittedShare}).
   */
  peakBucketShare(window?: '1s' | '10s' | 'bucket'): Record<string, number>;
  /** Forgets every bucket: all full again, counts at zero. */
  reset(): void;
}

/**
 * Token buckets per (account, region, bucket), created full on first use.
 *
 * @example
 * const buckets = apiBuckets({ now: () => clock.now() });
 * const proxy = await startAwsProxy({ motoUrl, buckets });
 * // ... a burst ...
 * buckets.peakBucketShare(); // { 'ec2:DescribeInstances': 0.35, 'ssm:SendCommand': 0.5 }
 */
export function apiBuckets(options: ApiBucketsOptions = {}): ApiBuckets {
  const now = options.now ?? (() => Date.now());
  const placeOf =
    options.placeOf ??
    ((request: BucketRequest): Place => request.place ?? { account: motoDefaultAccount, region: signingRegion(request.authorization) ?? 'us-east-1' });
  const buckets = new Map<string, { place: Place; bucket: string; tokens: TokenBucket }>();

  return {
    take(request) {
      const place = placeOf(request);
      const choice = bucketFor(request, place.region);
      if (!choice) return undefined;
      const key = `${place.account}/${place.region}/${choice.bucket}`;
      let entry = buckets.get(key);
      if (!entry) {
        const figures = options.figures?.[choice.bucket] ?? choice.figures;
        entry = { place, bucket: choice.bucket, tokens: new TokenBucket(figures, now()) };
        buckets.set(key, entry);
      }
      return entry.tokens.take(now()) ? { ok: true, bucket: choice.bucket } : { ok: false, bucket: choice.bucket, throttle: true };
    },
    stats() {
      const at = now();
      return [...buckets.values()].map(({ place, bucket, tokens }) => ({
        account: place.account,
        region: place.region,
        bucket,
        capacity: tokens.figures.capacity,
        refillPerSecond: tokens.figures.refillPerSecond,
        calls: tokens.calls,
        throttles: tokens.throttles,
        peakTaken1s: tokens.peakTaken('1s'),
        peakTaken10s: tokens.peakTaken('10s'),
        peakShare1s: tokens.peakShare('1s'),
        peakShare10s: tokens.peakShare('10s'),
        tokens: tokens.tokens(at),
      }));
    },
    peakBucketShare(window = '10s') {
      const shares: Record<string, number> = {};
      for (const { bucket, tokens } of buckets.values()) shares[bucket] = Math.max(shares[bucket] ?? 0, window === 'bucket' ? tokens.fittedShare() : tokens.peakShare(window));
      return shares;
    },
    reset() {
      buckets.clear();
    },
  };
}
