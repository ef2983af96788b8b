import { chunksOf, mapBounded } from '../audit/concurrency.js';
import type { ClientFactory, Clients } from '../aws/client-factory.js';
import { describeError } from '../aws/errors.js';
import { describeInstances, type InstanceFacts } from '../aws/instances.js';
import { clientFactoryOf } from '../aws/product-clients.js';
import { batchScheduleName, maxInstancesPerCheckSchedule, scheduleBatchCheck } from '../aws/schedules.js';
import type { Settings } from '../config/settings.js';
import { AutopilotError } from '../errors.js';
import type { CheckBatchRequest } from '../input/triggers.js';
import { logger } from '../observability/logger.js';
import { readRecords, type OnboardingRecord } from '../state/instance-record.js';
import { checkOffline, checkRunning, createPendingAlarms, findingsOf, settleCheckError, windowOf, type CheckResult, type RunningOutcome } from './checking.js';
import { instanceAlarms } from './instance-alarms.js';
import { containerPacing, PlacePacing, type BatchPacing } from '../pacing/batch-pacing.js';
import { isThrottling, type BucketName } from '../pacing/pacer.js';
import { checkCurrency, isFullCheck, lookPlan, nextLookDelaySeconds } from './check-policy.js';
import { withMemberAccess } from './member-access.js';
import { seriesPresence, type SeriesPresence } from './metric-queries.js';

/**
 * How many instances of a batch go through their own steps (records, alarms, diagnosis) at once:
 * a batch of 250 finishes well within the function's timeout without opening dozens of
 * connections per SDK client.
 */
const instanceConcurrency = 8;

/** What one batch check did: one result per instance of its input. */
export interface CheckBatchResult {
  results: CheckResult[];
}

/** Some instances of a batch check failed: each has its lastError, and Lambda's retry runs them again. */
export class CheckBatchError extends AutopilotError {
  override name = 'CheckBatchError';
  constructor(readonly failures: readonly { instanceId: string; error: string }[], options?: ErrorOptions) {
    super(`check of ${failures.length} instance(s) failed: ${failures.map((failure) => `${failure.instanceId}: ${failure.error}`).join('; ')}`, options);
  }
}

/** A running instance whose check is current. */
interface Current {
  instance: InstanceFacts;
  record: OnboardingRecord;
  attempt: number;
}

/**
 * Checks the instances of a batch schedule (one onboarding batch's, or the retries of an earlier
 * batch check that fell due together): EC2 and the state table read for all of them at once
 * (DescribeInstances filtered by instance id, BatchGetItem), and their metrics in one GetMetricData
 * call (250 instances, 500 queries). Each instance's check then follows the same rules as
 * {@link runCheck}: a check that is not current does nothing; a stopped or terminated instance is
 * recorded and cleaned up; healthy, or diagnosed and retried or alerted once.
 *
 * An early look (`look` before the instance's first full check, see check-policy `lookPlan`)
 * records an instance healthy when its metrics are there and otherwise changes nothing: the
 * instance joins the batch's next look. The next look, and the retries that fall due together,
 * are one schedule each. A healthy instance is recorded healthy first; its alarms follow, paced
 * (PutMetricAlarm is 3 a second per account and region), and those past the product's share are
 * created by the batch's next schedule. An instance whose step fails keeps its lastError and is
 * in the batch's next schedule too (a minute later); the invocation fails (CheckBatchError) only
 * when a schedule cannot be created, or a batch has followed up for too long, so Lambda's retries
 * never run a batch twice that already scheduled what comes next.
 *
 * @example
 * await runCheckBatch({ instanceIds: ['i-0123456789abcdef0'], attempt: 1, look: 1 }, settings);
 */
export async function runCheckBatch(
  input: CheckBatchRequest,
  settings: Settings,
  now = new Date(),
  factory: ClientFactory = clientFactoryOf(settings),
  pacing: BatchPacing = containerPacing(settings),
): Promise<CheckBatchResult> {
  return withMemberAccess(
    { place: input.place, instanceIds: input.instanceIds },
    settings,
    now,
    factory,
    (clients) => checkBatch(clients, input, settings, now, new PlacePacing(pacing, clients.place, clients)),
    (reason) => ({ results: input.instanceIds.map((instanceId): CheckResult => ({ instanceId, action: 'unreachable', status: 'error', reason })) }),
  );
}

/** The PutMetricAlarm calls an instance's alarms take. */
function alarmCalls(instance: InstanceFacts, settings: Settings): number {
  return instanceAlarms(instance.instanceId, instance.os, settings).length;
}

const alarmBucket: BucketName = 'monitoring:put-metric-alarm';

/** The least and the most a batch's alarms wait for their PutMetricAlarm tokens before the next try. */
const alarmRetrySeconds = { min: 10, max: 900 };

/** How long a batch waits for its PutMetricAlarm tokens in one invocation (the check function's timeout is 60 s). */
export const alarmWaitBudgetMs = 30_000;

/** When instances whose step failed are checked again. */
const failedRetrySeconds = 60;

/** How many schedules past the look plan a batch may follow up with (alarms, failures) before it fails. */
const maxFollowUps = 100;

/**
 * What the check knows of a running instance from its record alone: the launch onboarding recorded
 * (OS, name, launch time, the profile it gave it). A look that finds the instance's metrics needs
 * no more: its agent publishes, so it runs (a stop or termination since then reaches the record
 * through its state-change event, and the record write that follows is conditional on the version
 * read here). Undefined when the record lacks the launch (an older record): EC2 is asked.
 */
function factsOfRecord(record: OnboardingRecord): InstanceFacts | undefined {
  if (!record.os || !record.launchTime) return undefined;
  return { instanceId: record.instanceId, state: 'running', os: record.os, name: record.name, tags: {}, profileArn: record.profileArn, launchTime: record.launchTime, availabilityZone: undefined };
}

/**
 * Reads throttled past the SDK's retries before anything was written: the same check runs again a
 * minute later, on its own schedule. Left to Lambda's two retries, a burst's batch check was
 * dropped after them, and its instances had no check pending any more.
 */
async function readsThrottled(clients: Clients, input: CheckBatchRequest, settings: Settings, now: Date, error: unknown): Promise<CheckBatchResult> {
  const ids = input.instanceIds;
  const at = new Date(now.getTime() + failedRetrySeconds * 1000);
  const { name } = await scheduleBatchCheck(clients, ids, input.attempt, input.look, at, settings, true);
  logger.warn('batch check: its reads were throttled; the same check runs again later', { schedule: name, instances: ids.length, at: at.toISOString(), error: describeError(error) });
  return { results: ids.map((instanceId): CheckResult => ({ instanceId, action: 'look', status: undefined, reason: `reads throttled (${describeError(error)}); checked again at ${at.toISOString()} by ${name}` })) };
}

async function checkBatch(clients: Clients, input: CheckBatchRequest, settings: Settings, now: Date, pace: PlacePacing): Promise<CheckBatchResult> {
  const ids = input.instanceIds;
  let records: Map<string, OnboardingRecord>;
  /** EC2's facts of the instances the check needs them for, once read. */
  const found = new Map<string, InstanceFacts>();
  try {
    records = await readRecords(clients, settings.stateTable, ids);
    // EC2 is asked at once only for the records that do not say which launch they are about.
    const unrecorded = ids.filter((instanceId) => {
      const record = records.get(instanceId);
      return record !== undefined && factsOfRecord(record) === undefined;
    });
    if (unrecorded.length > 0) for (const [instanceId, facts] of await describeInstances(clients, unrecorded)) found.set(instanceId, facts);
  } catch (error) {
    if (!isThrottling(error)) throw error;
    return readsThrottled(clients, input, settings, now, error);
  }
  const results = new Map<string, CheckResult>();
  const failures: { instanceId: string; error: string }[] = [];
  /** Instances whose step failed this time; they are in the batch's next schedule. */
  const carried: string[] = [];
  const failed: { instanceId: string; error: string }[] = [];
  const carry = (record: OnboardingRecord, error: unknown) => {
    carried.push(record.instanceId);
    results.set(record.instanceId, { instanceId: record.instanceId, action: 'look', status: record.status, reason: `failed, checked again by the batch's next schedule: ${describeError(error)}` });
    failed.push({ instanceId: record.instanceId, error: describeError(error) });
  };
  const settle = async (record: OnboardingRecord, attempt: number, step: () => Promise<CheckResult | undefined>): Promise<void> => {
    try {
      const result = await step();
      if (result) results.set(record.instanceId, result);
    } catch (error) {
      try {
        results.set(record.instanceId, await settleCheckError(clients, record, record.instanceId, attempt, error, settings));
      } catch (thrown) {
        // Recorded (lastError, the status unchanged, so its check is still current): the batch's
        // next schedule checks it again. Failing the invocation instead would have Lambda run the
        // whole batch again, and each run would schedule its own next look.
        carry(record, thrown);
      }
    }
  };

  // Which checks are current, and which instances are still running (as far as the record, or
  // EC2 for a record without its launch, says).
  const current: Current[] = [];
  const alarmsDue: { instance: InstanceFacts; record: OnboardingRecord; returning?: boolean }[] = [];
  await mapBounded(ids, instanceConcurrency, async (instanceId) => {
    const record = records.get(instanceId);
    const running = record && (found.get(instanceId) ?? factsOfRecord(record));
    if (record?.status === 'healthy' && record.alarmsPending && running?.state === 'running') {
      // Its alarms are written before the record that says so: a stop or termination recorded
      // meanwhile makes that write stale, and settleCheckError removes the alarms again.
      alarmsDue.push({ instance: running, record, returning: true });
      return;
    }
    const currency = checkCurrency(input.attempt, record);
    if (!currency.run || !record) {
      const reason = currency.run ? 'no record' : currency.reason;
      results.set(instanceId, { instanceId, action: 'ignore', status: record?.status, reason });
      return;
    }
    const recorded = factsOfRecord(record);
    if (recorded) {
      current.push({ instance: recorded, record, attempt: currency.attempt });
      return;
    }
    // A record without its launch: EC2 was asked above (absent from its answer: terminated).
    const instance = found.get(instanceId);
    await settle(record, currency.attempt, async () => {
      const offline = await checkOffline(clients, record, instance, settings, now);
      if (!offline) current.push({ instance: instance as InstanceFacts, record, attempt: currency.attempt });
      return offline;
    });
  });

  // One lookup for all of them, from the earliest instance's window; each instance's findings count
  // only the datapoints of its own window (its launch), as its check alone would.
  const windows = new Map(current.map((entry) => [entry.instance.instanceId, windowOf(entry.instance, entry.record, now, settings)]));
  const earliest = new Date(Math.min(...[...windows.values()].map((window) => window.start.getTime()), now.getTime()));
  let presence: SeriesPresence[] = [];
  try {
    if (current.length > 0) {
      presence = await seriesPresence(
        clients,
        current.map(({ instance }) => ({ instanceId: instance.instanceId, os: instance.os, since: windows.get(instance.instanceId)?.start })),
        settings.metrics,
        { start: earliest, end: now },
      );
    }
  } catch (error) {
    // Only the records of instances that are offline were written so far; their checks are no
    // longer current when the same check runs again.
    if (!isThrottling(error)) throw error;
    return readsThrottled(clients, input, settings, now, error);
  }

  // A full check of an instance whose metrics are missing diagnoses it, and that needs EC2's facts
  // (is it still running, which profile has it): one DescribeInstances for all of them. Instances
  // whose metrics arrived, and early looks that did not find them yet, need none.
  const toDescribe = current.filter(({ instance, record }) => {
    if (found.has(instance.instanceId)) return false;
    const findings = findingsOf(instance, record, presence, windows.get(instance.instanceId) as { start: Date; end: Date }, settings);
    return findings.missing.length > 0 && (input.look === undefined || isFullCheck(input.look, instance.os, settings));
  });
  if (toDescribe.length > 0) {
    let described: Map<string, InstanceFacts> | undefined;
    try {
      described = await describeInstances(clients, toDescribe.map(({ instance }) => instance.instanceId));
    } catch (error) {
      // Nothing written for them yet: the batch's next schedule checks them again.
      for (const { record } of toDescribe) carry(record, error);
    }
    const diagnosed = new Set(toDescribe);
    const kept = current.filter((entry) => !diagnosed.has(entry));
    if (described) {
      const known = described;
      await mapBounded(toDescribe, instanceConcurrency, async (entry) => {
        const instance = known.get(entry.instance.instanceId);
        await settle(entry.record, entry.attempt, async () => {
          const offline = await checkOffline(clients, entry.record, instance, settings, now);
          if (!offline) kept.push({ ...entry, instance: instance as InstanceFacts });
          return offline;
        });
      });
    }
    // In the batch's order again (the alarms are created in it).
    const order = new Map(ids.map((instanceId, index) => [instanceId, index]));
    kept.sort((a, b) => (order.get(a.instance.instanceId) ?? 0) - (order.get(b.instance.instanceId) ?? 0));
    current.splice(0, current.length, ...kept);
  }

  const scheduleNames = [batchScheduleName(clients, settings, ids, input.attempt, input.look)];
  const nextLook: string[] = [];
  // Alarms are paced (PutMetricAlarm is 3 a second per account and region): an instance is recorded
  // healthy when its metrics arrive, and its alarms wait for the batch's next schedule when the
  // product's share is spent. Those of earlier looks first, in the batch's order.
  const alarmsLater: string[] = [];
  let alarmTokensLater = 0;
  const toAlarm = [...alarmsDue];
  const retries: { instanceId: string; outcome: Extract<RunningOutcome, { kind: 'retry' }>; record: OnboardingRecord; attempt: number }[] = [];
  await mapBounded(current, instanceConcurrency, async ({ instance, record, attempt }) =>
    settle(record, attempt, async () => {
      const findings = findingsOf(instance, record, presence, windows.get(instance.instanceId) as { start: Date; end: Date }, settings);
      if (findings.missing.length > 0 && input.look !== undefined && !isFullCheck(input.look, instance.os, settings)) {
        nextLook.push(instance.instanceId);
        return { instanceId: instance.instanceId, action: 'look', status: record.status, reason: `look ${input.look}: ${findings.missing.join(', ')} not there yet` };
      }
      // Healthy is recorded first; its alarms are created after, paced (below).
      const outcome = await checkRunning(clients, record, instance, attempt, scheduleNames, settings, now, findings, 'later');
      if (outcome.kind === 'done' && outcome.saved?.alarmsPending) toAlarm.push({ instance, record: outcome.saved });
      if (outcome.kind === 'done') return outcome.result;
      retries.push({ instanceId: instance.instanceId, outcome, record, attempt });
      return undefined;
    }),
  );

  // The retries that fall due together (same attempt, same time): one schedule each.
  const groups = new Map<string, typeof retries>();
  for (const retry of retries) {
    const key = `${retry.outcome.nextAttempt} ${retry.outcome.at.toISOString()}`;
    groups.set(key, [...(groups.get(key) ?? []), retry]);
  }
  for (const group of groups.values()) {
    for (const chunk of chunksOf(group, maxInstancesPerCheckSchedule)) {
      const { nextAttempt, at } = (chunk[0] as (typeof group)[number]).outcome;
      let scheduled: string;
      try {
        const { name, outcome } = await scheduleBatchCheck(clients, chunk.map((retry) => retry.instanceId), nextAttempt, undefined, at, settings);
        scheduled = `${outcome} for ${at.toISOString()} (schedule ${name}, ${chunk.length} instance(s))`;
      } catch (error) {
        for (const retry of chunk) {
          await settle(retry.record, retry.attempt, () => {
            throw error;
          });
        }
        continue;
      }
      await mapBounded(chunk, instanceConcurrency, (retry) => settle(retry.record, retry.attempt, () => retry.outcome.complete(scheduled)));
    }
  }

  // The alarms, one instance at a time, while the product's share of PutMetricAlarm allows (the
  // account's ledger, for every check container at once: each call at its time); once one
  // instance's calls do not come in time, the rest waits too, in order. A throttle that got past
  // the SDK's retries holds the bucket back for every container.
  let alarmsStopped = false;
  // In one change of the ledger each: the calls reserved for the alarms left for later by an
  // earlier look, then new ones for those healthy now.
  const alarmCallsOf = (entries: readonly { instance: InstanceFacts }[]) => entries.reduce((sum, { instance }) => sum + alarmCalls(instance, settings), 0);
  const step = toAlarm[0] ? alarmCalls(toAlarm[0].instance, settings) : 1;
  await pace.prefetch(alarmBucket, alarmCallsOf(toAlarm.filter((entry) => entry.returning)), { returning: true, step });
  await pace.prefetch(alarmBucket, alarmCallsOf(toAlarm.filter((entry) => !entry.returning)), { step });
  for (const { instance, record, returning } of toAlarm) {
    await settle(record, record.checkAttempts, async () => {
      const calls = alarmCalls(instance, settings);
      const slots = alarmsStopped ? undefined : await pace.takeCalls(alarmBucket, calls, { returning });
      if (slots) {
        try {
          return await createPendingAlarms(clients, record, instance, settings, now, (index) => pace.waitUntil(slots[index] ?? 0));
        } catch (error) {
          if (!isThrottling(error)) throw error;
          await pace.throttled(alarmBucket);
        }
      }
      alarmsStopped = true;
      alarmsLater.push(instance.instanceId);
      alarmTokensLater += calls;
      return { instanceId: instance.instanceId, action: 'healthy', status: record.status, reason: "healthy; alarms pending: the product's share of PutMetricAlarm is spent for now" };
    });
  }

  // The next look of those not seen yet, the alarms left for later and the instances that failed:
  // one schedule. Alarms alone wait until the pacer expects their tokens.
  const following = [...new Set([...nextLook, ...alarmsLater, ...carried])];
  const plan = lookPlan(settings);
  if (following.length > 0 && (input.look ?? plan.length) + 1 > plan.length + maxFollowUps) {
    // A chain this long is not waiting for tokens any more: fail, and let Lambda's retries and a person see it.
    for (const instanceId of following) failures.push({ instanceId, error: failed.find((entry) => entry.instanceId === instanceId)?.error ?? `no progress after ${maxFollowUps} follow-ups` });
  } else if (following.length > 0) {
    const look = input.look ?? plan.length;
    const lookDelay = nextLook.length > 0 && input.look !== undefined ? nextLookDelaySeconds(input.look, settings) : carried.length > 0 ? failedRetrySeconds : undefined;
    // The alarms left for later reserve their calls (the next schedule claims them): it comes when the first is due.
    const reserved = alarmTokensLater > 0 ? await pace.reserve(alarmBucket, alarmTokensLater) : undefined;
    const alarmEtaMs = reserved ? Math.max(0, (reserved[0] ?? now.getTime()) - now.getTime()) : pace.pacer.etaMs(alarmBucket, alarmTokensLater);
    const alarmDelay = Math.min(alarmRetrySeconds.max, Math.max(alarmRetrySeconds.min, Math.ceil(alarmEtaMs / 1000)));
    const delay = lookDelay ?? alarmDelay;
    const at = new Date(now.getTime() + delay * 1000);
    for (const chunk of chunksOf(following, maxInstancesPerCheckSchedule)) {
      try {
        const { name, outcome } = await scheduleBatchCheck(clients, chunk, input.attempt, look + 1, at, settings);
        logger.info('next look scheduled', { schedule: name, outcome, instances: chunk.length, at: at.toISOString() });
      } catch (error) {
        // Their records are unchanged: Lambda's retry of this batch looks at them again.
        for (const instanceId of chunk) failures.push({ instanceId, error: `next look not scheduled: ${describeError(error)}` });
      }
    }
  }

  const ordered = ids.flatMap((instanceId) => {
    const result = results.get(instanceId);
    return result ? [result] : [];
  });
  if (failures.length > 0) {
    logger.error('batch check: some instances failed; the invocation fails so that Lambda runs them again', { failures, results: ordered });
    throw new CheckBatchError(failures);
  }
  return { results: ordered };
}
