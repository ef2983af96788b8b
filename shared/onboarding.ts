import { describeError } from './aws-errors.js';
import { InstanceNotReachableError, sendInstallCommand } from './agent-commands.js';
import { describeInstance, type InstanceFacts } from './instances.js';
import { ensureAgentProfile, InstanceGoneError } from './instance-profiles.js';
import { logger } from './logger.js';
import { decideOnboarding, type OnboardingDecision } from './onboarding-decision.js';
import {
  advance,
  newRecord,
  readRecord,
  saveRecord,
  StaleRecordError,
  type OnboardingRecord,
  type OnboardingStatus,
} from './onboarding-state.js';
import { scheduleName, scheduleOnce } from './schedules.js';
import type { Settings } from './settings.js';
import { isOnline, ssmPresence } from './ssm-presence.js';
import type { OnboardTrigger } from './triggers.js';

/** What one onboarding invocation did, returned by the handler and logged. */
export interface OnboardingResult {
  instanceId: string;
  action: OnboardingDecision['action'];
  status: OnboardingStatus | undefined;
  reason: string;
}

/** When the checker should look: after the agent's first interval, later for Windows. */
export function checkTime(os: InstanceFacts['os'], settings: Settings, now: Date): Date {
  const delay = settings.checkDelaySeconds + (os === 'windows' ? settings.windowsGraceSeconds : 0);
  return new Date(now.getTime() + delay * 1000);
}

async function scheduleCheck(record: OnboardingRecord, settings: Settings, now: Date): Promise<OnboardingRecord> {
  const attempt = record.checkAttempts + 1;
  const at = checkTime(record.os ?? 'linux', settings, now);
  const outcome = await scheduleOnce(
    {
      name: scheduleName(settings, 'check', record.instanceId, attempt),
      at,
      targetArn: settings.checkFunctionArn,
      input: { instanceId: record.instanceId, attempt },
    },
    settings,
  );
  return saveRecord(
    settings.stateTable,
    advance(record, { status: 'checking' }, 'check-scheduled', now, `${outcome} for ${at.toISOString()} (check ${attempt})`),
  );
}

/** Waits for Systems Manager: schedules the next attempt, or gives up after the configured count. */
async function waitForSsm(record: OnboardingRecord, pingStatus: string, settings: Settings, now: Date): Promise<OnboardingRecord> {
  const attempts = record.ssmAttempts + 1;
  if (attempts >= settings.ssmMaxAttempts) {
    return saveRecord(
      settings.stateTable,
      advance(
        record,
        { status: 'failed', reason: 'ssm-unreachable', ssmAttempts: attempts },
        'ssm-unreachable',
        now,
        `not online in Systems Manager after ${attempts} attempts (last ping status ${pingStatus})`,
      ),
    );
  }
  const at = new Date(now.getTime() + settings.ssmRetryDelaySeconds * 1000);
  const outcome = await scheduleOnce(
    {
      name: scheduleName(settings, 'onboard', record.instanceId, attempts + 1),
      at,
      targetArn: settings.onboardFunctionArn,
      input: { instanceId: record.instanceId, attempt: attempts + 1 },
    },
    settings,
  );
  return saveRecord(
    settings.stateTable,
    advance(
      record,
      { status: 'waiting-for-ssm', ssmAttempts: attempts },
      'waiting-for-ssm',
      now,
      `ping status ${pingStatus}; attempt ${attempts + 1} ${outcome} for ${at.toISOString()}`,
    ),
  );
}

/** The onboarding steps proper: profile, Systems Manager readiness, install command, check. */
async function onboard(claimed: OnboardingRecord, instance: InstanceFacts, settings: Settings, now: Date): Promise<OnboardingRecord> {
  let record = claimed;
  if (!record.profilePath) {
    const profile = await ensureAgentProfile(instance, settings);
    const detail = [
      profile.profileArn,
      profile.attached.length ? `attached ${profile.attached.join(', ')}` : undefined,
      profile.missing.length ? `role lacks ${profile.missing.join(', ')}` : undefined,
      profile.note,
    ].filter(Boolean).join('; ');
    record = await saveRecord(
      settings.stateTable,
      advance(
        record,
        {
          profilePath: profile.path,
          profileArn: profile.profileArn,
          roleName: profile.roleName,
          missingPolicies: profile.missing.length ? profile.missing : undefined,
        },
        `profile:${profile.path}`,
        now,
        detail || undefined,
      ),
    );
  }

  if (!record.commandId) {
    const presence = await ssmPresence(instance.instanceId);
    if (!isOnline(presence)) return waitForSsm(record, presence.pingStatus, settings, now);
    let commandId: string;
    try {
      commandId = await sendInstallCommand(instance.instanceId, instance.os, settings);
    } catch (error) {
      if (error instanceof InstanceNotReachableError) return waitForSsm(record, 'InvalidInstanceId', settings, now);
      throw error;
    }
    // Saved before anything else can fail, so a retried invocation never installs twice.
    record = await saveRecord(
      settings.stateTable,
      advance(
        record,
        { status: 'installing', commandId, commandSentAt: now.toISOString() },
        'install-command-sent',
        now,
        `${settings.agentDocumentName} with ${settings.configParameter[instance.os]} (command ${commandId})`,
      ),
    );
  }
  return scheduleCheck(record, settings, now);
}

function launchFields(instance: InstanceFacts): Partial<OnboardingRecord> {
  return { os: instance.os, name: instance.name, launchTime: instance.launchTime };
}

/**
 * Runs one onboarding invocation for the instance the trigger names: gathers the facts, decides,
 * acts, and records every step in the state table.
 */
export async function runOnboarding(trigger: OnboardTrigger, settings: Settings, now = new Date()): Promise<OnboardingResult> {
  const { instanceId } = trigger;
  const [instance, existing] = await Promise.all([describeInstance(instanceId), readRecord(settings.stateTable, instanceId)]);
  const decision = decideOnboarding({ trigger, instance, record: existing, settings, now });
  logger.info('onboarding decision', { instanceId, trigger: trigger.kind, decision, status: existing?.status });
  const base = existing ?? newRecord(instanceId, now);
  const result = (status: OnboardingStatus | undefined): OnboardingResult => ({ instanceId, action: decision.action, status, reason: decision.reason });

  switch (decision.action) {
    case 'ignore':
      return result(existing?.status);
    case 'record-gone':
    case 'record-stopped':
    case 'skip': {
      const status = decision.action === 'skip' ? 'skipped' : decision.action === 'record-gone' ? 'gone' : 'stopped';
      const saved = await saveRecord(
        settings.stateTable,
        advance(base, { ...(instance ? launchFields(instance) : {}), status, reason: decision.reason }, status, now, decision.reason),
      );
      return result(saved.status);
    }
    case 'recheck': {
      if (!instance) throw new Error('unreachable: recheck without an instance');
      const restarted = await saveRecord(
        settings.stateTable,
        advance(base, { ...launchFields(instance), status: 'onboarding', checkAttempts: 0, reason: undefined, lastError: undefined }, 'restarted', now, decision.reason),
      );
      const saved = await scheduleCheck(restarted, settings, now);
      return result(saved.status);
    }
    case 'onboard': {
      if (!instance) throw new Error('unreachable: onboard without an instance');
      const reset: Partial<OnboardingRecord> = decision.fresh
        ? { profilePath: undefined, profileArn: undefined, roleName: undefined, missingPolicies: undefined, commandId: undefined, commandSentAt: undefined, ssmAttempts: 0, checkAttempts: 0 }
        : {};
      let record: OnboardingRecord;
      try {
        record = await saveRecord(
          settings.stateTable,
          advance(base, { ...reset, ...launchFields(instance), status: 'onboarding', reason: undefined, lastError: undefined }, 'claimed', now, decision.reason),
        );
      } catch (error) {
        // A duplicate event racing this one claimed the instance first: it does the work.
        if (!(error instanceof StaleRecordError)) throw error;
        return { instanceId, action: 'ignore', status: existing?.status, reason: 'another invocation claimed this instance first' };
      }
      try {
        record = await onboard(record, instance, settings, now);
        return result(record.status);
      } catch (error) {
        const gone = error instanceof InstanceGoneError;
        const failed = advance(
          record,
          gone ? { status: 'gone', reason: describeError(error) } : { status: 'error', lastError: describeError(error) },
          gone ? 'gone' : 'error',
          new Date(),
          describeError(error),
        );
        // Keep the record of what was done even when the step failed; a failed write here must
        // not hide the original error.
        await saveRecord(settings.stateTable, failed).catch((writeError: unknown) =>
          logger.error('could not record the failure', { instanceId, error: describeError(writeError) }),
        );
        if (gone) return result('gone');
        throw error;
      }
    }
  }
}
