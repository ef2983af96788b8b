import type { Clients } from '../aws/client-factory.js';
import { installWindowScheduleName, scheduleInstallWindow } from '../aws/schedules.js';
import type { Settings } from '../config/settings.js';
import { addToInstallWindow, installWindowKey, type WindowEntry } from '../state/install-window.js';

// Install windows (README "Launch bursts"): once the association pacing (2.5 a second) spreads a
// burst's launches over minutes, the queue's batches after the first few are small, and each would
// read Systems Manager, send its commands and schedule its looks on its own. A batch sends its full
// commands (50 of one OS) at once; its other claimed instances join the window of their place,
// and the window's one run does those steps for all of them: at 2.5 a second a 60 s window holds ~150 installs, 3 Linux and 1 Windows
// SendCommand and 3 DescribeInstanceInformation instead of one of each per batch.

/** The window's run fires this long after its end: joins that started just before the end have landed. */
export const windowRunDelaySeconds = 5;

/** The end of the window `now` falls in: the next multiple of `seconds` after it, in epoch seconds. */
export function windowEndAfter(now: Date, seconds: number): number {
  return (Math.floor(now.getTime() / 1000 / seconds) + 1) * seconds;
}

/**
 * Window schedules this container has created (or found existing), by name, with their window's
 * end: the next batch joining the same window needs no CreateSchedule (nor its token). Pruned an
 * hour after the end, so a long-lived container keeps a handful.
 */
const scheduledWindows = new Map<string, number>();
let memoryOf: (() => Map<string, number>) | undefined;

/** Forgets the window schedules this container created (tests: each scenario starts with none). */
export function forgetScheduledInstallWindows(): void {
  scheduledWindows.clear();
}

/**
 * Keeps the window schedules created in the map `memory` gives instead of the module's (the burst
 * bench: one map per simulated container, as each real container has its own); no argument puts
 * the module's back, emptied.
 */
export function replaceInstallWindowMemory(memory?: () => Map<string, number>): void {
  memoryOf = memory;
  scheduledWindows.clear();
}

/** The window a batch's instances joined, and what scheduling its run said. */
export interface JoinedWindow {
  windowEnd: number;
  /** The window item's key in the state table. */
  key: string;
  schedule: { name: string; outcome: 'scheduled' | 'already-scheduled' | 'scheduled-before'; at: Date };
}

/** A window closed before its end (its run came early, or the clock of this container is late) is skipped at most this often. */
const maxClosedWindows = 3;

/**
 * Adds instances of one place to the current install window (one UpdateItem), or to the next one
 * when its run has closed it already, and makes sure the window's run is scheduled: one
 * CreateSchedule per window and container (`beforeSchedule` takes its pacing token first).
 */
export async function joinInstallWindow(
  clients: Clients,
  entries: readonly WindowEntry[],
  settings: Settings,
  now: Date,
  beforeSchedule: () => Promise<void>,
): Promise<JoinedWindow> {
  let windowEnd = windowEndAfter(now, settings.installWindowSeconds);
  for (let closed = 0; !(await addToInstallWindow(clients, settings.stateTable, windowEnd, entries)); closed++) {
    if (closed + 1 >= maxClosedWindows) throw new Error(`install windows up to ${installWindowKey(clients.place, windowEnd)} are closed already: the clock of this container is off`);
    windowEnd += settings.installWindowSeconds;
  }
  const at = new Date((windowEnd + windowRunDelaySeconds) * 1000);
  const name = installWindowScheduleName(clients, settings, windowEnd);
  const key = installWindowKey(clients.place, windowEnd);
  const scheduled = memoryOf?.() ?? scheduledWindows;
  if (scheduled.has(name)) return { windowEnd, key, schedule: { name, outcome: 'scheduled-before', at } };
  await beforeSchedule();
  const { outcome } = await scheduleInstallWindow(clients, windowEnd, at, settings);
  for (const [known, end] of scheduled) if (end < windowEnd - 3600) scheduled.delete(known);
  scheduled.set(name, windowEnd);
  return { windowEnd, key, schedule: { name, outcome, at } };
}
