import { chunksOf, mapBounded } from '../audit/concurrency.js';
import type { ClientFactory, Clients } from '../aws/client-factory.js';
import { describeError } from '../aws/errors.js';
import { describeInstances, type InstanceFacts } from '../aws/instances.js';
import { placeLabel, type Place } from '../aws/place.js';
import { clientFactoryOf } from '../aws/product-clients.js';
import { withMemberAccess } from '../checking/member-access.js';
import type { OsFamily } from '../agent-config.js';
import type { Settings } from '../config/settings.js';
import { AutopilotError, InstanceNotReachableError, InstanceNotYetVisibleError, PacedLaterError } from '../errors.js';
import type { InstallWindowRun, OnboardRetryBatch, OnboardTrigger, QueuedTrigger } from '../input/triggers.js';
import { logger } from '../observability/logger.js';
import { readDeferredFacts, saveDeferredFacts } from '../state/deferred-facts.js';
import { readRecords, type OnboardingRecord, type OnboardingStatus, type RecordTrail } from '../state/instance-record.js';
import { maxInstancesPerCommand, sendInstallCommandTo } from './agent-commands.js';
import {
  profileStep,
  firstLookAt,
  givesUpOnSsm,
  recordWaitingForSsm,
  recordJoinedWindow,
  recordCommandSent,
  recordFirstLook,
  recordFailure,
  recordFirstSightFailure,
  scheduleNextCheck,
  startOnboarding,
  waitForSsm,
  type OnboardingResult,
} from './onboarding-steps.js';
import { describeInstanceInformation, isOnline } from './ssm-presence.js';
import { decideOnboarding } from './onboarding-decision.js';
import { containerPacing, PlacePacing, type BatchPacing, type TokenNeeds } from '../pacing/batch-pacing.js';
import { isThrottling, type BucketName } from '../pacing/pacer.js';
import { maxInstancesPerCheckSchedule, maxInstancesPerOnboardSchedule, scheduleBatchCheck, scheduleBatchOnboard } from '../aws/schedules.js';
import { closeInstallWindow, installWindowKey } from '../state/install-window.js';
import { joinInstallWindow } from './install-window.js';

/**
 * How many instances of a batch go through their per-instance steps (claim, profile, record writes,
 * schedules) at once: enough to finish a batch of 50 well within the function's timeout, few enough
 * not to open dozens of connections per SDK client.
 */
const instanceConcurrency = 8;

/** What a batch of the onboard queue did: the partial batch response, and each instance's outcome. */
export interface OnboardingBatchResult {
  /**
   * The messages to deliver again (Lambda's ReportBatchItemFailures): those of instances whose
   * onboarding failed, and of those left for later by the pacing (`deferred`). Every other message
   * of the batch is deleted from the queue.
   */
  batchItemFailures: { itemIdentifier: string }[];
  /** One entry per instance of the batch (a duplicate message adds none). */
  results: (OnboardingResult & { place: Place })[];
  /** Per failed instance, the error (also recorded in its state record's lastError). */
  failures: { instanceId: string; place: Place; error: string }[];
  /**
   * The instances left for a later delivery because the place's share of an account bucket was
   * spent for longer than the invocation could wait (their messages are in `batchItemFailures`):
   * not started ones untouched, ones under way with their record saying where they are. Each says
   * when its tokens should be there (`retryAfterSeconds`, {@link PlacePacing.retryAfterSeconds}):
   * the visibility timeout its messages should get, instead of the queue's.
   */
  deferred: { instanceId: string; place: Place; started: boolean; messageIds: string[]; retryAfterSeconds: number }[];
}

/** How a batch runs. */
export interface BatchOptions {
  /**
   * The batch is an install window's run: its instances are installed now, whatever their number
   * (they never join a window again). Default false: a batch sends its full commands (50 of one OS)
   * at once, and its instances that would make a smaller one join the install window
   * (settings.installWindowSeconds).
   */
  windowRun?: boolean;
}

/** One instance of the batch: its trigger (the first message naming it) and every message naming it. */
interface BatchInstance {
  trigger: OnboardTrigger;
  messageIds: string[];
  /** One of its messages was delivered before (deferred by the pacing, or failed): it goes first. */
  returning: boolean;
}

/** An instance claimed and waiting for the batched Systems Manager steps. */
interface AwaitingInstall {
  trail: RecordTrail;
  instance: InstanceFacts;
  result: (status: OnboardingStatus | undefined) => OnboardingResult;
}

/** `started`: a failure after the instance was claimed (its record was written). */
type Outcome = { ok: true; result: OnboardingResult } | { ok: false; error: unknown; started?: boolean };

/**
 * The bucket a throttling error that survived the SDK's retries came from, by the error's shape:
 * EC2's RequestLimitExceeded (the paced EC2 call is the association), IAM's query-protocol
 * Throttling, else (JSON protocols' ThrottlingException, TooManyRequestsException) Scheduler's.
 */
function throttledBucket(error: unknown): BucketName {
  const name = error instanceof Error ? error.name : '';
  if (name === 'RequestLimitExceeded') return 'ec2:associate-iam-instance-profile';
  if (name === 'Throttling') return 'iam:attach-role-policy';
  return 'scheduler:create-schedule';
}

/**
 * Onboards a batch of the onboard queue: the instances of each account and region together, with
 * the facts read for all of them at once (DescribeInstances 200 ids a call, the records 100 a
 * BatchGetItem, DescribeInstanceInformation 50 a call) and the install command sent per OS to up to
 * 50 instances a call. Every decision and every record write is per instance, by the same steps as
 * {@link runOnboarding}: a workload's profile is kept, duplicates and late events change nothing, a
 * restart gets a check and no reinstall, and each record keeps its history. An instance whose step
 * fails gets its lastError and its messages are returned in `batchItemFailures`; the rest of the
 * batch is done. The calls that draw on slow-refill account buckets (AssociateIamInstanceProfile,
 * AttachRolePolicy, SendCommand, CreateSchedule) take a token of the place's pacer first; when the
 * wait for one does not fit the invocation, no further instance is started and the rest of the
 * batch is continued in a later delivery of its messages instead of sleeping out the Lambda's time.
 *
 * @example
 * const { batchItemFailures } = await runOnboardingBatch(parseOnboardQueueBatch(event).triggers, settings);
 */
export async function runOnboardingBatch(
  triggers: readonly QueuedTrigger[],
  settings: Settings,
  now = new Date(),
  factory: ClientFactory = clientFactoryOf(settings),
  pacing: BatchPacing = containerPacing(settings),
  options: BatchOptions = {},
): Promise<OnboardingBatchResult> {
  const places = new Map<string, { place: Place; instances: Map<string, BatchInstance> }>();
  // Instances whose messages come back first, the rest in the batch's order: a burst's later
  // launches wait behind the instances the pacing deferred earlier (PlacePacing.admit).
  const ordered = [...triggers.filter((queued) => queued.receiveCount > 1), ...triggers.filter((queued) => queued.receiveCount <= 1)];
  for (const { messageId, trigger, receiveCount } of ordered) {
    const place = trigger.place ?? factory.hubPlace;
    const label = placeLabel(place);
    const group = places.get(label) ?? { place, instances: new Map<string, BatchInstance>() };
    places.set(label, group);
    const seen = group.instances.get(trigger.instanceId);
    // A duplicate event in the same batch: the instance is onboarded once, for the first message;
    // the others share its outcome (deleted with it, or delivered again with it).
    if (seen) seen.messageIds.push(messageId);
    else group.instances.set(trigger.instanceId, { trigger, messageIds: [messageId], returning: receiveCount > 1 });
  }

  const batch: OnboardingBatchResult = { batchItemFailures: [], results: [], failures: [], deferred: [] };
  for (const { place, instances } of places.values()) {
    const clients = factory.clients(place);
    const ids = [...instances.keys()];
    const pace = new PlacePacing(pacing, place, clients);
    const outcomes = await withMemberAccess(
      { place, instanceIds: ids },
      settings,
      now,
      factory,
      () => onboardPlace(clients, instances, settings, now, pace, options),
      (reason) => new Map<string, Outcome>(ids.map((instanceId) => [instanceId, { ok: true, result: { instanceId, action: 'unreachable', status: 'error', reason } }])),
    );
    const deferred: { instanceId: string; started: boolean; messageIds: string[]; needs: TokenNeeds }[] = [];
    for (const [instanceId, { messageIds }] of instances) {
      const outcome = outcomes.get(instanceId) ?? { ok: false, error: new Error(`unreachable: no outcome for ${instanceId}`) };
      if (outcome.ok) {
        batch.results.push({ ...outcome.result, place });
        continue;
      }
      for (const messageId of messageIds) batch.batchItemFailures.push({ itemIdentifier: messageId });
      if (outcome.error instanceof PacedLaterError) {
        deferred.push({ instanceId, started: outcome.started === true, messageIds, needs: outcome.error.needs });
        continue;
      }
      const error = describeError(outcome.error);
      logger.error('onboarding failed in a batch: its messages are delivered again', { instanceId, account: place.account, instanceRegion: place.region, messageIds, error });
      batch.failures.push({ instanceId, place, error });
    }
    // In the batch's order: the k-th deferred instance of the place waits for k instances' tokens.
    for (const { needs: _needs, ...entry } of await pace.retryAfterSeconds(deferred)) batch.deferred.push({ ...entry, place });
  }
  if (batch.deferred.length) {
    const seconds = batch.deferred.map((d) => d.retryAfterSeconds);
    logger.info('pacing: instances continued in a later delivery of their messages', {
      deferred: batch.deferred.length,
      started: batch.deferred.filter((d) => d.started).length,
      retryAfterSeconds: { min: Math.min(...seconds), max: Math.max(...seconds) },
    });
  }
  return batch;
}

/** Some instances of a scheduled retry batch failed: each has its lastError, and Lambda's retry runs them again. */
export class OnboardBatchError extends AutopilotError {
  override name = 'OnboardBatchError';
  constructor(readonly failures: readonly { instanceId: string; error: string }[]) {
    super(`onboarding of ${failures.length} instance(s) failed: ${failures.map((failure) => `${failure.instanceId}: ${failure.error}`).join('; ')}`);
  }
}

/** The least the rest of a retry batch the pacing left for later waits before its continuation runs. */
export const minContinuationDelaySeconds = 10;

/**
 * Runs a batch of scheduled onboarding retries (the instances of a batch that waited for Systems
 * Manager together) as a batch of the queue would be: the same facts read at once, the same
 * commands per OS and 50, the same per-instance rules (a retry that is no longer current changes
 * nothing). There is no queue to return messages to: the instances the pacing left for later get
 * one continuation schedule (same attempt, when the last of them has its tokens by the pacer's estimate), and failed
 * ones fail the invocation after the rest is done (OnboardBatchError), so Lambda's retry runs
 * them again; the others' retries are no longer current by then.
 *
 * @example
 * await runOnboardingRetryBatch({ instanceIds, attempt: 2 }, settings);
 */
export async function runOnboardingRetryBatch(
  input: OnboardRetryBatch,
  settings: Settings,
  now = new Date(),
  factory: ClientFactory = clientFactoryOf(settings),
  pacing: BatchPacing = containerPacing(settings),
): Promise<OnboardingBatchResult> {
  // Each has come before (its batch's first delivery, and `attempt - 1` looks): it is started before new launches, as a returning message is.
  const triggers = input.instanceIds.map((instanceId) => ({ messageId: instanceId, receiveCount: input.attempt, trigger: { kind: 'retry' as const, instanceId, attempt: input.attempt, place: input.place } }));
  const batch = await runOnboardingBatch(triggers, settings, now, factory, pacing);
  const failures = [...batch.failures, ...(await continueLater(batch.deferred, () => input.attempt, input.place ?? factory.hubPlace, settings, now, factory))];
  if (failures.length > 0) throw new OnboardBatchError(failures);
  return batch;
}

/**
 * Schedules the continuation of the instances of a scheduled batch the pacing left for later: one
 * retry batch schedule per attempt and 100 instances, for when the last of them has its tokens
 * (the pacer promised them in that order). Returns the instances whose schedule failed.
 */
async function continueLater(
  deferred: OnboardingBatchResult['deferred'],
  attemptOf: (instanceId: string) => number,
  place: Place,
  settings: Settings,
  now: Date,
  factory: ClientFactory,
): Promise<{ instanceId: string; place: Place; error: string }[]> {
  const failures: { instanceId: string; place: Place; error: string }[] = [];
  if (deferred.length === 0) return failures;
  const clients = factory.clients(place);
  const seconds = Math.max(minContinuationDelaySeconds, ...deferred.map((entry) => entry.retryAfterSeconds));
  const at = new Date(now.getTime() + seconds * 1000);
  const byAttempt = new Map<number, string[]>();
  for (const { instanceId } of deferred) byAttempt.set(attemptOf(instanceId), [...(byAttempt.get(attemptOf(instanceId)) ?? []), instanceId]);
  for (const [attempt, later] of byAttempt) {
    for (const chunk of chunksOf(later, maxInstancesPerOnboardSchedule)) {
      try {
        const { name, outcome } = await scheduleBatchOnboard(clients, chunk, attempt, at, settings, true);
        logger.info('pacing: the rest of a scheduled batch continues later', { schedule: name, outcome, instances: chunk.length, at: at.toISOString() });
      } catch (error) {
        for (const instanceId of chunk) failures.push({ instanceId, place, error: `continuation not scheduled: ${describeError(error)}` });
      }
    }
  }
  return failures;
}

/** What an install window's run did: the window, how many instances it held, and the batch's outcome. */
export interface InstallWindowResult extends Omit<OnboardingBatchResult, 'batchItemFailures'> {
  window: string;
  instances: number;
}

/**
 * Runs an install window (its schedule fired): closes it, so that a later join goes to the next
 * window, and onboards the instances it held as a batch of scheduled retries, each with the
 * attempt it joined with, up to 250 at a time ({@link maxInstancesPerWindowRun}): one
 * DescribeInstances per 200 and BatchGetItem per 100, DescribeInstanceInformation 50 a call, one SendCommand
 * per OS and 50, one check schedule of first looks per 250, the offline ones waiting for Systems
 * Manager together; never joining a window again. A retry that is no longer current changes nothing
 * (decideOnboarding), so a window whose run comes twice sends no second command. An empty or
 * unknown window does nothing. Failed instances fail the invocation after the rest (OnboardBatchError),
 * as in {@link runOnboardingRetryBatch}.
 *
 * @example
 * await runInstallWindow(parseInstallWindowRun(event), settings);
 */
export async function runInstallWindow(
  input: InstallWindowRun,
  settings: Settings,
  now = new Date(),
  factory: ClientFactory = clientFactoryOf(settings),
  pacing: BatchPacing = containerPacing(settings),
): Promise<InstallWindowResult> {
  const place = input.place ?? factory.hubPlace;
  const window = installWindowKey(place, input.windowEnd);
  const closed = await closeInstallWindow(factory.clients(place), settings.stateTable, input.windowEnd, now);
  const result: InstallWindowResult = { window, instances: 0, results: [], failures: [], deferred: [] };
  if (!closed || closed.entries.length === 0) {
    logger.info(closed ? 'install window: empty, nothing to install' : 'install window: unknown (no instance joined it), nothing to install', { window });
    return result;
  }
  // An instance that joined twice (a duplicate delivery) runs once, with the later attempt.
  const attempts = new Map<string, number>();
  for (const { instanceId, attempt } of closed.entries) attempts.set(instanceId, Math.max(attempt, attempts.get(instanceId) ?? 0));
  result.instances = attempts.size;
  logger.info('install window: installing what joined it', { window, instances: attempts.size, closedAt: closed.closedAt });
  // Each was admitted once already (its claim): it goes before new launches, as a returning message does.
  const triggers: QueuedTrigger[] = [...attempts].map(([instanceId, attempt]) => ({ messageId: instanceId, receiveCount: 2, trigger: { kind: 'retry', instanceId, attempt, place: input.place } }));
  for (const chunk of chunksOf(triggers, maxInstancesPerWindowRun)) {
    const batch = await runOnboardingBatch(chunk, settings, now, factory, pacing, { windowRun: true });
    result.results.push(...batch.results);
    result.failures.push(...batch.failures);
    result.deferred.push(...batch.deferred);
  }
  const failures = [...result.failures, ...(await continueLater(result.deferred, (instanceId) => attempts.get(instanceId) ?? 1, place, settings, now, factory))];
  if (failures.length > 0) throw new OnboardBatchError(failures);
  return result;
}

/**
 * How many instances of a window one batch of its run takes: all of a window at the association
 * pace (2.5 a second, 150 a minute), so that its commands are grouped per OS across the whole
 * window (taken 100 at a time, 80 Linux and 20 Windows made three commands per 100, and the
 * burst's SendCommand stayed at 0.035 a launch); one check schedule holds 250.
 */
export const maxInstancesPerWindowRun = maxInstancesPerCheckSchedule;

/** A failure of an instance after its claim, carried through the outer step unchanged. */
class ClaimedFailure {
  constructor(readonly error: unknown) {}
}

/** Runs a step of one instance; a failure after the claim is recorded on the instance (lastError, or gone). */
async function settle(
  trail: RecordTrail | undefined,
  result: ((status: OnboardingStatus | undefined) => OnboardingResult) | undefined,
  settings: Settings,
  step: () => Promise<OnboardingResult | undefined>,
): Promise<Outcome | undefined> {
  try {
    const done = await step();
    return done ? { ok: true, result: done } : undefined;
  } catch (error) {
    if (trail && result && (await recordFailure(trail, error, settings))) return { ok: true, result: result('gone') };
    return { ok: false, error, started: trail !== undefined };
  }
}

const associationBucket: BucketName = 'ec2:associate-iam-instance-profile';

/**
 * The paced calls an instance of the batch makes for sure once started: its association (if it
 * has no profile and none is recorded for this launch) and its one schedule; undefined when its
 * decision starts nothing.
 */
function pacedBuckets(trigger: OnboardTrigger, instance: InstanceFacts | undefined, existing: OnboardingRecord | undefined, settings: Settings, now: Date): BucketName[] | undefined {
  const decision = decideOnboarding({ trigger, instance, record: existing, settings, now });
  if (decision.action !== 'onboard' && decision.action !== 'recheck') return undefined;
  const resumesProfile = decision.action === 'onboard' && !decision.fresh && existing?.profilePath !== undefined;
  const associates = decision.action === 'onboard' && !instance?.profileArn && !resumesProfile;
  return associates ? [associationBucket, 'scheduler:create-schedule'] : ['scheduler:create-schedule'];
}

/** The instances of one place: facts for all, then each instance's decision and steps. */
async function onboardPlace(clients: Clients, instances: Map<string, BatchInstance>, settings: Settings, now: Date, pace: PlacePacing, options: BatchOptions): Promise<Map<string, Outcome>> {
  const outcomes = new Map<string, Outcome>();
  const ids = [...instances.keys()];
  // A message the pacing returned before its instance was started comes back with what EC2 said
  // of it then (deferred-facts.ts): only the others are described again.
  // So does a window's run: its instances' facts were kept when they joined, a minute before.
  const returningIds = ids.filter((instanceId) => options.windowRun || (instances.get(instanceId)?.returning && instances.get(instanceId)?.trigger.kind === 'state-change'));
  const [read, kept] = await Promise.allSettled([readRecords(clients, settings.stateTable, ids), readDeferredFacts(clients, settings.stateTable, returningIds, now)]);
  if (read.status === 'rejected') {
    for (const instanceId of ids) outcomes.set(instanceId, { ok: false, error: read.reason });
    return outcomes;
  }
  const records = read.value;
  // Facts stand in only for an instance that has no record yet (once started, EC2 is asked), or
  // one a window's run installs (claimed by the batch that kept its facts a minute ago).
  const keptFacts = new Map([...(kept.status === 'fulfilled' ? kept.value : new Map<string, InstanceFacts>())].filter(([instanceId]) => options.windowRun || !records.has(instanceId)));
  const toDescribe = ids.filter((instanceId) => !keptFacts.has(instanceId));
  const [described] = await Promise.allSettled([toDescribe.length > 0 ? describeInstances(clients, toDescribe) : Promise.resolve(new Map<string, InstanceFacts>())]);
  if (described.status === 'rejected') {
    for (const instanceId of ids) {
      await recordFirstSightFailure(clients, instanceId, records.get(instanceId), described.reason, settings, now);
      outcomes.set(instanceId, { ok: false, error: described.reason });
    }
    return outcomes;
  }
  const found = new Map([...keptFacts, ...described.value]);

  // The batch's associations from the account's ledger in one go (those coming back first, on
  // their reservations), instead of a ledger change per instance.
  const associating = { returning: 0, fresh: 0 };
  for (const instanceId of ids) {
    const { trigger, returning } = instances.get(instanceId) as BatchInstance;
    if (pacedBuckets(trigger, found.get(instanceId), records.get(instanceId), settings, now)?.includes(associationBucket)) associating[returning ? 'returning' : 'fresh'] += 1;
  }
  await pace.prefetch(associationBucket, associating.returning, { returning: true });
  await pace.prefetch(associationBucket, associating.fresh);

  const awaiting: AwaitingInstall[] = [];
  await mapBounded(ids, instanceConcurrency, async (instanceId) => {
    const { trigger, returning } = instances.get(instanceId) as BatchInstance;
    const instance = found.get(instanceId);
    const existing = records.get(instanceId);
    const outcome = await settle(undefined, undefined, settings, async () => {
      if (!instance && !existing && trigger.kind === 'state-change') {
        // As in runOnboarding: "not found" right after a launch is EC2's eventual consistency; the
        // message comes back after the queue's visibility timeout.
        throw new InstanceNotYetVisibleError(`${instanceId}: EC2 sent its ${trigger.state} event but DescribeInstances does not know it yet`);
      }
      // Before anything is written: an instance that would be started takes the tokens of the
      // calls it makes for sure (its association, if it has no profile; its one schedule), else it
      // and every instance after it are left for a later delivery, untouched.
      const buckets = pacedBuckets(trigger, instance, existing, settings, now);
      if (buckets) {
        if (!(await pace.admit(buckets, { returning }))) {
          throw new PacedLaterError(`${instanceId}: not started, the place's share of ${buckets.join(' and ')} is spent for now`, { needs: Object.fromEntries(buckets.map((bucket) => [bucket, 1])) });
        }
      }
      const start = await startOnboarding(clients, trigger, instance, existing, settings, now);
      if (start.kind === 'done') return start.result;
      const { trail, result } = start;
      const claimed = await settle(trail, result, settings, async () => {
        try {
          if (start.action === 'recheck') return result((await scheduleNextCheck(clients, trail, settings, now)).status);
          await profileStep(clients, trail, start.instance, settings, now, () => pace.beforeCall('iam:attach-role-policy'));
          if (trail.record.commandId) return result((await scheduleNextCheck(clients, trail, settings, now)).status);
        } catch (error) {
          if (isThrottling(error)) await pace.throttled(throttledBucket(error));
          throw error;
        }
        awaiting.push({ trail, instance: start.instance, result });
        return undefined;
      });
      if (claimed && !claimed.ok) throw new ClaimedFailure(claimed.error);
      return claimed?.result;
    });
    if (outcome && !outcome.ok && outcome.error instanceof ClaimedFailure) outcomes.set(instanceId, { ok: false, error: outcome.error.error, started: true });
    else if (outcome) outcomes.set(instanceId, outcome);
  });

  // In the batch's order, whatever order the steps above finished in: the same batch, the same commands.
  const order = new Map(ids.map((instanceId, index) => [instanceId, index]));
  awaiting.sort((a, b) => (order.get(a.instance.instanceId) ?? 0) - (order.get(b.instance.instanceId) ?? 0));
  for (const [instanceId, outcome] of await installOnBatch(clients, awaiting, settings, now, pace, options)) outcomes.set(instanceId, outcome);
  // What EC2 said of the instances left for later untouched, for when their messages come back.
  const untouched = [...outcomes].flatMap(([instanceId, outcome]) => {
    const instance = found.get(instanceId);
    return !outcome.ok && outcome.error instanceof PacedLaterError && !outcome.started && instance && !keptFacts.has(instanceId) ? [instance] : [];
  });
  if (untouched.length > 0) await saveDeferredFacts(clients, settings.stateTable, untouched, now);
  return outcomes;
}

/**
 * The Systems Manager steps of the claimed instances that still need their install command: their
 * presence 50 a call, a wait for those not online, and one SendCommand per OS and 50 instances for
 * the others, each instance's record carrying the command id; then each one's first check. In a
 * batch that is no window's run (when INSTALL_WINDOW_SECONDS is not 0), only full commands go now
 * (50 instances of one OS); the instances that would make a smaller one join the install window
 * instead: its run does these steps for the instances of every batch of the window together.
 */
async function installOnBatch(clients: Clients, awaiting: AwaitingInstall[], settings: Settings, now: Date, pace: PlacePacing, options: BatchOptions): Promise<Map<string, Outcome>> {
  const outcomes = new Map<string, Outcome>();
  if (awaiting.length === 0) return outcomes;
  const each = (items: readonly AwaitingInstall[], step: (item: AwaitingInstall) => Promise<OnboardingRecord>) =>
    mapBounded(items, instanceConcurrency, async (item) => {
      const outcome = await settle(item.trail, item.result, settings, async () => item.result((await step(item)).status));
      if (outcome) outcomes.set(item.instance.instanceId, outcome);
    });
  const failAll = async (items: readonly AwaitingInstall[], error: unknown) =>
    each(items, () => {
      throw error;
    });

  if (!options.windowRun && settings.installWindowSeconds > 0) {
    // Full commands go now (50 instances of one OS); what would make a smaller one joins the window.
    const fullCommands: AwaitingInstall[] = [];
    const rest: AwaitingInstall[] = [];
    for (const os of new Set(awaiting.map((item) => item.instance.os))) {
      const ofOs = awaiting.filter((item) => item.instance.os === os);
      const full = Math.floor(ofOs.length / maxInstancesPerCommand) * maxInstancesPerCommand;
      fullCommands.push(...ofOs.slice(0, full));
      rest.push(...ofOs.slice(full));
    }
    if (rest.length > 0) await joinWindow(clients, rest, settings, now, pace, each, failAll);
    if (fullCommands.length === 0) return outcomes;
    awaiting = awaiting.filter((item) => fullCommands.includes(item));
  }

  let presence;
  try {
    presence = await describeInstanceInformation(clients, awaiting.map((item) => item.instance.instanceId));
  } catch (error) {
    await failAll(awaiting, error);
    return outcomes;
  }
  // describeInstanceInformation answers for every id asked (NotRegistered when SSM never heard of it).
  const presenceOf = (item: AwaitingInstall) => presence.get(item.instance.instanceId);
  const offline = awaiting.filter((item) => {
    const known = presenceOf(item);
    return !known || !isOnline(known);
  });
  await waitForSsmTogether(clients, offline, (item) => presenceOf(item)?.pingStatus ?? 'NotRegistered', settings, now, each, failAll);

  const online = awaiting.filter((item) => !offline.includes(item));
  const byOs = new Map<OsFamily, AwaitingInstall[]>();
  for (const item of online) byOs.set(item.instance.os, [...(byOs.get(item.instance.os) ?? []), item]);
  const sent: AwaitingInstall[] = [];
  for (const [os, items] of byOs) {
    for (const chunk of chunksOf(items, maxInstancesPerCommand)) {
      await sendToGroup(clients, chunk, os, settings, now, pace, each, failAll, sent);
    }
  }
  await scheduleFirstLooks(clients, sent, settings, now, each, failAll);
  return outcomes;
}

/**
 * The instances of a small batch join the install window of their place: one UpdateItem, the
 * window's schedule if this container has not created it yet, then each one's record says which
 * window and attempt (`waiting-for-ssm`, see recordJoinedWindow). A failure of either call fails
 * them all (lastError; their messages come back, and the redelivery joins a window again).
 */
async function joinWindow(
  clients: Clients,
  awaiting: readonly AwaitingInstall[],
  settings: Settings,
  now: Date,
  pace: PlacePacing,
  each: (items: readonly AwaitingInstall[], step: (item: AwaitingInstall) => Promise<OnboardingRecord>) => Promise<unknown>,
  failAll: (items: readonly AwaitingInstall[], error: unknown) => Promise<unknown>,
): Promise<void> {
  let joined;
  try {
    const entries = awaiting.map((item) => ({ instanceId: item.instance.instanceId, attempt: item.trail.record.ssmAttempts + 1 }));
    joined = await joinInstallWindow(clients, entries, settings, now, () => pace.beforeCall('scheduler:create-schedule'));
  } catch (error) {
    if (isThrottling(error)) pace.pacer.throttled('scheduler:create-schedule');
    await failAll(awaiting, error);
    return;
  }
  await each(awaiting, (item) => recordJoinedWindow(item.trail, joined, awaiting.length, now));
  // What EC2 said of them, for the window's run (deferred-facts.ts): it need not ask again.
  await saveDeferredFacts(clients, settings.stateTable, awaiting.map((item) => item.instance), now);
}

/**
 * The instances of the batch that Systems Manager does not see online yet: those whose next look
 * would be their last are handed to the checker one by one, as in runOnboarding; the others wait
 * together, with one onboarding retry schedule per attempt (up to 100 instances), so their retry
 * is a batch again: one DescribeInstanceInformation per 50, one SendCommand per OS and 50.
 */
async function waitForSsmTogether(
  clients: Clients,
  offline: readonly AwaitingInstall[],
  pingStatusOf: (item: AwaitingInstall) => string,
  settings: Settings,
  now: Date,
  each: (items: readonly AwaitingInstall[], step: (item: AwaitingInstall) => Promise<OnboardingRecord>) => Promise<unknown>,
  failAll: (items: readonly AwaitingInstall[], error: unknown) => Promise<unknown>,
): Promise<void> {
  const lastLook = offline.filter((item) => givesUpOnSsm(item.trail.record, settings));
  await each(lastLook, (item) => waitForSsm(clients, item.trail, pingStatusOf(item), settings, now));
  const byAttempt = new Map<number, AwaitingInstall[]>();
  for (const item of offline.filter((entry) => !lastLook.includes(entry))) {
    const next = item.trail.record.ssmAttempts + 2;
    byAttempt.set(next, [...(byAttempt.get(next) ?? []), item]);
  }
  const at = new Date(now.getTime() + settings.ssmRetryDelaySeconds * 1000);
  for (const [attempt, items] of byAttempt) {
    for (const chunk of chunksOf(items, maxInstancesPerOnboardSchedule)) {
      let scheduled: { name: string; outcome: string };
      try {
        scheduled = await scheduleBatchOnboard(clients, chunk.map((item) => item.instance.instanceId), attempt, at, settings);
      } catch (error) {
        await failAll(chunk, error);
        continue;
      }
      await each(chunk, (item) => recordWaitingForSsm(item.trail, pingStatusOf(item), `${scheduled.outcome} for ${at.toISOString()} (batch schedule ${scheduled.name}, ${chunk.length} instance(s))`, now));
    }
  }
}

/**
 * The first look of every instance that got its install command in this batch, Linux and Windows
 * alike: one check schedule for up to 250 of them (check-policy `lookPlan`: early looks from 60 s
 * after the command, each OS's full first check later), instead of one schedule per instance.
 * A schedule that cannot be created fails its instances (lastError; their messages come back, and
 * the redelivery schedules each one's check).
 */
async function scheduleFirstLooks(
  clients: Clients,
  sent: readonly AwaitingInstall[],
  settings: Settings,
  now: Date,
  each: (items: readonly AwaitingInstall[], step: (item: AwaitingInstall) => Promise<OnboardingRecord>) => Promise<unknown>,
  failAll: (items: readonly AwaitingInstall[], error: unknown) => Promise<unknown>,
): Promise<void> {
  const at = firstLookAt(settings, now);
  for (const chunk of chunksOf(sent, maxInstancesPerCheckSchedule)) {
    let scheduled: { name: string; outcome: string };
    try {
      scheduled = await scheduleBatchCheck(clients, chunk.map((item) => item.instance.instanceId), 1, 1, at, settings);
    } catch (error) {
      await failAll(chunk, error);
      continue;
    }
    await each(chunk, (item) => recordFirstLook(item.trail, scheduled, at, chunk.length, now));
  }
}

/**
 * One SendCommand for a group of one OS; every instance's record gets the command id, then its
 * check. Systems Manager refuses the whole call when one instance is not reachable although it was
 * reported online a moment ago (rare): the group is halved until that instance stands alone, and it
 * waits for Systems Manager as in runOnboarding.
 */
async function sendToGroup(
  clients: Clients,
  group: AwaitingInstall[],
  os: OsFamily,
  settings: Settings,
  now: Date,
  pace: PlacePacing,
  each: (items: readonly AwaitingInstall[], step: (item: AwaitingInstall) => Promise<OnboardingRecord>) => Promise<unknown>,
  failAll: (items: readonly AwaitingInstall[], error: unknown) => Promise<unknown>,
  sent: AwaitingInstall[],
): Promise<void> {
  let commandId: string;
  try {
    await pace.beforeCall('ssm:send-command', group.length);
    commandId = await sendInstallCommandTo(clients, group.map((item) => item.instance.instanceId), os, settings);
  } catch (error) {
    if (!(error instanceof InstanceNotReachableError)) {
      if (isThrottling(error)) await pace.throttled('ssm:send-command');
      await failAll(group, error);
      return;
    }
    if (group.length === 1) {
      await each(group, (item) => waitForSsm(clients, item.trail, 'InvalidInstanceId', settings, now));
      return;
    }
    const half = Math.ceil(group.length / 2);
    await sendToGroup(clients, group.slice(0, half), os, settings, now, pace, each, failAll, sent);
    await sendToGroup(clients, group.slice(half), os, settings, now, pace, each, failAll, sent);
    return;
  }
  await each(group, async (item) => {
    const saved = await recordCommandSent(item.trail, commandId, item.instance, settings, now);
    sent.push(item);
    return saved;
  });
}
