import type { ClientFactory, Clients } from '../aws/client-factory.js';
import { clientFactoryOf } from '../aws/product-clients.js';
import { withMemberAccess } from '../checking/member-access.js';
import { InstanceNotReachableError, InstanceNotYetVisibleError } from '../errors.js';
import { sendInstallCommand } from './agent-commands.js';
import { describeInstance, type InstanceFacts } from '../aws/instances.js';
import { logAbout } from '../observability/logger.js';
import { readRecord, type RecordTrail, type OnboardingRecord } from '../state/instance-record.js';
import type { Settings } from '../config/settings.js';
import { isOnline, ssmPresence } from './ssm-presence.js';
import type { OnboardTrigger } from '../input/triggers.js';
import {
  profileStep,
  recordCommandSent,
  recordFailure,
  recordFirstSightFailure,
  scheduleNextCheck,
  startOnboarding,
  waitForSsm,
  type OnboardingResult,
} from './onboarding-steps.js';

export { checkTime, type OnboardingResult } from './onboarding-steps.js';

/** The onboarding steps proper: profile, Systems Manager readiness, install command, check. */
async function onboard(clients: Clients, trail: RecordTrail, instance: InstanceFacts, settings: Settings, now: Date): Promise<OnboardingRecord> {
  await profileStep(clients, trail, instance, settings, now);
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
    await recordCommandSent(trail, commandId, instance, settings, now);
  }
  return scheduleNextCheck(clients, trail, settings, now);
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
  return withMemberAccess(trigger, settings, now, factory, (clients) => onboardInstance(clients, trigger, settings, now), (reason) => ({ instanceId: trigger.instanceId, action: 'unreachable', status: 'error', reason }));
}

async function onboardInstance(clients: Clients, trigger: OnboardTrigger, settings: Settings, now: Date): Promise<OnboardingResult> {
  const { instanceId } = trigger;
  const [described, read] = await Promise.allSettled([describeInstance(clients, instanceId), readRecord(clients, settings.stateTable, instanceId)]);
  if (read.status === 'rejected') throw read.reason;
  const existing = read.value;
  if (described.status === 'rejected') {
    await recordFirstSightFailure(clients, instanceId, existing, described.reason, settings, now);
    throw described.reason;
  }
  const instance = described.value;
  if (!instance && !existing && trigger.kind === 'state-change') {
    // EC2 just announced this instance: "not found" is its eventual consistency right after a
    // launch (terminated instances stay visible for about an hour). Failing lets Lambda retry.
    throw new InstanceNotYetVisibleError(`${instanceId}: EC2 sent its ${trigger.state} event but DescribeInstances does not know it yet`);
  }
  logAbout(instanceId, instance?.launchTime ?? existing?.launchTime);
  const start = await startOnboarding(clients, trigger, instance, existing, settings, now);
  if (start.kind === 'done') return start.result;
  const { trail, result } = start;
  try {
    const record = start.action === 'recheck' ? await scheduleNextCheck(clients, trail, settings, now) : await onboard(clients, trail, start.instance, settings, now);
    return result(record.status);
  } catch (error) {
    if (await recordFailure(trail, error, settings)) return result('gone');
    throw error;
  }
}
