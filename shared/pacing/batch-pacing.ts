import { placeLabel, type Place } from '../aws/place.js';
import { sleep } from '../aws/errors.js';
import type { Settings } from '../config/settings.js';
import { PacedLaterError } from '../errors.js';
import { Pacer, type BucketName } from './pacer.js';

/**
 * How a batch of the onboard queue paces its slow-refill calls: the pacer of each place, how long
 * a call may still wait for its token in this invocation, and how it waits.
 */
export interface BatchPacing {
  pacerOf(place: Place): Pacer;
  /** Milliseconds a batch may wait for tokens in all (asked at each wait) before the rest is left for later. */
  waitBudgetMs(): number;
  sleep(ms: number): Promise<void>;
}

/** Kept for the container's life: the buckets are per account and region, and so are the pacers. */
const containerPacers = new Map<string, Pacer>();
let makePacer: ((place: Place) => Pacer) | undefined;
let waitFor: ((ms: number) => Promise<void>) | undefined;

/**
 * Forgets the container's pacers, and makes the next ones with `make` (tests and the bench: a
 * simulated clock, or buckets a scenario does not measure), waiting with `wait` (a simulated
 * clock's); without them, from the settings and with a real sleep.
 */
export function replaceContainerPacers(make?: (place: Place) => Pacer, wait?: (ms: number) => Promise<void>): void {
  containerPacers.clear();
  makePacer = make;
  waitFor = wait;
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
 * The container's pacing: one pacer per account and region (settings.pacing's share and
 * concurrency), and a wait budget of the invocation's remaining time less a margin (or a fixed few
 * seconds without the Lambda context).
 *
 * @example
 * const pacing = containerPacing(settings, () => context.getRemainingTimeInMillis());
 */
export function containerPacing(settings: Pick<Settings, 'pacing'>, remainingMs?: () => number): BatchPacing {
  return {
    pacerOf(place) {
      const label = placeLabel(place);
      let pacer = containerPacers.get(label);
      if (!pacer) {
        pacer = makePacer?.(place) ?? new Pacer(settings.pacing);
        containerPacers.set(label, pacer);
      }
      return pacer;
    },
    waitBudgetMs: () => Math.min(batchWaitBudgetMs, remainingMs ? remainingMs() - invocationMarginMs : batchWaitBudgetMs),
    sleep: (ms) => (waitFor ?? sleep)(ms),
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

  constructor(pacing: BatchPacing, place: Place) {
    this.#pacing = pacing;
    this.pacer = pacing.pacerOf(place);
  }

  /** Whether the batch has stopped starting instances. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Takes one token of each bucket for an instance about to start; false (and stops starting) when one does not come in time. */
  async admit(buckets: readonly BucketName[]): Promise<boolean> {
    for (const bucket of buckets) {
      if (this.#stopped || !(await this.#take(bucket))) {
        this.#stopped = true;
        return false;
      }
    }
    return true;
  }

  /** Takes a token for a call of an instance under way, or throws PacedLaterError. */
  async beforeCall(bucket: BucketName): Promise<void> {
    if (!(await this.#take(bucket))) throw new PacedLaterError(`${bucket}: the product's share of the account bucket is spent; continued in a later delivery`);
  }

  async #take(bucket: BucketName): Promise<boolean> {
    for (;;) {
      const pace = this.pacer.take(bucket);
      if (pace.go) return true;
      if (this.#waited + pace.waitMs > this.#pacing.waitBudgetMs()) return false;
      this.#waited += pace.waitMs;
      await this.#pacing.sleep(pace.waitMs);
    }
  }
}
