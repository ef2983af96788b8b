import type { ClientFactory, Clients } from '../aws/client-factory.js';
import { clientFactoryOf } from '../aws/product-clients.js';
import { withMemberAccess } from '../checking/member-access.js';
import { StaleRecordError } from '../errors.js';
import { logAbout, logger } from '../observability/logger.js';
import { deleteInstanceAlarms } from '../checking/instance-alarms.js';
import { describeInstance } from '../aws/instances.js';
import { advance, readRecord, saveRecord, statusChange, type OnboardingRecord, type OnboardingStatus } from '../state/instance-record.js';
import { deleteSchedules, scheduleName } from '../aws/schedules.js';
import type { Settings } from '../config/settings.js';
import type { OffboardRequest } from '../input/triggers.js';

/**
 * The product's pending one-time schedules an instance may still have: names are deterministic, so
 * they are known from the record's attempt counters (check 1..n+1, onboarding retries 2..n+1).
 */
export function pendingScheduleNames(
  where: Pick<Clients, 'place' | 'hubPlace'>,
  record: OnboardingRecord | undefined,
  instanceId: string,
  settings: Settings,
): string[] {
  const names: string[] = [];
  for (let attempt = 1; attempt <= (record?.checkAttempts ?? 0) + 1; attempt++) names.push(scheduleName(where, settings, 'check', instanceId, attempt));
  for (let attempt = 2; attempt <= (record?.ssmAttempts ?? 0) + 1; attempt++) names.push(scheduleName(where, settings, 'onboard', instanceId, attempt));
  return names;
}

/** What was deleted for an instance. */
export interface Cleanup {
  alarms: string[];
  schedules: string[];
}

/** Deletes what the product created for an instance: its alarms and its pending schedules. */
export async function cleanUpInstance(clients: Clients, instanceId: string, record: OnboardingRecord | undefined, settings: Settings): Promise<Cleanup> {
  const alarms = await deleteInstanceAlarms(clients, instanceId, settings);
  const schedules = await deleteSchedules(clients, pendingScheduleNames(clients, record, instanceId, settings), settings);
  return { alarms, schedules };
}

/** One line for the record's history: what a cleanup deleted. */
export function describeCleanup(cleaned: Cleanup): string {
  return `deleted ${cleaned.alarms.length} alarm(s)${cleaned.alarms.length ? ` (${cleaned.alarms.join(', ')})` : ''} and ${cleaned.schedules.length} pending schedule(s)`;
}

/** What an offboarding invocation did. */
export interface OffboardingResult {
  instanceId: string;
  action: 'cleaned' | 'ignore' | 'unreachable';
  status: OnboardingStatus | undefined;
  reason: string;
  alarms: string[];
  schedules: string[];
}

/**
 * Why an instance is offboarded, from the event and (unless the event is a termination, which is
 * final) EC2's current view: a stop event can arrive after the instance was started again, and
 * must not delete the alarms of a running instance. Pure.
 */
export function offboardingOutcome(
  request: OffboardRequest,
  state: string | undefined,
): { status: 'gone' | 'stopped'; reason: string } | { status: undefined; reason: string } {
  if (request.state === 'terminated') return { status: 'gone', reason: 'instance terminated' };
  if (state === undefined || state === 'terminated' || state === 'shutting-down') return { status: 'gone', reason: 'instance terminated' };
  if (state === 'stopped' || state === 'stopping') return { status: 'stopped', reason: 'instance stopped' };
  return { status: undefined, reason: `instance is ${state} now: nothing to clean up` };
}

/**
 * Cleans up after an instance that stopped or terminated (the EventBridge rules, or by hand with
 * `{ instanceId }`): deletes its alarms (a stopped instance would set off the missing-data alarms)
 * and pending schedules, and records it `stopped` or `gone`. A restart re-checks it and creates the
 * alarms again. Works without a record too.
 *
 * @example
 * await runOffboarding({ instanceId: 'i-0123456789abcdef0', state: 'terminated' }, settings);
 */
export async function runOffboarding(
  request: OffboardRequest,
  settings: Settings,
  now = new Date(),
  factory: ClientFactory = clientFactoryOf(settings),
): Promise<OffboardingResult> {
  const clients = factory.clients(request.place ?? factory.hubPlace);
  logAbout(request.instanceId, undefined, clients.place);
  return withMemberAccess(
    factory,
    clients.place,
    request.instanceId,
    settings,
    now,
    () => offboardInstance(clients, request, settings, now),
    (reason) => ({ instanceId: request.instanceId, action: 'unreachable', status: 'error', reason, alarms: [], schedules: [] }),
  );
}

async function offboardInstance(clients: Clients, request: OffboardRequest, settings: Settings, now: Date): Promise<OffboardingResult> {
  const { instanceId } = request;
  const current = request.state === 'terminated' ? undefined : (await describeInstance(clients, instanceId))?.state;
  const outcome = offboardingOutcome(request, current);
  if (outcome.status === undefined) {
    logger.info('offboarding ignored', { instanceId, reason: outcome.reason });
    return { instanceId, action: 'ignore', status: undefined, reason: outcome.reason, alarms: [], schedules: [] };
  }
  for (let tries = 1; ; tries++) {
    const record = await readRecord(clients, settings.stateTable, instanceId);
    logAbout(instanceId, record?.launchTime);
    const cleaned = await cleanUpInstance(clients, instanceId, record, settings);
    const result = { instanceId, action: 'cleaned' as const, reason: outcome.reason, ...cleaned };
    if (!record) return { ...result, status: undefined };
    try {
      const saved = await saveRecord(
        clients,
        settings.stateTable,
        advance(
          record,
          { ...statusChange(outcome.status, now, settings), reason: outcome.reason, alarmNames: undefined },
          outcome.status,
          now,
          `${outcome.reason}; ${describeCleanup(cleaned)}`,
        ),
      );
      return { ...result, status: saved.status };
    } catch (error) {
      // A check or onboarding wrote meanwhile (and may have created an alarm): clean up again.
      if (!(error instanceof StaleRecordError) || tries >= 3) throw error;
    }
  }
}
