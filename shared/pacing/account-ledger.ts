import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { stateTableClient, type Clients } from '../aws/client-factory.js';
import { awsErrorName, sleep } from '../aws/errors.js';
import type { Place } from '../aws/place.js';
import type { BucketName } from './pacer.js';

/**
 * The product's share of an account bucket kept for all its containers at once, in the state table.
 *
 * A container's own pacer ({@link Pacer}) can only split the share by a fixed concurrency, and the
 * bench showed what that costs: two onboard pollers each paced AssociateIamInstanceProfile at half
 * the share, and deferred messages came back to whichever poller received them, so a burst's
 * associations ran at 1.25 a second instead of 2.5. Checks are worse: up to a hundred containers
 * create alarms at once, each pacing PutMetricAlarm alone, and 700 throttles got past the SDK's
 * retries. The ledger is one item per account, region and bucket, kept by the Generic Cell Rate
 * Algorithm: a token bucket of rate r and burst b written as one time, the "theoretical arrival
 * time" `tat` (a call may go at t when tat <= t + (b - 1) / r, and then tat = max(tat, t) + 1 / r).
 * Every change is a read and a conditional write (`version`), as the instance records are: a
 * container that lost the race reads again.
 *
 * Work left for later (a queue message, a batch's next schedule) reserves its calls at once: they
 * move `tat` on, so later work queues behind them, and are counted in `reserved`. Returning work
 * claims the earliest reserved call instead of taking a new one, when its time has come; a
 * reservation nobody claimed in time lapses once `tat` is in the past.
 */

/** The rate and burst of one bucket's share, in calls. */
export interface LedgerRate {
  perSecond: number;
  /** Calls that may go at once after a quiet spell (at least 1). */
  burst: number;
}

/** The ledger's item of one bucket in one account and region. */
interface LedgerItem {
  recordKey: string;
  kind: 'pacing';
  account: string;
  region: string;
  bucket: BucketName;
  /** Theoretical arrival time, ms since the epoch. */
  tat: number;
  /** Calls reserved for work left for later and not claimed yet: the last `reserved` intervals before `tat`. */
  reserved: number;
  version: number;
  updatedAt: string;
  /** The table's TTL (seconds): a ledger nobody used for a day is gone, and starts full again. */
  expiresAt: number;
}

/** What the ledger answers: the times (ms since the epoch) the calls may go, or when the first could. */
export type LedgerAnswer = { go: true; at: number[] } | { go: false; firstAt: number };

/** A change of a ledger: what to answer, and the item's next state (none: nothing to write). */
type LedgerStep = (item: Pick<LedgerItem, 'tat' | 'reserved'>, now: number, interval: number, tolerance: number) => { answer: LedgerAnswer; next?: Pick<LedgerItem, 'tat' | 'reserved'> };

/** The key of a bucket's ledger item, beside the instance records (`<account>:<region>:<id>`) and the places' (`place:...`). */
export function ledgerKey(place: Place, bucket: BucketName): string {
  return `pacing:${place.account}:${place.region}:${bucket}`;
}

/** Writes lost to another container, in a row, before the ledger gives up (the error names the bucket). */
const maxConflicts = 20;

/**
 * How long after its time a reserved call may still be claimed: the onboard mapping's batching
 * window (10 s by default, at most 300 s: a longer one only costs lapsed reservations), the
 * deferral's jitter (2 s) and a poll.
 */
export const reservationGraceMs = 30_000;

/** The first pause after a lost write, doubled after each further one (jittered, up to 32 times). */
const conflictPauseMs = 5;

/** How long a ledger item outlives its last use. */
const ledgerLifetimeSeconds = 86_400;

/**
 * One account and region's ledgers, for the buckets the product paces across containers.
 *
 * @example
 * const ledger = new AccountLedger(clients, settings.stateTable, place, (bucket) => ({ perSecond: 2.5, burst: 50 }));
 * const answer = await ledger.take('ec2:associate-iam-instance-profile', { maxWaitMs: 5_000 });
 */
export class AccountLedger {
  readonly #clients: Pick<Clients, 'hub'>;
  readonly #table: string;
  readonly #place: Place;
  readonly #rateOf: (bucket: BucketName) => LedgerRate;
  readonly #clock: () => number;
  readonly #wait: (ms: number) => Promise<void>;
  /** This container's changes one after the other: concurrent ones would only lose races to each other. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    clients: Pick<Clients, 'hub'>,
    table: string,
    place: Place,
    rateOf: (bucket: BucketName) => LedgerRate,
    clock: () => number = () => Date.now(),
    wait: (ms: number) => Promise<void> = sleep,
  ) {
    this.#wait = wait;
    this.#clients = clients;
    this.#table = table;
    this.#place = place;
    this.#rateOf = rateOf;
    this.#clock = clock;
  }

  /**
   * Takes `count` calls (default 1) whose first may go within `maxWaitMs`: their times, spaced by the
   * rate; or, with nothing taken, when the first could go. `returning`: the work was left for later
   * and reserved its calls then: it claims the earliest reservations first (and takes new calls
   * only for what is not reserved any more). `upTo`: as many of the `count` as may go within
   * `maxWaitMs`, in whole multiples of `step` (a batch's calls in one change of the ledger; an
   * instance's alarms all or none); none is then `go: false`.
   */
  take(bucket: BucketName, options: { count?: number; maxWaitMs: number; returning?: boolean; upTo?: boolean; step?: number }): Promise<LedgerAnswer> {
    const count = Math.max(1, Math.ceil(options.count ?? 1));
    const step = Math.max(1, Math.floor(options.step ?? 1));
    return this.#change(bucket, (item, now, interval, tolerance) => {
      const times: number[] = [];
      let { tat, reserved } = item;
      const latest = now + options.maxWaitMs;
      // The state after the last whole step taken, for `upTo`.
      let kept = { length: 0, tat, reserved };
      const refuse = (slot: number) => ({ answer: { go: false as const, firstAt: slot } });
      while (times.length < count) {
        const claiming = options.returning === true && reserved > 0;
        const slot = claiming ? Math.max(now, tat - reserved * interval - tolerance) : Math.max(now, Math.max(tat, now) - tolerance);
        if (slot > latest && (options.upTo || times.length === 0)) {
          if (kept.length === 0) return refuse(times[0] ?? slot);
          break;
        }
        times.push(slot);
        if (claiming) reserved -= 1;
        else tat = Math.max(tat, now) + interval;
        if (times.length % step === 0) kept = { length: times.length, tat, reserved };
      }
      if (options.upTo && kept.length < times.length) {
        // Only whole steps: the last partial one is not taken.
        times.length = kept.length;
        ({ tat, reserved } = kept);
      }
      if (times.length === 0) return refuse(now);
      return { answer: { go: true, at: times }, next: { tat, reserved } };
    });
  }

  /**
   * Reserves `count` calls for work left for later: the times they may go, in order (the k-th
   * deferred instance comes back at the k-th). Nothing goes now; the work claims them when it
   * comes back ({@link take} with `returning`).
   */
  async reserve(bucket: BucketName, count: number): Promise<number[]> {
    const wanted = Math.ceil(count);
    if (wanted <= 0) return [];
    const answer = await this.#change(bucket, (item, now, interval, tolerance) => {
      const times: number[] = [];
      let tat = item.tat;
      for (let k = 0; k < wanted; k++) {
        times.push(Math.max(now, Math.max(tat, now) - tolerance));
        tat = Math.max(tat, now) + interval;
      }
      return { answer: { go: true as const, at: times }, next: { tat, reserved: item.reserved + wanted } };
    });
    return answer.go ? answer.at : [];
  }

  /**
   * A throttling error got past the SDK's retries: someone else in the account uses the bucket.
   * Nothing of the product's share goes for `ms` (the reservations move with it).
   */
  async backOff(bucket: BucketName, ms: number): Promise<void> {
    await this.#change(bucket, (item, now) => ({ answer: { go: true, at: [] }, next: { tat: Math.max(item.tat, now) + ms, reserved: item.reserved } }));
  }

  /** Reads the bucket's item, applies `step`, and writes it if `step` changed it and nobody wrote meanwhile. */
  #change(bucket: BucketName, step: LedgerStep): Promise<LedgerAnswer> {
    const run = this.#queue.then(() => this.#changeNow(bucket, step));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #changeNow(bucket: BucketName, step: LedgerStep): Promise<LedgerAnswer> {
    const { perSecond, burst } = this.#rateOf(bucket);
    if (!(perSecond > 0)) throw new RangeError(`pacing ledger ${bucket}: the rate must be above 0, got ${perSecond}`);
    const interval = 1000 / perSecond;
    const tolerance = (Math.max(1, burst) - 1) * interval;
    const key = ledgerKey(this.#place, bucket);
    const client = stateTableClient(this.#clients);
    for (let conflicts = 0; conflicts < maxConflicts; conflicts++) {
      const read = await client.send(new GetCommand({ TableName: this.#table, Key: { recordKey: key }, ConsistentRead: true }));
      const stored = read.Item as LedgerItem | undefined;
      const now = this.#clock();
      // A reservation stays claimable for a while after its time (the message it was made for comes
      // back after a jittered visibility timeout and the mapping's batching window), then lapses:
      // the work that held it comes back late or never, and takes new calls if it does.
      const from = now - reservationGraceMs;
      const current = stored && stored.tat > from ? { tat: stored.tat, reserved: Math.min(stored.reserved, Math.floor((stored.tat - from) / interval)) } : { tat: stored?.tat ?? 0, reserved: 0 };
      const { answer, next } = step(current, now, interval, tolerance);
      if (!next) return answer;
      const item: LedgerItem = {
        recordKey: key,
        kind: 'pacing',
        account: this.#place.account,
        region: this.#place.region,
        bucket,
        tat: next.tat,
        reserved: next.reserved,
        version: (stored?.version ?? 0) + 1,
        updatedAt: new Date(now).toISOString(),
        expiresAt: Math.floor(now / 1000) + ledgerLifetimeSeconds,
      };
      try {
        await client.send(
          new PutCommand({
            TableName: this.#table,
            Item: item,
            ...(stored ? { ConditionExpression: 'version = :read', ExpressionAttributeValues: { ':read': stored.version } } : { ConditionExpression: 'attribute_not_exists(recordKey)' }),
          }),
        );
        return answer;
      } catch (error) {
        if (awsErrorName(error) !== 'ConditionalCheckFailedException') throw error;
        // Lost to another container: read again after a jittered pause, so that two containers
        // that keep reading at the same moment do not keep colliding.
        await this.#wait(Math.random() * conflictPauseMs * 2 ** Math.min(conflicts, 5));
      }
    }
    throw new Error(`pacing ledger ${key}: ${maxConflicts} writes in a row lost to other containers`);
  }
}
