import type { Clients } from '../aws/client-factory.js';
import { describeError } from '../aws/errors.js';
import type { InstanceFacts } from '../aws/instances.js';
import { placeInput, scheduleCheck, scheduleName, scheduleOnce } from '../aws/schedules.js';
import { firstCheckSeconds, lookPlan } from '../checking/check-policy.js';
import type { Settings } from '../config/settings.js';
import { InstanceGoneError, StaleRecordError } from '../errors.js';
import type { OnboardTrigger } from '../input/triggers.js';
import { logger } from '../observability/logger.js';
import {
  advance,
  newRecord,
  RecordTrail,
  saveRecord,
  statusChange,
  type OnboardingRecord,
  type OnboardingStatus,
  type RecordChanges,
} from '../state/instance-record.js';
import { ensureAgentProfile } from './instance-profiles.js';
import { decideOnboarding, type OnboardingDecision } from './onboarding-decision.js';

// The steps of one instance's onboarding, shared by the single-instance flow (onboarding.ts: a
// scheduled retry, a remediation, an event delivered straight to the function) and the batch of a
// queue (onboarding-batch.ts). The batch gathers facts and sends commands for many instances at
// once; every step that reads or writes one instance's record is one of these, so both paths keep
// the same rules.

/** What one onboarding invocation did, returned by the handler and logged. */
export interface OnboardingResult {
  instanceId: string;
  /** `unreachable`: the hub cannot act in the instance's account and region (see withMemberAccess). */
  action: OnboardingDecision['action'] | 'unreachable';
  status: OnboardingStatus | undefined;
  reason: string;
}

/** When the checker should look: after the agent's first interval, later for Windows. */
export function checkTime(os: InstanceFacts['os'], settings: Settings, now: Date): Date {
  return new Date(now.getTime() + firstCheckSeconds(os, settings) * 1000);
}

/** Schedules the instance's next check and records it (`checking`). */
export async function scheduleNextCheck(
  clients: Clients,
  trail: RecordTrail,
  settings: Settings,
  now: Date,
  at = checkTime(trail.record.os ?? 'linux', settings, now),
): Promise<OnboardingRecord> {
  const record = trail.record;
  const attempt = record.checkAttempts + 1;
  const outcome = await scheduleCheck(clients, record.instanceId, attempt, at, settings);
  return trail.step({ status: 'checking' }, 'check-scheduled', now, `${outcome} for ${at.toISOString()} (check ${attempt})`);
}

/** When the first look of instances whose install command is sent now falls (check-policy `lookPlan`). */
export function firstLookAt(settings: Settings, now: Date): Date {
  return new Date(now.getTime() + (lookPlan(settings)[0] as number) * 1000);
}

/** Records that an instance's first look is scheduled (`checking`), naming the batch schedule it is in. */
export function recordFirstLook(trail: RecordTrail, scheduled: { name: string; outcome: string }, at: Date, instances: number, now: Date): Promise<OnboardingRecord> {
  return trail.step({ status: 'checking' }, 'check-scheduled', now, `${scheduled.outcome} for ${at.toISOString()} (check 1, first look of batch schedule ${scheduled.name}, ${instances} instance(s))`);
}

/** Whether the next look for Systems Manager would be the instance's last: onboarding then hands it to the checker. */
export function givesUpOnSsm(record: Pick<OnboardingRecord, 'ssmAttempts'>, settings: Pick<Settings, 'ssmMaxAttempts'>): boolean {
  return record.ssmAttempts + 1 >= settings.ssmMaxAttempts;
}

/** Records that the instance waits for Systems Manager, with what scheduling its next attempt said. */
export function recordWaitingForSsm(trail: RecordTrail, pingStatus: string, scheduled: string, now: Date): Promise<OnboardingRecord> {
  const attempts = trail.record.ssmAttempts + 1;
  return trail.step({ status: 'waiting-for-ssm', ssmAttempts: attempts }, 'waiting-for-ssm', now, `ping status ${pingStatus}; attempt ${attempts + 1} ${scheduled}`);
}

/**
 * Records that the instance joined an install window: `waiting-for-ssm`, the status a scheduled
 * retry resumes (decideOnboarding: a retry whose attempt is `ssmAttempts + 1`), and the window's run
 * is that retry. `ssmAttempts` is left as it is: a window is no look at Systems Manager, so it does
 * not spend one of the SSM_MAX_ATTEMPTS looks, and the attempt stays current for the window's run
 * only until the run changes the record (command sent, or a real look that found it offline): the
 * run of a window that fires twice then finds its retries no longer current and sends nothing.
 */
export function recordJoinedWindow(trail: RecordTrail, joined: { key: string; schedule: { name: string; outcome: string; at: Date } }, instances: number, now: Date): Promise<OnboardingRecord> {
  const attempt = trail.record.ssmAttempts + 1;
  return trail.step(
    { status: 'waiting-for-ssm' },
    'install-window',
    now,
    `attempt ${attempt} in install window ${joined.key} with ${instances} instance(s) of this batch; its run ${joined.schedule.outcome} for ${joined.schedule.at.toISOString()} (schedule ${joined.schedule.name})`,
  );
}

/** How soon the checker looks at an instance onboarding gave up on (Scheduler's smallest useful delay). */
const handOverDelayMs = 60_000;

/** Waits for Systems Manager: schedules the next attempt, or gives up after the configured count. */
export async function waitForSsm(clients: Clients, trail: RecordTrail, pingStatus: string, settings: Settings, now: Date): Promise<OnboardingRecord> {
  const { instanceId } = trail.record;
  const attempts = trail.record.ssmAttempts + 1;
  if (givesUpOnSsm(trail.record, settings)) {
    // Onboarding stops waiting; the checker, the one place that alerts, diagnoses it and tells a
    // person (it alerts ssm-offline at once for this reason, without waiting again).
    await trail.step(
      { reason: 'ssm-unreachable', ssmAttempts: attempts },
      'ssm-unreachable',
      now,
      `not online in Systems Manager after ${attempts} looks (last ping status ${pingStatus}); handed over to the checker`,
    );
    return scheduleNextCheck(clients, trail, settings, now, new Date(now.getTime() + handOverDelayMs));
  }
  const at = new Date(now.getTime() + settings.ssmRetryDelaySeconds * 1000);
  const outcome = await scheduleOnce(
    clients,
    {
      name: scheduleName(clients, settings, 'onboard', instanceId, attempts + 1),
      at,
      targetArn: settings.onboardFunctionArn,
      input: { ...placeInput(clients), instanceId, attempt: attempts + 1 },
    },
    settings,
  );
  return recordWaitingForSsm(trail, pingStatus, `${outcome} for ${at.toISOString()}`, now);
}

/**
 * The profile step, when the record has none yet for this launch: a profile whose role may publish
 * (a workload's profile is kept, never replaced), recorded with the path taken. `beforeAttach`
 * runs before each AttachRolePolicy (the batch's pacing).
 */
export async function profileStep(clients: Clients, trail: RecordTrail, instance: InstanceFacts, settings: Settings, now: Date, beforeAttach?: () => Promise<void>): Promise<void> {
  if (trail.record.profilePath) return;
  const profile = await ensureAgentProfile(clients, instance, settings, beforeAttach);
  const detail = [
    profile.profileArn,
    profile.attached.length ? `attached ${profile.attached.join(', ')}` : undefined,
    profile.missing.length ? `role lacks ${profile.missing.join(', ')}` : undefined,
    profile.note,
  ].filter(Boolean).join('; ');
  await trail.step(
    {
      profilePath: profile.path,
      profileArn: profile.profileArn,
      roleName: profile.roleName,
      missingPolicies: profile.missing.length ? profile.missing : undefined,
    },
    `profile:${profile.path}`,
    now,
    detail || undefined,
  );
}

/**
 * Records the install command sent to the instance. Saved right away, so a retried invocation does
 * not send it again (only one that dies between SendCommand and this save could; an in-place update
 * plus an appended config is harmless twice).
 */
export async function recordCommandSent(trail: RecordTrail, commandId: string, instance: InstanceFacts, settings: Settings, now: Date): Promise<OnboardingRecord> {
  return trail.step(
    { status: 'installing', commandId, commandSentAt: now.toISOString() },
    'install-command-sent',
    now,
    `${settings.agentDocumentName} with ${settings.configParameter[instance.os]} (command ${commandId})`,
  );
}

/**
 * Records why a step failed, from the last saved version, so the next invocation resumes from
 * there. A terminated instance is recorded `gone` and is not an error. Returns true when the
 * failure was the instance disappearing.
 */
export async function recordFailure(trail: RecordTrail, error: unknown, settings: Settings): Promise<boolean> {
  // Another invocation wrote the record meanwhile: its record stands, nothing to add.
  if (error instanceof StaleRecordError) return false;
  const gone = error instanceof InstanceGoneError;
  const description = describeError(error);
  const now = new Date();
  try {
    await trail.step(
      gone ? { ...statusChange('gone', now, settings), reason: description } : { status: 'error', lastError: description },
      gone ? 'gone' : 'error',
      now,
      description,
    );
  } catch (writeError) {
    // A failed write here must not hide the original error.
    logger.error('could not record the failure', { instanceId: trail.record.instanceId, error: describeError(writeError) });
  }
  return gone;
}

/**
 * Leaves a trace of a failure to read an instance seen for the first time; an existing record is
 * left as it is (a throttled duplicate event must not turn a healthy instance into an error).
 */
export async function recordFirstSightFailure(clients: Clients, instanceId: string, existing: OnboardingRecord | undefined, error: unknown, settings: Settings, now: Date): Promise<void> {
  if (existing) return;
  await recordFailure(new RecordTrail(clients, settings.stateTable, newRecord(clients.place, instanceId, now)), error, settings);
}

function launchFields(instance: InstanceFacts): Pick<OnboardingRecord, 'os' | 'name' | 'launchTime'> {
  return { os: instance.os, name: instance.name, launchTime: instance.launchTime };
}

/** What {@link startOnboarding} left to do. */
export type OnboardingStart =
  /** Nothing more: the decision was carried out (ignored, or recorded skipped, stopped or gone). */
  | { kind: 'done'; result: OnboardingResult }
  /** The instance is claimed for this invocation: schedule a check (`recheck`) or onboard it. */
  | { kind: 'claimed'; action: 'recheck' | 'onboard'; trail: RecordTrail; instance: InstanceFacts; result: (status: OnboardingStatus | undefined) => OnboardingResult };

/**
 * Decides from the facts and carries out the decisions that end here; for `onboard` and
 * `recheck`, claims the instance (a conditional write: a duplicate event that claimed it first
 * does the work, this one is ignored) and returns the claim.
 */
export async function startOnboarding(
  clients: Clients,
  trigger: OnboardTrigger,
  instance: InstanceFacts | undefined,
  existing: OnboardingRecord | undefined,
  settings: Settings,
  now: Date,
): Promise<OnboardingStart> {
  const { instanceId } = trigger;
  const decision = decideOnboarding({ trigger, instance, record: existing, settings, now });
  logger.info('onboarding decision', { instanceId, trigger: trigger.kind, decision, status: existing?.status });
  const base = existing ?? newRecord(clients.place, instanceId, now);
  const result = (status: OnboardingStatus | undefined): OnboardingResult => ({ instanceId, action: decision.action, status, reason: decision.reason });

  switch (decision.action) {
    case 'ignore':
      return { kind: 'done', result: result(existing?.status) };
    case 'record-gone':
    case 'record-stopped':
    case 'skip': {
      const status = decision.action === 'skip' ? 'skipped' : decision.action === 'record-gone' ? 'gone' : 'stopped';
      const saved = await saveRecord(
        clients,
        settings.stateTable,
        advance(base, { ...(instance ? launchFields(instance) : {}), ...statusChange(status, now, settings), reason: decision.reason }, status, now, decision.reason),
      );
      return { kind: 'done', result: result(saved.status) };
    }
    case 'recheck':
    case 'onboard': {
      if (!instance) throw new Error(`unreachable: ${decision.action} without an instance`);
      const reset: RecordChanges =
        decision.action === 'recheck'
          ? { checkAttempts: 0, reinstalls: 0, diagnosis: undefined }
          : decision.fresh
            ? { profilePath: undefined, profileArn: undefined, roleName: undefined, missingPolicies: undefined, commandId: undefined, commandSentAt: undefined, ssmAttempts: 0, checkAttempts: 0, reinstalls: 0, diagnosis: undefined }
            : {};
      const trail = new RecordTrail(clients, settings.stateTable, base);
      try {
        await trail.step(
          { ...reset, ...launchFields(instance), status: 'onboarding', reason: undefined, lastError: undefined },
          decision.action === 'recheck' ? 'restarted' : 'claimed',
          now,
          decision.reason,
        );
      } catch (error) {
        // A duplicate event racing this one claimed the instance first: it does the work.
        if (!(error instanceof StaleRecordError)) throw error;
        return { kind: 'done', result: { instanceId, action: 'ignore', status: existing?.status, reason: 'another invocation claimed this instance first' } };
      }
      return { kind: 'claimed', action: decision.action, trail, instance, result };
    }
  }
}
