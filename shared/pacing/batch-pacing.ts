import type { Clients } from '../aws/client-factory.js';
import { placeLabel, type Place } from '../aws/place.js';
import { sleep } from '../aws/errors.js';
import type { Settings } from '../config/settings.js';
import { PacedLaterError } from '../errors.js';
import { AccountLedger } from './account-ledger.js';
import { Pacer, type BucketName } from './pacer.js';

/**
 * The buckets paced for all the product's containers at once (the state table's ledger,
 * {@link AccountLedger}): those with a call per instance, which a burst spends from many
 * containers. The others (AttachRolePolicy, SendCommand, CreateSchedule: a call per batch or per
 * role) stay with each container's pacer and its concurrency split.
 */
export const ledgerBuckets: ReadonlySet<BucketName> = new Set<BucketName>(['ec2:associate-iam-instance-profile', 'monitoring:put-metric-alarm']);

/**
 * How a batch of the onboard queue paces its slow-refill calls: the pacer of each place, how long
 * a call may still wait for its token in this invocation, and how it waits.
 */
export interface BatchPacing {
  pacerOf(place: Place): Pacer;
  /** Milliseconds a batch may wait for tokens in all (asked at each wait) before the rest is left for later. */
  waitBudgetMs(): number;
  sleep(ms: number): Promise<void>;
  /**
   * The ledger of a place's {@link ledgerBuckets}, shared with every other container through the
   * state table; none (tests of one container's pacing) leaves them to the pacer too.
   */
  ledgerOf?(clients: Pick<Clients, 'hub'>, place: Place): AccountLedger | undefined;
}

/** What an instance left for later needs when its message comes back: tokens per bucket (fractions allowed). */
export type TokenNeeds = Partial<Record<BucketName, number>>;

/** Kept for the container's life: the buckets are per account and region, and so are the pacers. */
const containerPacers = new Map<string, Pacer>();
let makePacer: ((place: Place) => Pacer) | undefined;
let waitFor: ((ms: number) => Promise<void>) | undefined;
let ledgers = true;

/**
 * Forgets the container's pacers, and makes the next ones with `make` (tests and the bench: a
 * simulated clock, or buckets a scenario does not measure), waiting with `wait` (a simulated
 * clock's); without them, from the settings and with a real sleep.
 */
export function replaceContainerPacers(make?: (place: Place) => Pacer, wait?: (ms: number) => Promise<void>, options: { ledgers?: boolean } = {}): void {
  containerPacers.clear();
  makePacer = make;
  waitFor = wait;
  ledgers = options.ledgers ?? true;
}

/** What the invocation keeps for the steps after the last wait (records, schedules, the install). */
export const invocationMarginMs = 20_000;

/**
 * The most a batch waits for tokens in all, and the budget when the invocation's remaining time is
 * not known: a few seconds of waiting let a batch use the refill that comes meanwhile; beyond that
 * the rest of the batch is continued later instead of sleeping out the Lambda's time.
 */
export const batchWaitBudgetMs = 5_000;

/**
 * The shortest wait a deferred message is given: at once would only have it received again with
 * the tokens still missing.
 */
export const minRetryAfterSeconds = 1;

/**
 * The longest: SQS refuses a visibility timeout that takes a message past 12 hours (43,200 s) since
 * its receive (ChangeMessageVisibility, API reference); 20 minutes less leaves room for the
 * batching window (at most 300 s) and the invocation before the call. Pacing estimates are minutes.
 */
export const maxRetryAfterSeconds = 43_200 - 1_200;

/** How much later, at most, a batch's deferred messages are sent back at random. */
const retryJitterMs = 2_000;

/**
 * The container's pacing: one pacer per account and region (settings.pacing's share and
 * concurrency), and a wait budget of the invocation's remaining time less a margin (or a fixed few
 * seconds without the Lambda context).
 *
 * @example
 * const pacing = containerPacing(settings, () => context.getRemainingTimeInMillis());
 */
export function containerPacing(settings: Pick<Settings, 'pacing'> & Partial<Pick<Settings, 'stateTable'>>, remainingMs?: () => number, maxWaitMs = batchWaitBudgetMs): BatchPacing {
  const pacerOf = (place: Place) => {
    const label = placeLabel(place);
    let pacer = containerPacers.get(label);
    if (!pacer) {
      pacer = makePacer?.(place) ?? new Pacer(settings.pacing);
      containerPacers.set(label, pacer);
    }
    return pacer;
  };
  return {
    pacerOf,
    waitBudgetMs: () => Math.min(maxWaitMs, remainingMs ? remainingMs() - invocationMarginMs : maxWaitMs),
    sleep: (ms) => (waitFor ?? sleep)(ms),
    ledgerOf(clients, place) {
      if (!ledgers || !settings.stateTable) return undefined;
      const pacer = pacerOf(place);
      // The whole share, for all containers together: no concurrency split.
      return new AccountLedger(
        clients,
        settings.stateTable,
        place,
        (bucket) => {
          const size = pacer.sizeOf(bucket);
          return { perSecond: size.refillPerSecond * pacer.share, burst: Math.max(1, Math.floor(size.capacity * pacer.share)) };
        },
        () => pacer.now(),
        (ms) => (waitFor ?? sleep)(ms),
      );
    },
  };
}

/**
 * One place's pacing within one batch. `admit` is asked before an instance is started: once one
 * instance did not fit, no other is started (the rest of the batch is continued later, untouched).
 * `beforeCall` is asked before a call of an instance already under way: it waits when the wait
 * fits the budget, or throws {@link PacedLaterError}.
 */
export class PlacePacing {
  readonly pacer: Pacer;
  #pacing: BatchPacing;
  #stopped = false;
  /** Milliseconds this batch waited for tokens so far (concurrent waits add up: an upper bound). */
  #waited = 0;

  /** The place's ledger for the {@link ledgerBuckets}, when the pacing has one. */
  readonly ledger: AccountLedger | undefined;

  constructor(pacing: BatchPacing, place: Place, clients?: Pick<Clients, 'hub'>) {
    this.#pacing = pacing;
    this.pacer = pacing.pacerOf(place);
    this.ledger = clients ? pacing.ledgerOf?.(clients, place) : undefined;
  }

  /** Calls of ledger buckets this batch took in one go ({@link prefetch}) and has not used yet: their times. */
  #granted = new Map<BucketName, number[]>();

  /**
   * Takes, in one change of the ledger, as many of the `count` calls of a ledger bucket this batch
   * expects to make as come within the wait budget (whole multiples of `step`); {@link admit} and
   * {@link takeCalls} then use them, in order, before asking the ledger again. Two DynamoDB calls
   * for a batch instead of two per instance. A bucket outside the ledger: nothing.
   */
  async prefetch(bucket: BucketName, count: number, options: { returning?: boolean; step?: number } = {}): Promise<void> {
    const ledger = this.#inLedger(bucket);
    if (!ledger || count <= 0) return;
    const answer = await ledger.take(bucket, { count, returning: options.returning, step: options.step, upTo: true, maxWaitMs: Math.max(0, this.#pacing.waitBudgetMs() - this.#waited) });
    if (answer.go) this.#granted.set(bucket, [...(this.#granted.get(bucket) ?? []), ...answer.at].sort((a, b) => a - b));
  }

  /** `count` calls from those taken in advance, the earliest first; none when fewer are left. */
  #fromGranted(bucket: BucketName, count: number): number[] | undefined {
    const granted = this.#granted.get(bucket);
    if (!granted || granted.length < count) return undefined;
    return granted.splice(0, count);
  }

  /** Whether a bucket is kept in the place's ledger (for every container) rather than this container's pacer. */
  #inLedger(bucket: BucketName): AccountLedger | undefined {
    return ledgerBuckets.has(bucket) ? this.ledger : undefined;
  }

  /**
   * The times (ms since the epoch) `count` calls of a bucket may go, the first within the batch's
   * wait budget; undefined when it does not come in time (nothing taken). From the ledger, spaced
   * by the share's rate (wait for each with {@link waitUntil}); from the container's pacer, all
   * now, after a wait for them. `returning`: work left for later that reserved its calls then.
   */
  async takeCalls(bucket: BucketName, count: number, options: { returning?: boolean } = {}): Promise<number[] | undefined> {
    const ledger = this.#inLedger(bucket);
    if (!ledger) {
      for (let k = 0; k < count; k++) if (!(await this.#take(bucket, !options.returning))) return undefined;
      return Array.from({ length: count }, () => this.pacer.now());
    }
    const granted = this.#fromGranted(bucket, count);
    if (granted) return granted;
    const answer = await ledger.take(bucket, { count, returning: options.returning, maxWaitMs: Math.max(0, this.#pacing.waitBudgetMs() - this.#waited) });
    if (!answer.go) return undefined;
    this.#waited += Math.max(0, (answer.at[0] ?? 0) - this.pacer.now());
    return answer.at;
  }

  /** Waits until `at` (ms since the epoch), with the pacing's sleep. */
  async waitUntil(at: number): Promise<void> {
    const ms = at - this.pacer.now();
    if (ms > 0) await this.#pacing.sleep(ms);
  }

  /**
   * Reserves `count` calls of a ledger bucket for work left for later: the times they may go (the
   * k-th for the k-th item). Undefined for a bucket this container paces alone.
   */
  async reserve(bucket: BucketName, count: number): Promise<number[] | undefined> {
    const ledger = this.#inLedger(bucket);
    return ledger ? ledger.reserve(bucket, count) : undefined;
  }

  /** A throttle got past the SDK's retries: the ledger holds the bucket back for every container, or the pacer halves its rate. */
  async throttled(bucket: BucketName, backOffMs = 10_000): Promise<void> {
    const ledger = this.#inLedger(bucket);
    if (ledger) await ledger.backOff(bucket, backOffMs);
    else this.pacer.throttled(bucket);
  }

  /** Whether the batch has stopped starting instances. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Takes one token of each bucket for an instance about to start; false (and stops starting) when
   * one does not come in time. A `returning` instance (its message was delivered before: the
   * pacing deferred it, or it failed) takes the tokens promised to deferred work; a new one waits
   * behind them, so that a burst's later launches do not take the tokens of the messages coming
   * back for them (each of which would then be deferred again, one more receive towards the
   * dead-letter queue).
   */
  async admit(buckets: readonly BucketName[], options: { returning?: boolean } = {}): Promise<boolean> {
    // Checked once: an instance that got past it takes all its tokens (one more instance's start
    // stopping the batch meanwhile would waste those it took).
    if (this.#stopped) return false;
    for (const bucket of buckets) {
      const ledger = this.#inLedger(bucket);
      const taken = ledger ? await this.#takeFromLedger(bucket, options.returning === true) : await this.#take(bucket, !options.returning);
      if (!taken) {
        this.#stopped = true;
        return false;
      }
    }
    return true;
  }

  /** One call of a ledger bucket within the wait budget: waits for its time, or false (nothing taken). */
  async #takeFromLedger(bucket: BucketName, returning: boolean): Promise<boolean> {
    const at = await this.takeCalls(bucket, 1, { returning });
    if (!at) return false;
    await this.waitUntil(at[0] as number);
    return true;
  }

  /**
   * Takes a token for a call of instances under way, or throws PacedLaterError; `instances`: how
   * many instances the call is for (each then needs 1/n of a token when it comes back).
   */
  async beforeCall(bucket: BucketName, instances = 1): Promise<void> {
    if (!(await this.#take(bucket))) {
      throw new PacedLaterError(`${bucket}: the product's share of the account bucket is spent; continued in a later delivery`, { needs: { [bucket]: 1 / instances } });
    }
  }

  /**
   * When each instance this batch left for later should come back, in whole seconds, for the
   * instances in the order given (the batch's): the k-th one needs the tokens of the k before it
   * too, so its wait is the longest of its buckets' {@link Pacer.etaMs} for the running total of
   * that bucket. The tokens of each bucket that does not have them now are then promised
   * ({@link Pacer.promise}), so the next batch's deferred instances come back after these. The whole list is shifted by the same random
   * 0-2 s, so that concurrent containers do not send their messages back in step: later, never
   * sooner (a message back before its tokens costs one more receive), and the same shift for all
   * (a later position never comes back sooner); the promise lasts the shift and the rounding up to
   * whole seconds longer, so the next batch's messages do not come back among these. Each value
   * is bounded to [{@link minRetryAfterSeconds}, {@link maxRetryAfterSeconds}].
   *
   * @example
   * const comingBack = pace.retryAfterSeconds(deferred); // each with its retryAfterSeconds
   */
  async retryAfterSeconds<T extends { needs: TokenNeeds }>(deferred: readonly T[], random: () => number = Math.random): Promise<(T & { retryAfterSeconds: number })[]> {
    const shiftMs = retryJitterMs * random();
    // A ledger bucket reserves what the deferred instances need, at once: the k-th one's time is
    // its k-th reserved call, and the next batch's instances (in any container) queue behind them.
    const reserved = new Map<BucketName, number[]>();
    const ledgerTotals = new Map<BucketName, number>();
    for (const item of deferred) {
      for (const [bucket, count] of Object.entries(item.needs) as [BucketName, number][]) {
        if (this.#inLedger(bucket)) ledgerTotals.set(bucket, (ledgerTotals.get(bucket) ?? 0) + Math.ceil(count));
      }
    }
    for (const [bucket, total] of ledgerTotals) reserved.set(bucket, (await this.reserve(bucket, total)) ?? []);
    const now = this.pacer.now();
    const totals = new Map<BucketName, number>();
    const etas = deferred.map((item) => {
      let eta = 0;
      for (const [bucket, count] of Object.entries(item.needs) as [BucketName, number][]) {
        const total = (totals.get(bucket) ?? 0) + (reserved.has(bucket) ? Math.ceil(count) : count);
        totals.set(bucket, total);
        const times = reserved.get(bucket);
        eta = Math.max(eta, times ? Math.max(0, (times[total - 1] ?? times.at(-1) ?? now) - now) : this.pacer.etaMs(bucket, total));
      }
      return { item, eta };
    });
    // A bucket that has the tokens now owes nothing: promising it would only hold new launches back.
    for (const [bucket, total] of totals) if (!reserved.has(bucket) && this.pacer.etaMs(bucket, total) > 0) this.pacer.promise(bucket, total, shiftMs + 1000);
    return etas.map(({ item, eta }) => ({ ...item, retryAfterSeconds: Math.min(maxRetryAfterSeconds, Math.max(minRetryAfterSeconds, Math.ceil((eta + shiftMs) / 1000))) }));
  }

  async #take(bucket: BucketName, afterPromised = false): Promise<boolean> {
    for (;;) {
      const pace = this.pacer.take(bucket, 1, { afterPromised });
      if (pace.go) return true;
      if (this.#waited + pace.waitMs > this.#pacing.waitBudgetMs()) return false;
      this.#waited += pace.waitMs;
      await this.#pacing.sleep(pace.waitMs);
    }
  }
}
