/**
 * The simulated clock: real time plus an offset that only ever grows.
 *
 * The handlers read the time with `new Date()` and `Date.now()`, and they must keep doing so (no
 * fake timers: the SDK's sockets, retries and back-off run on real timers). So the clock shifts
 * `Date` of this process by an offset: `advance(5 * 60_000)` makes every `new Date()` five minutes
 * later, for the handlers, the SDK, the proxy and the simulator alike, while `setTimeout` stays
 * real. Schedules are due when their `at(...)` time is at or before `clock.now()`, and the agents'
 * datapoints carry `clock.now()`, so "metrics stopped 20 minutes ago" means the same to the
 * checker as to the simulator.
 *
 * moto keeps its own clock (EC2 LaunchTime, SNS timestamps are real time): a launch is dated at
 * the real time it happened, which is at or before the simulated time.
 */
export class SimulatedClock {
  readonly #RealDate: DateConstructor;
  #offsetMs = 0;
  #startedAt: number;
  #installed = false;

  constructor() {
    this.#RealDate = globalThis.Date;
    this.#startedAt = this.#RealDate.now();
  }

  /** Shifts the process's `Date` by the offset. Call {@link uninstall} to put the real one back. */
  install(): this {
    if (this.#installed) return this;
    const RealDate = this.#RealDate;
    const clock = this;
    // A subclass keeps instanceof, Date.parse, Date.UTC and every method; only "now" moves.
    class SimulatedDate extends RealDate {
      constructor(...args: unknown[]) {
        if (args.length === 0) super(RealDate.now() + clock.#offsetMs);
        else super(...(args as [string | number | Date]));
      }
      static override now(): number {
        return RealDate.now() + clock.#offsetMs;
      }
    }
    globalThis.Date = SimulatedDate as DateConstructor;
    this.#installed = true;
    return this;
  }

  uninstall(): void {
    if (!this.#installed) return;
    globalThis.Date = this.#RealDate;
    this.#installed = false;
  }

  /** The simulated time, in ms since the epoch. */
  now(): number {
    return this.#RealDate.now() + this.#offsetMs;
  }

  /** Moves the simulated time forward. */
  advance(ms: number): void {
    if (ms < 0) throw new Error('the simulated clock does not go back');
    this.#offsetMs += ms;
  }

  /** Makes the current simulated time the origin of {@link elapsed} (`+00:00`). */
  markStart(): void {
    this.#startedAt = this.now();
  }

  get startedAt(): number {
    return this.#startedAt;
  }

  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** Simulated ms since {@link markStart} for a time (default now). */
  sinceStart(at: number = this.now()): number {
    return at - this.#startedAt;
  }

  /** `+mm:ss` (or `+h:mm:ss`) since the start, for a timeline. */
  label(at: number = this.now()): string {
    return elapsedLabel(this.sinceStart(at));
  }
}

/** `+mm:ss` (or `+h:mm:ss`) for a duration in ms; negative durations read `-mm:ss`. */
export function elapsedLabel(ms: number): string {
  const sign = ms < 0 ? '-' : '+';
  const total = Math.round(Math.abs(ms) / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const mmss = `${String(minutes).padStart(2, '0')}:${String(seconds).padStart(2, '0')}`;
  return hours > 0 ? `${sign}${hours}:${mmss}` : `${sign}${mmss}`;
}
