/**
 * A clock a test can set: `Date` and `Date.now()` in this process follow it, and workers started
 * with `useNodeTime` compare run_at and fire the crontab by it (graphile-worker's own time hook).
 * It keeps running at real speed from wherever it was set, so timers still fire: set it to one
 * second before a 3-hourly tick and that tick fires a second later, whatever the wall clock says.
 *
 * @example
 * const clock = installTestClock(new Date("2030-01-01T02:59:59Z"));
 * try { … } finally { clock.uninstall(); }
 */
const RealDate = Date;

export interface TestClock {
  /** The clock's time now. */
  now(): Date;
  /** Sets the clock; it runs on from there. */
  set(to: Date): void;
  /** Moves the clock forward. */
  advance(ms: number): void;
  /** Gives the process its real Date back. */
  uninstall(): void;
}

export function installTestClock(start: Date): TestClock {
  if (globalThis.Date !== RealDate) throw new Error("A test clock is installed already; uninstall it first.");
  let offset = start.getTime() - RealDate.now();
  const now = () => RealDate.now() + offset;
  class ClockDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(now());
      else super(...(args as [string | number | Date]));
    }
    static override now(): number {
      return now();
    }
  }
  globalThis.Date = ClockDate as DateConstructor;
  return {
    now: () => new RealDate(now()),
    set: (to) => {
      offset = to.getTime() - RealDate.now();
    },
    advance: (ms) => {
      offset += ms;
    },
    uninstall: () => {
      globalThis.Date = RealDate;
    },
  };
}
