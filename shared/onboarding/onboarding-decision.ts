import type { InstanceFacts } from '../aws/instances.js';
import type { OnboardingRecord, OnboardingStatus } from '../state/instance-record.js';
import type { Settings, TagMatch } from '../config/settings.js';
import type { OnboardTrigger } from '../input/triggers.js';

/** What an onboarding invocation should do next, decided from facts alone. */
export type OnboardingDecision =
  | { action: 'record-gone'; reason: string }
  | { action: 'record-stopped'; reason: string }
  | { action: 'skip'; reason: string }
  /** Nothing to do: a duplicate or late event, or a retry that is no longer current. */
  | { action: 'ignore'; reason: string }
  /** Restarted and already onboarded: a fresh metric check, no reinstall. */
  | { action: 'recheck'; reason: string }
  | { action: 'onboard'; reason: string; fresh: boolean };

/** A claim older than this is from an invocation that died (Lambda runs 15 minutes at most). */
export const abandonedClaimMs = 15 * 60 * 1000;

/**
 * Any other in-progress status untouched for this long belongs to a chain of invocations and
 * schedules that died (a timeout between two saves, a schedule whose delivery failed, retries
 * exhausted): the longest legitimate wait, SSM retries or the checker's backoff, is about an hour.
 */
export const stalledAfterMs = 6 * 60 * 60 * 1000;

const inProgress: ReadonlySet<OnboardingStatus> = new Set(['onboarding', 'waiting-for-ssm', 'installing', 'checking', 'alerting']);

/** Whether an onboarding is under way for this record (in progress, and not stalled). */
export function isUnderWay(record: Pick<OnboardingRecord, 'status' | 'updatedAt'>, now: Date): boolean {
  if (!inProgress.has(record.status)) return false;
  const idleMs = now.getTime() - Date.parse(record.updatedAt);
  return idleMs <= (record.status === 'onboarding' ? abandonedClaimMs : stalledAfterMs);
}

/** Statuses in which the agent's install command has been sent for the recorded launch. */
const agentSent: ReadonlySet<OnboardingStatus> = new Set(['installing', 'checking', 'healthy', 'alerting', 'alerted']);

/**
 * Finished statuses a remediation may start over (fresh: profile, SSM, reinstall, check): an
 * audit found the instance unmonitored although onboarding had ended. In-progress statuses are
 * left to the invocation that owns them.
 */
const remediable: ReadonlySet<OnboardingStatus> = new Set(['healthy', 'alerted']);

function tagMatches(tags: Record<string, string>, match: TagMatch): boolean {
  const value = tags[match.key];
  if (value === undefined) return false;
  return match.value === undefined || value.toLowerCase() === match.value.toLowerCase();
}

function describeTag(match: TagMatch): string {
  return match.value === undefined ? match.key : `${match.key}=${match.value}`;
}

/** Why an instance is excluded by the opt-out / opt-in tags, or undefined when it is in scope. */
export function exclusionReason(instance: InstanceFacts, settings: Pick<Settings, 'optOutTag' | 'optInTag'>): string | undefined {
  if (settings.optOutTag && tagMatches(instance.tags, settings.optOutTag)) {
    return `opt-out tag ${describeTag(settings.optOutTag)} is set`;
  }
  if (settings.optInTag && !tagMatches(instance.tags, settings.optInTag)) {
    return `opt-in tag ${describeTag(settings.optInTag)} is required and missing`;
  }
  return undefined;
}

/**
 * Decides the next onboarding step for one instance. Pure: the handler gathers the facts and
 * carries the decision out.
 *
 * @example
 * decideOnboarding({ trigger, instance, record: undefined, settings, now }); // { action: 'onboard', fresh: true, ... }
 */
export function decideOnboarding(facts: {
  trigger: OnboardTrigger;
  instance: InstanceFacts | undefined;
  record: OnboardingRecord | undefined;
  settings: Pick<Settings, 'optOutTag' | 'optInTag'>;
  now: Date;
}): OnboardingDecision {
  const { trigger, instance, record, settings, now } = facts;
  if (!instance) return { action: 'record-gone', reason: 'EC2 does not know this instance (terminated, or not in this account and region)' };
  if (instance.state === 'terminated' || instance.state === 'shutting-down') {
    return { action: 'record-gone', reason: `instance is ${instance.state}` };
  }
  if (instance.state !== 'running' && instance.state !== 'pending') {
    return { action: 'record-stopped', reason: `instance is ${instance.state}, no longer running` };
  }
  const excluded = exclusionReason(instance, settings);
  if (excluded) return { action: 'skip', reason: excluded };

  if (!record) return { action: 'onboard', reason: 'first time seen', fresh: true };

  const sameLaunch = record.launchTime !== undefined && record.launchTime === instance.launchTime;
  if (!sameLaunch) {
    // A remediation asks for a reinstall, not a check of an install the audit found not working.
    if (trigger.kind !== 'remediate' && record.commandId && (agentSent.has(record.status) || record.status === 'stopped')) {
      return { action: 'recheck', reason: 'started again with the agent already installed' };
    }
    return { action: 'onboard', reason: 'a new launch of an instance that was not onboarded', fresh: true };
  }

  if (trigger.kind !== 'retry' && inProgress.has(record.status) && !isUnderWay(record, now)) {
    return {
      action: 'onboard',
      reason: `resuming a stalled onboarding (${record.status}, untouched since ${record.updatedAt})`,
      fresh: false,
    };
  }

  if (trigger.kind === 'remediate' && remediable.has(record.status)) {
    return { action: 'onboard', reason: `remediation requested${trigger.requestedBy ? ` by ${trigger.requestedBy}` : ''} (was ${record.status})`, fresh: true };
  }

  if (trigger.kind === 'retry') {
    // 'error': this retry failed part-way and Scheduler (or Lambda) delivers it again.
    if ((record.status === 'waiting-for-ssm' || record.status === 'error') && trigger.attempt === record.ssmAttempts + 1) {
      return { action: 'onboard', reason: `scheduled retry ${trigger.attempt} while waiting for Systems Manager`, fresh: false };
    }
    return { action: 'ignore', reason: `retry ${trigger.attempt} is not current (status ${record.status}, ${record.ssmAttempts} attempts made)` };
  }

  switch (record.status) {
    case 'error':
      return { action: 'onboard', reason: 'resuming after an error', fresh: false };
    case 'onboarding':
      return { action: 'ignore', reason: 'another invocation is onboarding this instance' };
    case 'gone':
      // EC2 says it runs: "gone" was recorded on a transient answer (not found right after launch).
      return { action: 'onboard', reason: 'was recorded gone, but EC2 says it is running', fresh: true };
    case 'stopped':
      // Running again with the agent installed: check it, never reinstall it.
      if (record.commandId) return { action: 'recheck', reason: 'started again with the agent already installed' };
      return { action: 'onboard', reason: 'was stopped before its agent was installed, now running', fresh: true };
    case 'skipped':
      return { action: 'onboard', reason: 'was skipped, now in scope and running', fresh: true };
    default:
      return { action: 'ignore', reason: `duplicate event: this launch is already ${record.status}` };
  }
}
