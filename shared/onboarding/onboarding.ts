import type { ClientFactory, Clients } from '../aws/client-factory.js';
import { clientFactoryOf } from '../aws/product-clients.js';
import { withMemberAccess } from '../checking/member-access.js';
import { InstanceGoneError, InstanceNotReachableError, InstanceNotYetVisibleError, StaleRecordError } from '../errors.js';
import { describeError } from '../aws/errors.js';
import { sendInstallCommand } from './agent-commands.js';
import { describeInstance, type InstanceFacts } from '../aws/instances.js';
import { ensureAgentProfile } from './instance-profiles.js';
import { logAbout, logger } from '../observability/logger.js';
import { decideOnboarding, type OnboardingDecision } from './onboarding-decision.js';
import {
  advance,
  newRecord,
  readRecord,
  saveRecord,
  RecordTrail,
  statusChange,
  type OnboardingRecord,
  type OnboardingStatus,
  type RecordChanges,
} from '../state/instance-record.js';
import { placeInput, scheduleCheck, scheduleName, scheduleOnce } from '../aws/schedules.js';
import type { Settings } from '../config/settings.js';
import { isOnline, ssmPresence } from './ssm-presence.js';
import type { OnboardTrigger } from '../input/triggers.js';

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
  const delay = settings.checkDelaySeconds + (os === 'windows' ? settings.windowsGraceSeconds : 0);
  return new Date(now.getTime() + delay * 1000);
}

async function scheduleNextCheck(clients: Clients, trail: RecordTrail, settings: Settings, now: Date, at = checkTime(trail.record.os ?? 'linux', settings, now)): Promise<OnboardingRecord> {
  const record = trail.record;
  const attempt = record.checkAttempts + 1;
  const outcome = await scheduleCheck(clients, record.instanceId, attempt, at, settings);
  return trail.step({ status: 'checking' }, 'check-scheduled', now, `${outcome} for ${at.toISOString()} (check ${attempt})`);
}

/** How soon the checker looks at an instance onboarding gave up on (Scheduler's smallest useful delay). */
const handOverDelayMs = 60_000;

/** Waits for Systems Manager: schedules the next attempt, or gives up after the configured count. */
async function waitForSsm(clients: Clients, trail: RecordTrail, pingStatus: string, settings: Settings, now: Date): Promise<OnboardingRecord> {
  const { instanceId } = trail.record;
  const attempts = trail.record.ssmAttempts + 1;
  if (attempts >= settings.ssmMaxAttempts) {
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
  return trail.step(
    { status: 'waiting-for-ssm', ssmAttempts: attempts },
    'waiting-for-ssm',
    now,
    `ping status ${pingStatus}; attempt ${attempts + 1} ${outcome} for ${at.toISOString()}`,
  );
}

/** The onboarding steps proper: profile, Systems Manager readiness, install command, check. */
async function onboard(clients: Clients, trail: RecordTrail, instance: InstanceFacts, settings: Settings, now: Date): Promise<OnboardingRecord> {
  if (!trail.record.profilePath) {
    const profile = await ensureAgentProfile(clients, instance, settings);
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

  if (!trail.record.commandId) {
    const presence = await ssmPresence(clients, instance.instanceId);
    if (!isOnline(presence)) return waitForSsm(clients, trail, presence.pingStatus, settings, now);
    let commandId: string;
    try {
      commandId = await sendInstallCommand(clients, instance.instanceId, instance.os, settings);
    } catch (error) {
      if (error instanceof InstanceNotReachableError) return waitForSsm(clients, trail, 'InvalidInstanceId', settings, now);
      throw error;
    }
    // Saved right away, so a retried invocation does not send it again (only one that dies between
    // SendCommand and this save could; an in-place update plus an appended config is harmless twice).
    await trail.step(
      { status: 'installing', commandId, commandSentAt: now.toISOString() },
      'install-command-sent',
      now,
      `${settings.agentDocumentName} with ${settings.configParameter[instance.os]} (command ${commandId})`,
    );
  }
  return scheduleNextCheck(clients, trail, settings, now);
}

/**
 * Records why a step failed, from the last saved version, so the next invocation resumes from
 * there. A terminated instance is recorded `gone` and is not an error. Returns true when the
 * failure was the instance disappearing.
 */
async function recordFailure(trail: RecordTrail, error: unknown, settings: Settings): Promise<boolean> {
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

function launchFields(instance: InstanceFacts): Pick<OnboardingRecord, 'os' | 'name' | 'launchTime'> {
  return { os: instance.os, name: instance.name, launchTime: instance.launchTime };
}

/**
 * Runs one onboarding invocation for the instance the trigger names: gathers the facts, decides,
 * acts, and records every step in the state table.
 */
export async function runOnboarding(
  trigger: OnboardTrigger,
  settings: Settings,
  now = new Date(),
  factory: ClientFactory = clientFactoryOf(settings),
): Promise<OnboardingResult> {
  const clients = factory.clients(trigger.place ?? factory.hubPlace);
  logAbout(trigger.instanceId, undefined, clients.place);
  return withMemberAccess(
    factory,
    clients.place,
    trigger.instanceId,
    settings,
    now,
    () => onboardInstance(clients, trigger, settings, now),
    (reason) => ({ instanceId: trigger.instanceId, action: 'unreachable', status: 'error', reason }),
  );
}

async function onboardInstance(clients: Clients, trigger: OnboardTrigger, settings: Settings, now: Date): Promise<OnboardingResult> {
  const { instanceId } = trigger;
  const [described, read] = await Promise.allSettled([describeInstance(clients, instanceId), readRecord(clients, settings.stateTable, instanceId)]);
  if (read.status === 'rejected') throw read.reason;
  const existing = read.value;
  if (described.status === 'rejected') {
    // Leave a trace for an instance seen for the first time; an existing record is left as it is
    // (a throttled duplicate event must not turn a healthy instance into an error).
    if (!existing) await recordFailure(new RecordTrail(clients, settings.stateTable, newRecord(clients.place, instanceId, now)), described.reason, settings);
    throw described.reason;
  }
  const instance = described.value;
  if (!instance && !existing && trigger.kind === 'state-change') {
    // EC2 just announced this instance: "not found" is its eventual consistency right after a
    // launch (terminated instances stay visible for about an hour). Failing lets Lambda retry.
    throw new InstanceNotYetVisibleError(`${instanceId}: EC2 sent its ${trigger.state} event but DescribeInstances does not know it yet`);
  }
  logAbout(instanceId, instance?.launchTime ?? existing?.launchTime);
  const decision = decideOnboarding({ trigger, instance, record: existing, settings, now });
  logger.info('onboarding decision', { instanceId, trigger: trigger.kind, decision, status: existing?.status });
  const base = existing ?? newRecord(clients.place, instanceId, now);
  const result = (status: OnboardingStatus | undefined): OnboardingResult => ({ instanceId, action: decision.action, status, reason: decision.reason });

  switch (decision.action) {
    case 'ignore':
      return result(existing?.status);
    case 'record-gone':
    case 'record-stopped':
    case 'skip': {
      const status = decision.action === 'skip' ? 'skipped' : decision.action === 'record-gone' ? 'gone' : 'stopped';
      const saved = await saveRecord(
        clients,
        settings.stateTable,
        advance(base, { ...(instance ? launchFields(instance) : {}), ...statusChange(status, now, settings), reason: decision.reason }, status, now, decision.reason),
      );
      return result(saved.status);
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
        return { instanceId, action: 'ignore', status: existing?.status, reason: 'another invocation claimed this instance first' };
      }
      try {
        const record = decision.action === 'recheck' ? await scheduleNextCheck(clients, trail, settings, now) : await onboard(clients, trail, instance, settings, now);
        return result(record.status);
      } catch (error) {
        if (await recordFailure(trail, error, settings)) return result('gone');
        throw error;
      }
    }
  }
}
