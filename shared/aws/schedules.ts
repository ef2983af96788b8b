import { CreateScheduleCommand, DeleteScheduleCommand } from '@aws-sdk/client-scheduler';
import type { Clients } from './client-factory.js';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { awsErrorName } from './errors.js';
import type { Settings } from '../config/settings.js';
import { samePlace, shortRegion } from './place.js';
import { createHash } from 'node:crypto';

/** A one-time invocation of one of the product's functions. */
export interface ScheduledInvocation {
  /** Deterministic name, so scheduling the same thing twice is a no-op. At most 64 characters. */
  name: string;
  at: Date;
  targetArn: string;
  input: Record<string, unknown>;
}

/** `at(yyyy-mm-ddThh:mm:ss)` in UTC, to the second. */
export function atExpression(when: Date): string {
  return `at(${when.toISOString().slice(0, 19)})`;
}

/**
 * The deterministic schedule name for a step of one instance: `cwap-dev-check-i-0abc-2` in the
 * hub's own place, `cwap-dev-check-111111111111-euw1-i-0abc-2` in a member's (Scheduler names
 * have at most 64 characters: the region is shortened).
 */
export function scheduleName(
  where: Pick<Clients, 'place' | 'hubPlace'>,
  settings: Pick<Settings, 'resourcePrefix'>,
  step: 'onboard' | 'check',
  instanceId: string,
  attempt: number,
): string {
  const place = samePlace(where.place, where.hubPlace) ? '' : `${where.place.account}-${shortRegion(where.place.region)}-`;
  return `${settings.resourcePrefix}-${step}-${place}${instanceId}-${attempt}`.slice(0, 64);
}

/** A batch check schedule names at most this many instances: one GetMetricData call (500 queries, 2 an instance). */
export const maxInstancesPerCheckSchedule = 250;

/**
 * The deterministic name of a batch check schedule: `cwap-dev-check-b0123456789-1-2` (check 1,
 * look 2) for the instances whose sorted ids hash to `0123456789`, with the place as in
 * {@link scheduleName}. The same instances, attempt and look always give the same name, so a
 * retried invocation scheduling them again is a no-op.
 */
export function batchScheduleName(
  where: Pick<Clients, 'place' | 'hubPlace'>,
  settings: Pick<Settings, 'resourcePrefix'>,
  instanceIds: readonly string[],
  attempt: number,
  look: number | undefined,
  again?: Date,
): string {
  const key = [...instanceIds].sort().join(',') + (again ? `@${again.toISOString()}` : '');
  return batchName(where, settings, 'check', key, `${attempt}${look === undefined ? '' : `-${look}`}`);
}

/** `<prefix>-<step>-[<account>-<shortRegion>-]b<10 hex of key>-<suffix>`, at most 64 characters. */
function batchName(where: Pick<Clients, 'place' | 'hubPlace'>, settings: Pick<Settings, 'resourcePrefix'>, step: 'onboard' | 'check', key: string, suffix: string): string {
  const place = samePlace(where.place, where.hubPlace) ? '' : `${where.place.account}-${shortRegion(where.place.region)}-`;
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 10);
  return `${settings.resourcePrefix}-${step}-${place}b${hash}-${suffix}`.slice(0, 64);
}

/** A batch onboarding retry schedule names at most this many instances: one queue batch's worth. */
export const maxInstancesPerOnboardSchedule = 100;

/**
 * Schedules onboarding retry `attempt` of up to {@link maxInstancesPerOnboardSchedule} instances
 * of one place (those of a batch still waiting for Systems Manager, or the rest of a retry batch
 * the pacing left for later) for `at`: the onboard function is invoked with
 * `{ instanceIds, attempt }`. The name is the instance set's and the attempt's, plus `at` for a
 * continuation (`continued`: the same set and attempt again, later), so creating it twice is a no-op.
 */
export async function scheduleBatchOnboard(
  clients: Clients,
  instanceIds: readonly string[],
  attempt: number,
  at: Date,
  settings: Settings,
  continued = false,
): Promise<{ name: string; outcome: 'scheduled' | 'already-scheduled' }> {
  if (instanceIds.length === 0 || instanceIds.length > maxInstancesPerOnboardSchedule) {
    throw new RangeError(`a batch onboarding schedule names 1 to ${maxInstancesPerOnboardSchedule} instances, not ${instanceIds.length}`);
  }
  const key = [...instanceIds].sort().join(',') + (continued ? `@${at.toISOString()}` : '');
  const name = batchName(clients, settings, 'onboard', key, String(attempt));
  const outcome = await scheduleOnce(clients, { name, at, targetArn: settings.onboardFunctionArn, input: { ...placeInput(clients), instanceIds: [...instanceIds], attempt } }, settings);
  return { name, outcome };
}

/**
 * The name of an install window's schedule: `cwap-dev-install-w1741082460` in the hub's own place,
 * `cwap-dev-install-111111111111-euw1-w1741082460` in a member's: one per place and window end, so
 * every container whose instances join the window creates the same schedule (ConflictException
 * for all but the first is "already scheduled").
 */
export function installWindowScheduleName(where: Pick<Clients, 'place' | 'hubPlace'>, settings: Pick<Settings, 'resourcePrefix'>, windowEnd: number): string {
  const place = samePlace(where.place, where.hubPlace) ? '' : `${where.place.account}-${shortRegion(where.place.region)}-`;
  return `${settings.resourcePrefix}-install-${place}w${windowEnd}`.slice(0, 64);
}

/**
 * Schedules the run of the install window ending at `windowEnd` (epoch seconds) for `at`: the
 * onboard function is invoked with `{ installWindow: windowEnd, account?, region? }`. Idempotent
 * like {@link scheduleOnce}.
 */
export async function scheduleInstallWindow(clients: Clients, windowEnd: number, at: Date, settings: Settings): Promise<{ name: string; outcome: 'scheduled' | 'already-scheduled' }> {
  const name = installWindowScheduleName(clients, settings, windowEnd);
  const outcome = await scheduleOnce(clients, { name, at, targetArn: settings.onboardFunctionArn, input: { ...placeInput(clients), installWindow: windowEnd } }, settings);
  return { name, outcome };
}

/**
 * What a schedule's input adds to say where the instance lives: nothing in the hub's own place
 * (so inputs stay `{ instanceId, attempt }` there, as before), else `{ account, region }`.
 */
export function placeInput(where: Pick<Clients, 'place' | 'hubPlace'>): { account?: string; region?: string } {
  return samePlace(where.place, where.hubPlace) ? {} : { account: where.place.account, region: where.place.region };
}

/**
 * Creates a one-time EventBridge Scheduler schedule that deletes itself after it fires.
 * Returns `already-scheduled` when a schedule with that name exists (ConflictException), which
 * makes re-scheduling after a retried invocation idempotent.
 */
export async function scheduleOnce(
  clients: Clients,
  invocation: ScheduledInvocation,
  settings: Settings,
): Promise<'scheduled' | 'already-scheduled'> {
  try {
    await clients.hub(SchedulerClient).send(
      new CreateScheduleCommand({
        Name: invocation.name,
        GroupName: settings.scheduleGroup,
        ScheduleExpression: atExpression(invocation.at),
        ScheduleExpressionTimezone: 'UTC',
        FlexibleTimeWindow: { Mode: 'OFF' },
        ActionAfterCompletion: 'DELETE',
        Description: `cw-agent-autopilot one-time step for ${clients.place.account} ${clients.place.region}`,
        Target: {
          Arn: invocation.targetArn,
          RoleArn: settings.schedulerRoleArn,
          Input: JSON.stringify(invocation.input),
          RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
        },
      }),
    );
    return 'scheduled';
  } catch (error) {
    if (awsErrorName(error) === 'ConflictException') return 'already-scheduled';
    throw error;
  }
}

/**
 * Schedules check number `attempt` of one instance for `at`: the check function is invoked with
 * `{ instanceId, attempt }`. Idempotent like {@link scheduleOnce} (one name per attempt).
 *
 * @example
 * await scheduleCheck('i-0abc', record.checkAttempts + 1, at, settings); // 'scheduled'
 */
export function scheduleCheck(
  clients: Clients,
  instanceId: string,
  attempt: number,
  at: Date,
  settings: Settings,
): Promise<'scheduled' | 'already-scheduled'> {
  return scheduleOnce(
    clients,
    {
      name: scheduleName(clients, settings, 'check', instanceId, attempt),
      at,
      targetArn: settings.checkFunctionArn,
      input: { ...placeInput(clients), instanceId, attempt },
    },
    settings,
  );
}

/**
 * Schedules check `attempt` (look `look`, when given) of up to {@link maxInstancesPerCheckSchedule}
 * instances of one place for `at`: the check function is invoked with
 * `{ instanceIds, attempt, look? }`. Idempotent like {@link scheduleOnce}. `again`: the same
 * check repeated later, named with its time too.
 */
export async function scheduleBatchCheck(
  clients: Clients,
  instanceIds: readonly string[],
  attempt: number,
  look: number | undefined,
  at: Date,
  settings: Settings,
  again = false,
): Promise<{ name: string; outcome: 'scheduled' | 'already-scheduled' }> {
  if (instanceIds.length === 0 || instanceIds.length > maxInstancesPerCheckSchedule) {
    throw new RangeError(`a batch check schedule names 1 to ${maxInstancesPerCheckSchedule} instances, not ${instanceIds.length}`);
  }
  // `again`: the same check once more, later (its own schedule still exists while it runs).
  const name = batchScheduleName(clients, settings, instanceIds, attempt, look, again ? at : undefined);
  const outcome = await scheduleOnce(
    clients,
    {
      name,
      at,
      targetArn: settings.checkFunctionArn,
      input: { ...placeInput(clients), instanceIds: [...instanceIds], attempt, ...(look === undefined ? {} : { look }) },
    },
    settings,
  );
  return { name, outcome };
}

/**
 * Deletes one-time schedules by name, in the stack's group; a name that does not exist (already
 * fired and self-deleted, or never created) is not an error. Returns the names actually deleted.
 */
export async function deleteSchedules(clients: Clients, names: string[], settings: Settings): Promise<string[]> {
  const deleted: string[] = [];
  for (const name of names) {
    try {
      await clients.hub(SchedulerClient).send(new DeleteScheduleCommand({ Name: name, GroupName: settings.scheduleGroup }));
      deleted.push(name);
    } catch (error) {
      if (awsErrorName(error) !== 'ResourceNotFoundException') throw error;
    }
  }
  return deleted;
}
