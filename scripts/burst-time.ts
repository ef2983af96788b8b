// The burst bench's clock: a discrete-event simulation on which the real handlers run.
//
// Simulated time stands still while code runs; it moves only when every piece of work in flight
// waits on it (a fake AWS call's round trip, a pacer's wait, an SQS batching window, a schedule's
// time). The driver then moves to the earliest of those waits, wakes whatever waits until that
// moment, and lets it run until it waits again. So calls of concurrent invocations reach the fake
// AWS, and its token buckets, in simulated-time order, whatever order the invocations started in.
//
// "Every piece of work waits" is detected as the microtask queue running dry: the fakes answer in
// process and nothing in the handlers' paths uses a real timer, so once the promise continuations
// queued by the last wake-up have run, a `setImmediate` callback runs and nothing else can.
// Code that waits on a real timer (the product's own `sleep`, used only on paths these fakes do
// not take: BatchGetItem's unprocessed keys, a profile not yet visible to EC2) would be resumed at
// a later simulated time than it asked for; `realWaits` in the report stays 0 while that is so.
//
// While installed, `Date` is this clock (the approach of test/simulator/clock.ts, with simulated
// instead of shifted time): `new Date()` and `Date.now()` in the product, the SDK and the fakes all
// read `epoch + now()`, so the delays the product computes (a schedule's `at(...)` minus its "now",
// a record's updatedAt against its "now") are simulated delays, unchanged.

/** One thing that happens at a simulated time. */
interface Due {
  at: number;
  seq: number;
  run: () => void;
}

/** A binary min-heap of due events, by time and then by the order they were asked for. */
class DueQueue {
  readonly #items: Due[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): Due | undefined {
    return this.#items[0];
  }

  push(item: Due): void {
    const items = this.#items;
    items.push(item);
    for (let i = items.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(items[i] as Due, items[parent] as Due)) break;
      [items[i], items[parent]] = [items[parent] as Due, items[i] as Due];
      i = parent;
    }
  }

  pop(): Due | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    items[0] = last;
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && before(items[left] as Due, items[smallest] as Due)) smallest = left;
      if (right < items.length && before(items[right] as Due, items[smallest] as Due)) smallest = right;
      if (smallest === i) break;
      [items[i], items[smallest]] = [items[smallest] as Due, items[i] as Due];
      i = smallest;
    }
    return top;
  }
}

const before = (a: Due, b: Due) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/**
 * Simulated milliseconds since the burst's start, with events due at given times.
 *
 * @example
 * const time = new SimulatedTime(Date.UTC(2026, 0, 5, 9));
 * time.at(10_000, () => startInvocation());
 * await time.runUntil(() => done(), 30 * 60_000);
 */
export class SimulatedTime {
  /** Epoch ms of simulated time 0 (a whole minute, so CloudWatch periods fall on whole simulated minutes). */
  readonly epoch: number;
  #now = 0;
  #seq = 0;
  readonly #due = new DueQueue();
  #RealDate: DateConstructor | undefined;

  constructor(epoch: number) {
    this.epoch = epoch;
  }

  /** Simulated ms since the start. */
  now(): number {
    return this.#now;
  }

  /** Runs `run` at simulated time `at` (now, if `at` has passed). */
  at(at: number, run: () => void): void {
    this.#due.push({ at: Math.max(at, this.#now), seq: this.#seq++, run });
  }

  /** Resolves `ms` simulated milliseconds from now. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.at(this.#now + Math.max(0, ms), resolve));
  }

  /**
   * Drives the simulation: runs due events in time order until `stop()` holds, nothing is due, or
   * the next event is after `limit`. Returns the simulated time it stopped at.
   */
  async runUntil(stop: () => boolean, limit: number): Promise<number> {
    for (;;) {
      await new Promise((resolve) => setImmediate(resolve));
      if (stop()) return this.#now;
      const next = this.#due.peek();
      if (!next || next.at > limit) return this.#now;
      this.#now = next.at;
      while ((this.#due.peek()?.at ?? Infinity) <= this.#now) (this.#due.pop() as Due).run();
    }
  }

  /** Makes `Date` this clock for the whole process, until {@link uninstallDate}. */
  installDate(): void {
    if (this.#RealDate) return;
    const RealDate = globalThis.Date;
    this.#RealDate = RealDate;
    const nowMs = () => this.epoch + this.#now;
    // A subclass keeps instanceof, Date.parse, Date.UTC and every method; only "now" moves.
    class SimulatedDate extends RealDate {
      constructor(...args: unknown[]) {
        if (args.length === 0) super(nowMs());
        else super(...(args as [string | number | Date]));
      }
      static override now(): number {
        return nowMs();
      }
    }
    globalThis.Date = SimulatedDate as DateConstructor;
  }

  uninstallDate(): void {
    if (!this.#RealDate) return;
    globalThis.Date = this.#RealDate;
    this.#RealDate = undefined;
  }
}

/** A small seeded generator (mulberry32): the same burst draws the same jitter on every run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
