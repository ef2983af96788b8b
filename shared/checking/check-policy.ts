import type { OsFamily } from '../agent-config.js';
import type { Diagnosis, DiagnosisCode } from './check-diagnosis.js';
import type { OnboardingRecord, OnboardingStatus } from '../state/instance-record.js';
import type { Settings } from '../config/settings.js';

type PolicySettings = Pick<Settings, 'checkMaxAttempts' | 'checkRetryDelaySeconds' | 'windowsGraceSeconds'>;

/** Whether a check invocation should run, and as which attempt. */
export type CheckCurrency = { run: true; attempt: number } | { run: false; reason: string };

/** Statuses in which a scheduled check is expected. */
const awaitingCheck: ReadonlySet<OnboardingStatus> = new Set(['checking', 'alerting']);
/** Statuses in which onboarding itself is still working: a check by hand would race it. */
const onboardingBusy: ReadonlySet<OnboardingStatus> = new Set(['onboarding', 'waiting-for-ssm', 'installing']);

/**
 * Decides whether a check runs. A scheduled check (`attempt` given) runs only when it is the one
 * the record waits for (`checkAttempts + 1`), so duplicates and checks left over from an earlier
 * launch do nothing, like onboarding's retries. A check by hand (no attempt) runs as the next
 * attempt unless onboarding is busy with the instance.
 */
export function checkCurrency(attempt: number | undefined, record: OnboardingRecord | undefined): CheckCurrency {
  if (!record) return { run: false, reason: 'no onboarding record for this instance: it was never onboarded' };
  const next = record.checkAttempts + 1;
  if (attempt === undefined) {
    if (onboardingBusy.has(record.status)) return { run: false, reason: `onboarding is in progress (status ${record.status})` };
    // Out of scope (opt-out tag, or no opt-in tag): a check could re-send the install command to an
    // instance its owners keep out of the product. Onboarding decides scope; the checker follows it.
    if (record.status === 'skipped') return { run: false, reason: `the instance is out of scope (${record.reason ?? 'skipped'}): onboarding skipped it` };
    return { run: true, attempt: next };
  }
  if (awaitingCheck.has(record.status) && attempt === next) return { run: true, attempt };
  // The check that claimed an alert (status alerting, its attempt recorded) died before the alert
  // was confirmed: Lambda delivers the same check again, and it must send the alert.
  if (record.status === 'alerting' && attempt === record.checkAttempts) return { run: true, attempt };
  // A recovery message that could not be sent is retried by one more scheduled check.
  if (record.status === 'healthy' && record.alertedAt && attempt === next) return { run: true, attempt };
  return { run: false, reason: `check ${attempt} is not current (status ${record.status}, ${record.checkAttempts} checks made)` };
}

/** Diagnoses that re-sending the install command can fix. */
const fixedByReinstall: ReadonlySet<DiagnosisCode> = new Set(['command-not-sent', 'command-failed', 'command-timed-out']);

/** What to do about a diagnosis. */
export type CheckDecision =
  | { action: 'retry'; nextAttempt: number; at: Date; reinstall: boolean; reason: string }
  | { action: 'alert'; reason: string }
  /** This launch's failure was already alerted: record the diagnosis, send nothing. */
  | { action: 'already-alerted'; reason: string };

/**
 * The delay before check `attempt + 1`: the retry delay doubled per attempt made, plus the Windows
 * grace period (Windows starts publishing later than Linux, as onboarding's first check allows).
 */
export function retryDelaySeconds(attempt: number, os: OsFamily, settings: PolicySettings): number {
  return settings.checkRetryDelaySeconds * 2 ** (attempt - 1) + (os === 'windows' ? settings.windowsGraceSeconds : 0);
}

/**
 * Decides, after check `attempt` found metrics missing, whether to retry (re-check later, re-sending
 * the install command when that can help) or to alert. A diagnosis no retry can fix alerts at once;
 * a retryable one alerts when `checkMaxAttempts` checks have been made. Pure.
 *
 * @example
 * decideAfterDiagnosis({ diagnosis, record, attempt: 1, os: 'linux', settings, now });
 * // { action: 'retry', nextAttempt: 2, at: now + 300 s, reinstall: true, ... } for a failed install
 */
export function decideAfterDiagnosis(facts: {
  diagnosis: Diagnosis;
  record: Pick<OnboardingRecord, 'status' | 'launchTime' | 'alertedAt' | 'alertedLaunch' | 'reinstalls' | 'reason'>;
  attempt: number;
  os: OsFamily;
  settings: PolicySettings;
  now: Date;
}): CheckDecision {
  const { diagnosis, record, attempt, os, settings, now } = facts;
  if (record.alertedAt && record.alertedLaunch === record.launchTime) {
    return { action: 'already-alerted', reason: `this launch was alerted at ${record.alertedAt}` };
  }
  if (record.status === 'alerting') return { action: 'alert', reason: 'the previous alert was not confirmed sent' };
  if (!diagnosis.retryable) return { action: 'alert', reason: `${diagnosis.code} cannot be fixed by a retry` };
  if (diagnosis.code === 'ssm-offline' && record.reason === 'ssm-unreachable') {
    return { action: 'alert', reason: 'onboarding already waited its SSM_MAX_ATTEMPTS looks for Systems Manager' };
  }
  if (attempt >= settings.checkMaxAttempts) {
    return { action: 'alert', reason: `metrics still missing after ${attempt} of ${settings.checkMaxAttempts} checks` };
  }
  const reinstall = fixedByReinstall.has(diagnosis.code) && (record.reinstalls ?? 0) < settings.checkMaxAttempts;
  const delay = retryDelaySeconds(attempt, os, settings);
  return {
    action: 'retry',
    nextAttempt: attempt + 1,
    at: new Date(now.getTime() + delay * 1000),
    reinstall,
    reason: `${diagnosis.code}: check ${attempt + 1} of ${settings.checkMaxAttempts} in ${delay} s${reinstall ? ', install command re-sent' : ''}`,
  };
}

/**
 * When to try again to deliver an alert whose publish failed, or undefined to stop (the record
 * keeps status `alerting`, and a check by hand sends it). Bounded: as many tries as checks.
 */
export function alertRetryAt(attempt: number, settings: PolicySettings, now: Date): Date | undefined {
  if (attempt >= settings.checkMaxAttempts * 2) return undefined;
  return new Date(now.getTime() + settings.checkRetryDelaySeconds * 1000);
}

type LookSettings = Pick<Settings, 'checkDelaySeconds' | 'windowsGraceSeconds'>;

/**
 * Seconds after the install command at which a batch of instances is looked at before its first
 * full check. The simulator's register (test/simulator/README.md, H2) gives the agent's first
 * datapoint 50–90 s after SendCommand on Linux and 120–240 s on Windows: looks every 30–60 s over
 * those ranges find a healthy instance within a minute of its first datapoint, and each look costs
 * one GetMetricData call for up to 250 instances, so looking early is cheap.
 */
export const earlyLookSeconds: readonly number[] = [60, 90, 120, 180, 240, 300, 420];

/** Seconds after the install command of an instance's first full check: the agent's first interval, later for Windows. */
export function firstCheckSeconds(os: OsFamily, settings: LookSettings): number {
  return settings.checkDelaySeconds + (os === 'windows' ? settings.windowsGraceSeconds : 0);
}

/**
 * The offsets (seconds after the install command) of a batch's looks, in order: the early looks
 * before the later of the two first checks, and each OS's first check. Look `n` (1-based) is at
 * `lookPlan(settings)[n - 1]`; at an instance's first-check offset its look is the full check 1.
 *
 * @example
 * lookPlan({ checkDelaySeconds: 300, windowsGraceSeconds: 300 }); // [60, 90, 120, 180, 240, 300, 420, 600]
 */
export function lookPlan(settings: LookSettings): number[] {
  const firsts = [firstCheckSeconds('linux', settings), firstCheckSeconds('windows', settings)];
  const last = Math.max(...firsts);
  return [...new Set([...earlyLookSeconds.filter((seconds) => seconds < last), ...firsts])].sort((a, b) => a - b);
}

/**
 * Whether look `look` of a batch is, for an instance of `os`, its first full check (with the
 * diagnosis, retries and alert) rather than an early look that only records it healthy when its
 * metrics are there. A look past the plan (a schedule of older settings) is a full check.
 */
export function isFullCheck(look: number, os: OsFamily, settings: LookSettings): boolean {
  const offset = lookPlan(settings)[look - 1];
  return offset === undefined || offset >= firstCheckSeconds(os, settings);
}

/** Seconds from look `look` to the next one, or undefined after the last. */
export function nextLookDelaySeconds(look: number, settings: LookSettings): number | undefined {
  const plan = lookPlan(settings);
  const [here, next] = [plan[look - 1], plan[look]];
  return here === undefined || next === undefined ? undefined : next - here;
}
