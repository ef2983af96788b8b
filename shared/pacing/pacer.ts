/**
 * The product's share of an account's API token buckets, kept by each container.
 *
 * AWS throttles EC2 (and, by their quotas, Systems Manager, Scheduler, IAM) per account and region
 * with token buckets that every tool in the account shares: the Auto Scaling service, Terraform,
 * the workload itself. The product must never be the one that drains them. Each container keeps,
 * per bucket, a bucket of its own holding at most `share x capacity` tokens (a burst of at most
 * half the account's, by default) refilled at `share x refill / concurrency` per second, so that
 * `concurrency` containers together never exceed `share` of the refill rate. A call that finds no
 * token is not slept out: the caller is told how long to wait, and continues the rest of its batch
 * later (a scheduled continuation) when that wait does not fit in the invocation.
 *
 * On a throttling error that survived the SDK's retries, the container halves its rate for that
 * bucket (multiplicative decrease), and wins it back by 10% a minute (additive increase): someone
 * else in the account is using the bucket, and the product yields.
 */

/** An AWS bucket's published size: tokens it holds, and tokens it regains per second. */
export interface BucketSize {
  capacity: number;
  refillPerSecond: number;
}

/**
 * The account buckets the product's calls draw on, per API action (EC2 evaluates each action on
 * its own: register row N1), with the figures of the simulator's register (test/simulator/README.md),
 * which cites each one's source or says it is assumed.
 */
export const accountBuckets = {
  // N8: CloudWatch PutMetricAlarm, 3 transactions a second (CloudWatch service quotas), as a bucket
  // of one second's worth. A healthy instance gets its alarms (2-4 calls) paced by it.
  'monitoring:put-metric-alarm': { capacity: 3, refillPerSecond: 3 },
  // N2: EC2 non-mutating actions, 100 tokens at 20 a second.
  'ec2:describe': { capacity: 100, refillPerSecond: 20 },
  // N3: an unfiltered, unpaginated DescribeInstances draws from a smaller bucket, 50 at 10.
  'ec2:describe-instances-unfiltered': { capacity: 50, refillPerSecond: 10 },
  // N4: AssociateIamInstanceProfile, an uncategorized action: 100 tokens at 5 a second.
  'ec2:associate-iam-instance-profile': { capacity: 100, refillPerSecond: 5 },
  // N5: every other mutating EC2 action, 50 at 5.
  'ec2:mutating': { capacity: 50, refillPerSecond: 5 },
  // N9 (assumed, unverified: AWS publishes no figure): AttachRolePolicy 10 at 5 a second.
  'iam:attach-role-policy': { capacity: 10, refillPerSecond: 5 },
  // N6 (assumed, unverified: AWS publishes no figure): SendCommand 10 at 5 a second.
  'ssm:send-command': { capacity: 10, refillPerSecond: 5 },
  // N7: CreateSchedule 1,000 a second in 11 regions and 250 elsewhere, as a bucket of one
  // second's worth; the lower figure is used in every region (the pacer knows no region list).
  'scheduler:create-schedule': { capacity: 250, refillPerSecond: 250 },
} as const satisfies Record<string, BucketSize>;

export type BucketName = keyof typeof accountBuckets;

export interface PacerOptions {
  /** The product's share of each bucket, 0 < share <= 1 (default 0.5: half the refill, half the capacity). */
  share?: number;
  /** Containers that may run at once (the function's reserved concurrency): each takes 1/n of the share. */
  concurrency?: number;
  /** Milliseconds since some epoch; the Lambda's clock by default (tests pass a simulated one). */
  clock?: () => number;
  buckets?: Partial<Record<BucketName, BucketSize>>;
}

interface Local {
  tokens: number;
  at: number;
  capacity: number;
  /** The container's full rate, and the fraction of it in use after throttles. */
  rate: number;
  factor: number;
  throttledAt: number | undefined;
  taken: number;
  /** When the refill will have covered every token promised to deferred work ({@link Pacer.promise}); 0 for none. */
  promisedUntil: number;
}

/** What {@link Pacer.take} answers: go now, or wait this long for the tokens. */
export type Pace = { go: true } | { go: false; waitMs: number };

const recoveryPerMinute = 0.1;
const minimumFactor = 1 / 16;

/**
 * Paces one container's calls within its share of each account bucket (one pacer per account and
 * region: the buckets are per account and region).
 *
 * @example
 * const pace = pacer.take('ssm:send-command');
 * if (!pace.go) return continueLater(rest, pace.waitMs);
 */
export class Pacer {
  readonly share: number;
  readonly concurrency: number;
  #clock: () => number;
  #sizes: Record<BucketName, BucketSize>;
  #local = new Map<BucketName, Local>();

  constructor(options: PacerOptions = {}) {
    const share = options.share ?? 0.5;
    if (!(share > 0 && share <= 1)) throw new RangeError(`pacing share must be in (0, 1], got ${share}`);
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
    this.share = share;
    this.concurrency = concurrency;
    this.#clock = options.clock ?? Date.now;
    this.#sizes = { ...accountBuckets, ...options.buckets };
  }

  #bucket(name: BucketName): Local {
    let local = this.#local.get(name);
    if (!local) {
      const size = this.#sizes[name];
      const rate = (size.refillPerSecond * this.share) / this.concurrency;
      // At least one second's refill (rounded up), else whole calls could never use the whole rate.
      const capacity = Math.max(1, Math.ceil(rate), (size.capacity * this.share) / this.concurrency);
      local = { tokens: capacity, at: this.#clock(), capacity, rate, factor: 1, throttledAt: undefined, taken: 0, promisedUntil: 0 };
      this.#local.set(name, local);
    }
    const now = this.#clock();
    if (local.throttledAt !== undefined && local.factor < 1) {
      local.factor = Math.min(1, local.factor + (recoveryPerMinute * (now - local.at)) / 60_000);
    }
    local.tokens = Math.min(local.capacity, local.tokens + ((now - local.at) / 1000) * local.rate * local.factor);
    local.at = now;
    return local;
  }

  /**
   * Takes `count` tokens of a bucket now, or says how long until they are there (nothing taken
   * then). `afterPromised`: wait behind the tokens promised to deferred work ({@link promise}):
   * while the refill is theirs, none is taken, and the wait is {@link etaMs}'s.
   */
  take(name: BucketName, count = 1, options: { afterPromised?: boolean } = {}): Pace {
    const local = this.#bucket(name);
    if (options.afterPromised && local.promisedUntil > this.#clock()) return { go: false, waitMs: this.etaMs(name, count) };
    if (local.tokens >= count) {
      local.tokens -= count;
      local.taken += count;
      return { go: true };
    }
    const missing = count - local.tokens;
    return { go: false, waitMs: Math.ceil((missing / (local.rate * local.factor)) * 1000) };
  }

  /**
   * Milliseconds until `count` more tokens of a bucket have come, at the container's current rate
   * (after any throttle), counting after the tokens already promised to deferred work: 0 when they
   * are there now. Fractions are fine (an instance's share of a call for 50 instances). The
   * estimate assumes nobody else in the container takes tokens meanwhile, and that a throttled rate
   * stays as it is (it recovers, so the estimate errs late).
   *
   * @example
   * // The 40th instance left for later needs 40 association tokens: ask SQS for the message then.
   * const retryAfterMs = pacer.etaMs('ec2:associate-iam-instance-profile', 40);
   */
  etaMs(name: BucketName, count: number): number {
    const local = this.#bucket(name);
    const perMs = (local.rate * local.factor) / 1000;
    const now = this.#clock();
    // Promised tokens are owed to the messages that come back for them: the refill until
    // promisedUntil is theirs, and so are the tokens in the bucket now.
    if (local.promisedUntil > now) return Math.ceil(local.promisedUntil - now + count / perMs);
    return Math.ceil(Math.max(0, count - local.tokens) / perMs);
  }

  /**
   * Promises the next `count` tokens of a bucket to work continued later (the messages a batch
   * returns to the queue, each told when its tokens will be there): the next {@link etaMs} counts
   * after them, so a second batch's deferred instances queue behind the first one's instead of
   * coming back at the same moment. `extraMs`: how much later than the refill's time the work
   * was told to come back (jitter, rounding): the promise lasts that much longer. Nothing is taken
   * now; the promise lapses by itself once the refill has covered it.
   */
  promise(name: BucketName, count: number, extraMs = 0): void {
    const local = this.#bucket(name);
    local.promisedUntil = this.#clock() + this.etaMs(name, count) + extraMs;
  }

  /** The pacer's clock, ms since the epoch (the Lambda's, or a test's simulated one). */
  now(): number {
    return this.#clock();
  }

  /** The account bucket's published size this pacer paces against (before the share). */
  sizeOf(name: BucketName): BucketSize {
    return this.#sizes[name];
  }

  /** How many calls of a bucket may go right now (for sizing the part of a batch done now). */
  available(name: BucketName): number {
    return Math.floor(this.#bucket(name).tokens);
  }

  /** A throttling error reached the product despite the SDK's retries: yield that bucket. */
  throttled(name: BucketName): void {
    const local = this.#bucket(name);
    local.factor = Math.max(minimumFactor, local.factor / 2);
    local.tokens = 0;
    local.throttledAt = this.#clock();
  }

  /** The container's current rate for a bucket, in calls per second (after any throttle). */
  rate(name: BucketName): number {
    const local = this.#bucket(name);
    return local.rate * local.factor;
  }

  /** Tokens taken per bucket since the pacer was made. */
  taken(): Partial<Record<BucketName, number>> {
    return Object.fromEntries([...this.#local].map(([name, local]) => [name, local.taken]));
  }
}

/** True for the throttling errors of the APIs the product calls (EC2's, and the JSON protocols'). */
export function isThrottling(error: unknown): boolean {
  const name = error instanceof Error ? error.name : undefined;
  return name === 'RequestLimitExceeded' || name === 'ThrottlingException' || name === 'Throttling' || name === 'TooManyRequestsException';
}
