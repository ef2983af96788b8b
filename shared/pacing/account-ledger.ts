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
 * `tat` counts the calls made, and only those: every call, new or returning, takes its time from it,
 * so whatever comes back when, the product's calls never go faster than its share. Work left for
 * later (a queue message, a batch's next schedule) reserves its place in a queue instead
 * (`reserved`, and when the queue's last place is due, `reservedUntil`): it is told when its turn
 * comes (after the calls and places before it), returning work takes the calls, and new work waits
 * while places are reserved, so that it does not take the calls of the messages coming back for
 * them (each would be deferred again, one more receive towards the dead-letter queue). A queue
 * nobody came back for lapses a while after its last place was due.
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
  /** Places reserved for work left for later, not taken up yet. */
  reserved: number;
  /** When the last reserved place is due, ms since the epoch. */
  reservedUntil: number;
  version: number;
  updatedAt: string;
  /** The table's TTL (seconds): a ledger nobody used for a day is gone, and starts full again. */
  expiresAt: number;
}

/** What the ledger answers: the times (ms since the epoch) the calls may go, or when the first could. */
export type LedgerAnswer = { go: true; at: number[] } | { go: false; firstAt: number };

/** A change of a ledger: what to answer, and the item's next state (none: nothing to write). */
type LedgerState = Pick<LedgerItem, 'tat' | 'reserved' | 'reservedUntil'>;
type LedgerStep = (item: LedgerState, now: number, interval: number, tolerance: number) => { answer: LedgerAnswer; next?: LedgerState };

/** The key of a bucket's ledger item, beside the instance records (`<account>:<region>:<id>`) and the places' (`place:...`). */
export function ledgerKey(place: Place, bucket: BucketName): string {
  return `pacing:${place.account}:${place.region}:${bucket}`;
}

/** Writes lost to another container, in a row, before the ledger gives up (the error names the bucket). */
const maxConflicts = 20;

/**
 * How long after the last reserved place was due the queue of reservations lapses: the onboard
 * mapping's batching window (30 s by default, at most 300 s: a longer one only costs lapsed
 * places), the deferral's jitter (2 s), a poll, and the time to take the calls.
 */
export const reservationGraceMs = 60_000;

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
   * rate; or, with nothing taken, when the first could go. `returning`: work left for later that
   * reserved its place then: it takes its calls (and gives up its places); new work waits while
   * places are reserved. `upTo`: as many of the `count` as may go within `maxWaitMs`, in whole
   * multiples of `step` (a batch's calls in one change of the ledger; an instance's alarms all or
   * none); none is then `go: false`.
   */
  take(bucket: BucketName, options: { count?: number; maxWaitMs: number; returning?: boolean; upTo?: boolean; step?: number }): Promise<LedgerAnswer> {
    const count = Math.max(1, Math.ceil(options.count ?? 1));
    const step = Math.max(1, Math.floor(options.step ?? 1));
    return this.#change(bucket, (item, now, interval, tolerance) => {
      const latest = now + options.maxWaitMs;
      if (!options.returning && item.reserved > 0) {
        // Behind the work coming back: its turn is after theirs.
        return { answer: { go: false, firstAt: Math.max(item.reservedUntil + interval, now) } };
      }
      const times: number[] = [];
      let { tat, reserved } = item;
      let kept = { length: 0, tat, reserved };
      while (times.length < count) {
        const slot = Math.max(now, Math.max(tat, now) - tolerance);
        if (slot > latest && (options.upTo || times.length === 0)) break;
        times.push(slot);
        tat = Math.max(tat, now) + interval;
        if (options.returning && reserved > 0) reserved -= 1;
        if (times.length % step === 0 || !options.upTo) kept = { length: times.length, tat, reserved };
      }
      if (kept.length === 0) return { answer: { go: false, firstAt: times[0] ?? Math.max(now, Math.max(item.tat, now) - tolerance) } };
      times.length = kept.length;
      return { answer: { go: true, at: times }, next: { tat: kept.tat, reserved: kept.reserved, reservedUntil: item.reservedUntil } };
    });
  }

  /**
   * Reserves places for `count` calls of work left for later: when each may come back (the k-th
   * deferred instance at the k-th), after the calls already made and the places already reserved,
   * by any container. Nothing goes now; the work takes its calls when it comes back
   * ({@link take} with `returning`).
   */
  async reserve(bucket: BucketName, count: number): Promise<number[]> {
    const wanted = Math.ceil(count);
    if (wanted <= 0) return [];
    const answer = await this.#change(bucket, (item, now, interval, tolerance) => {
      const first = Math.max(now, Math.max(item.tat, now) - tolerance);
      const times = Array.from({ length: wanted }, (_, k) => first + (item.reserved + k) * interval);
      return { answer: { go: true as const, at: times }, next: { tat: item.tat, reserved: item.reserved + wanted, reservedUntil: times.at(-1) as number } };
    });
    return answer.go ? answer.at : [];
  }

  /**
   * A throttling error got past the SDK's retries: someone else in the account uses the bucket.
   * Nothing of the product's share goes for `ms` (the reservations move with it).
   */
  async backOff(bucket: BucketName, ms: number): Promise<void> {
    await this.#change(bucket, (item, now) => ({ answer: { go: true, at: [] }, next: { tat: Math.max(item.tat, now) + ms, reserved: item.reserved, reservedUntil: item.reservedUntil + ms } }));
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
      // The queue lapses a while after its last place was due (the message it was made for comes
      // back after a jittered visibility timeout and the mapping's batching window): the work that
      // held a place comes back late or never, and takes its calls as new work if it does.
      const lapsed = !stored || stored.reserved <= 0 || now > (stored.reservedUntil ?? 0) + reservationGraceMs;
      const current: LedgerState = { tat: stored?.tat ?? 0, reserved: lapsed ? 0 : stored.reserved, reservedUntil: lapsed ? 0 : stored.reservedUntil };
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
        reservedUntil: next.reservedUntil,
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
