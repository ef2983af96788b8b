import type { ClientFactory, Clients } from '../aws/client-factory.js';
import { clientFactoryOf } from '../aws/product-clients.js';
import { withMemberAccess } from './member-access.js';
import { accountName } from '../aws/account-names.js';
import { samePlace } from '../aws/place.js';
import { AlertNotSentError, InstanceNotReachableError, StaleRecordError } from '../errors.js';
import { sendInstallCommand } from '../onboarding/agent-commands.js';
import { publish, renderAlert, renderRecovery } from './alerts.js';
import { awsErrorName, describeError } from '../aws/errors.js';
import { diagnose, metricFindings, type Diagnosis, type DiagnosisCode, type MetricFindings } from './check-diagnosis.js';
import { recordedDiagnosis } from './check-explanation.js';
import { alertRetryAt, checkCurrency, decideAfterDiagnosis, lookPlan } from './check-policy.js';
import { commandStatus } from './command-status.js';
import { deleteInstanceAlarms, instanceAlarms, putInstanceAlarms } from './instance-alarms.js';
import { containerPacing, PlacePacing, type BatchPacing } from '../pacing/batch-pacing.js';
import { agentProfileNameIn, missingRolePolicies, requiredPolicyNames, type RolePolicyFacts } from '../onboarding/instance-profiles.js';
import { describeInstance, type InstanceFacts } from '../aws/instances.js';
import { logAbout, logger } from '../observability/logger.js';
import { cleanUpInstance, describeCleanup } from '../offboarding/offboarding.js';
import { expectedMetrics, seriesPresence, type SeriesPresence } from './metric-queries.js';
import { advance, readRecord, saveRecord, statusChange, type OnboardingRecord, type OnboardingStatus } from '../state/instance-record.js';
import { countAlerted, countHealthy } from '../observability/product-metrics.js';
import { deleteSchedules, scheduleBatchCheck, scheduleCheck, scheduleName } from '../aws/schedules.js';
import type { Settings } from '../config/settings.js';
import { ssmPresence } from '../onboarding/ssm-presence.js';
import type { CheckRequest } from '../input/triggers.js';

/** The Organizations name of a member account for its messages (none for the hub's own place). */
function nameOfAccount(clients: Clients, settings: Settings): Promise<string | undefined> {
  if (samePlace(clients.place, clients.hubPlace)) return Promise.resolve(undefined);
  return accountName(clients, clients.place.account, settings.organizationId !== undefined);
}

/** What one check invocation did, returned by the handler and logged. */
export interface CheckResult {
  instanceId: string;
  /** `look`: an early look of a batch found no metrics yet; the instance is in the batch's next look. */
  action: 'ignore' | 'gone' | 'stopped' | 'healthy' | 'retry' | 'alerted' | 'already-alerted' | 'unreachable' | 'look';
  status: OnboardingStatus | undefined;
  reason: string;
  diagnosis?: DiagnosisCode;
}

const maxWindowMs = 24 * 3600 * 1000;

/**
 * The GetMetricData window: from the launch (so datapoints of an earlier launch never count, and
 * the first datapoint of this one is found), at most 24 hours back, and at least one minute.
 * Whether a series is still arriving is decided on the last METRIC_LOOKBACK_SECONDS of it.
 */
export function metricWindow(launchTime: string | undefined, now: Date, settings: Pick<Settings, 'metricLookbackSeconds'>): { start: Date; end: Date } {
  const end = now.getTime();
  const launch = launchTime ? Date.parse(launchTime) : Number.NaN;
  const from = Number.isNaN(launch) ? end - settings.metricLookbackSeconds * 1000 : Math.max(launch, end - maxWindowMs);
  return { start: new Date(Math.min(from, end - 60_000)), end: now };
}

async function recordOffline(
  clients: Clients,
  record: OnboardingRecord,
  status: 'gone' | 'stopped',
  reason: string,
  settings: Settings,
  now: Date,
): Promise<OnboardingRecord> {
  const cleaned = await cleanUpInstance(clients, record.instanceId, record, settings);
  return saveRecord(
    clients,
    settings.stateTable,
    advance(record, { ...statusChange(status, now, settings), reason, alarmNames: undefined }, status, now, `${reason}; ${describeCleanup(cleaned)}`),
  );
}

async function becomeHealthy(
  clients: Clients,
  record: OnboardingRecord,
  instance: InstanceFacts,
  findings: MetricFindings,
  attempt: number,
  scheduleNames: string[],
  settings: Settings,
  now: Date,
  alarms: 'now' | 'later' = 'now',
  beforeAlarm?: (index: number) => Promise<void>,
): Promise<OnboardingRecord> {
  const alarmNames = alarms === 'now' ? await putInstanceAlarms(clients, instance.instanceId, instance.os, settings, beforeAlarm) : [];
  const firstForLaunch = record.status !== 'healthy';
  const launchTime = instance.launchTime ?? record.launchTime;
  const launch = launchTime ? Date.parse(launchTime) : Number.NaN;
  // GetMetricData stamps a datapoint with the start of its 60 s period, which for the first one can
  // fall before the launch: the agent's first datapoint is never earlier than the launch itself.
  const seen = firstForLaunch ? findings.firstDatapointAt : record.firstDatapointAt;
  const firstDatapointAt = firstForLaunch && seen && !Number.isNaN(launch) && Date.parse(seen) < launch ? new Date(launch).toISOString() : seen;
  const launchToFirstMetricSeconds =
    firstForLaunch && firstDatapointAt && !Number.isNaN(launch)
      ? Math.max(0, Math.round((Date.parse(firstDatapointAt) - launch) / 1000))
      : record.launchToFirstMetricSeconds;
  let saved = await saveRecord(
    clients,
    settings.stateTable,
    advance(
      record,
      {
        status: 'healthy',
        checkAttempts: attempt,
        healthyAt: now.toISOString(),
        firstDatapointAt,
        launchToFirstMetricSeconds,
        alarmNames,
        alarmsPending: alarms === 'later' ? true : undefined,
        diagnosis: undefined,
        reason: undefined,
        lastError: undefined,
      },
      'healthy',
      now,
      `${findings.present.join(', ')} arrive; first datapoint ${firstDatapointAt ?? '?'}${
        launchToFirstMetricSeconds !== undefined ? ` (${launchToFirstMetricSeconds} s after launch)` : ''
      }; ${alarms === 'later' ? "alarms next (the product's share of PutMetricAlarm is spent for now)" : `${alarmNames.length} alarm(s) in place`}`,
    ),
  );
  countHealthy(firstForLaunch, firstForLaunch ? launchToFirstMetricSeconds : undefined);

  if (saved.alertedAt) {
    // Saved healthy first: a duplicate invocation loses the write above and sends nothing.
    let messageId: string;
    try {
      messageId = await publish(clients, renderRecovery({ record: saved, firstDatapointAt, alarmNames, scheduleNames, settings, now, accountName: await nameOfAccount(clients, settings) }), settings);
    } catch (error) {
      // alertedAt stays set: one more scheduled check sends the recovery (checkCurrency lets a
      // healthy record with a pending recovery run it).
      logger.error('recovery message not sent', { instanceId: record.instanceId, error: describeError(error) });
      const retryAt = new Date(now.getTime() + settings.checkRetryDelaySeconds * 1000);
      const outcome = await scheduleCheck(clients, record.instanceId, attempt + 1, retryAt, settings).catch(
        (scheduleError: unknown) => `not scheduled: ${describeError(scheduleError)}`,
      );
      return saveRecord(
        clients,
        settings.stateTable,
        advance(saved, { lastError: `recovery message not sent: ${describeError(error)}` }, 'recovery-failed', now, `${describeError(error)}; check ${attempt + 1} ${outcome}`),
      ).catch(() => saved);
    }
    try {
      saved = await saveRecord(
        clients,
        settings.stateTable,
        advance(saved, { alertedAt: undefined, alertedLaunch: undefined, alertedDiagnosis: undefined }, 'recovery-sent', now, `SNS message ${messageId}`),
      );
    } catch (error) {
      logger.error('recovery sent, but the record could not be updated', { instanceId: record.instanceId, messageId, error: describeError(error) });
    }
  }
  return saved;
}

/**
 * Creates the alarms of a healthy instance whose alarms a batch check left for later, and records
 * them. A record that changed meanwhile (stopped, restarted) wins: StaleRecordError.
 */
export async function createPendingAlarms(clients: Clients, record: OnboardingRecord, instance: InstanceFacts, settings: Settings, now: Date, beforeEach?: (index: number) => Promise<void>): Promise<CheckResult> {
  const alarmNames = await putInstanceAlarms(clients, instance.instanceId, instance.os, settings, beforeEach);
  const saved = await saveRecord(clients, settings.stateTable, advance(record, { alarmNames, alarmsPending: undefined }, 'alarms-created', now, `${alarmNames.length} alarm(s) in place`));
  return { instanceId: instance.instanceId, action: 'healthy', status: saved.status, reason: `${alarmNames.length} alarm(s) created` };
}

/**
 * Whether the recorded install command was sent for the instance's current launch. After a restart
 * the previous launch's command says nothing about this one (and SSM forgets commands after 30
 * days): without it the diagnosis is `command-not-sent`, which a reinstall fixes.
 */
export function commandOfThisLaunch(record: Pick<OnboardingRecord, 'commandId' | 'commandSentAt'>, instance: Pick<InstanceFacts, 'launchTime'>): boolean {
  if (!record.commandId) return false;
  if (!record.commandSentAt || !instance.launchTime) return true;
  return Date.parse(record.commandSentAt) >= Date.parse(instance.launchTime);
}

/**
 * The profile's role and the policies it lacks. A profile deleted while still associated lacks
 * everything; a lookup IAM denies (an SCP, a permission boundary) is left out of the diagnosis
 * rather than failing the whole check, which would leave the person with no alert at all.
 */
async function roleFacts(clients: Clients, profileArn: string, instanceId: string): Promise<RolePolicyFacts | undefined> {
  try {
    return await missingRolePolicies(clients, profileArn);
  } catch (error) {
    const name = awsErrorName(error);
    if (name === 'NoSuchEntity') return { roleName: undefined, missing: [...requiredPolicyNames] };
    if (name === 'AccessDenied' || name === 'AccessDeniedException') {
      logger.warn('the instance role could not be read; diagnosing without it', { instanceId, profileArn, error: describeError(error) });
      return undefined;
    }
    throw error;
  }
}

/**
 * SSM answers InvocationDoesNotExist for a while right after SendCommand; still not knowing the
 * invocation this long after (the command's own timeout is 10 minutes) means it never reached the
 * instance: the diagnosis is then "not sent", which a reinstall fixes, not "still running".
 */
const unacknowledgedAfterMs = 15 * 60 * 1000;

async function gatherDiagnosis(clients: Clients, record: OnboardingRecord, instance: InstanceFacts, findings: MetricFindings, settings: Settings, now: Date): Promise<Diagnosis> {
  const { instanceId } = instance;
  const [role, ssm, reported] = await Promise.all([
    instance.profileArn ? roleFacts(clients, instance.profileArn, instanceId) : Promise.resolve(undefined),
    ssmPresence(clients, instanceId),
    commandOfThisLaunch(record, instance) ? commandStatus(clients, record.commandId ?? '', instanceId) : Promise.resolve(undefined),
  ]);
  const sentAt = record.commandSentAt ? Date.parse(record.commandSentAt) : Number.NaN;
  const command = reported?.state === 'not-yet-known' && now.getTime() - sentAt > unacknowledgedAfterMs ? undefined : reported;
  return diagnose({
    instanceId,
    os: instance.os,
    profileArn: instance.profileArn,
    role,
    ssm,
    command,
    metrics: findings,
    region: clients.place.region,
    agentProfileName: agentProfileNameIn(clients, settings),
    agentDocumentName: settings.agentDocumentName,
    configParameter: settings.configParameter[instance.os],
    checkFunctionName: settings.checkFunctionArn.slice(settings.checkFunctionArn.lastIndexOf(':') + 1),
  });
}

/**
 * Records the diagnosis and publishes the alert. The record is claimed first (status `alerting`,
 * with the diagnosis, a conditional write): a concurrent duplicate check loses that write and sends
 * nothing. Then SNS, then `alerted`. If SNS fails, the record keeps `alerting`, the diagnosis and
 * lastError, and a retry is scheduled: the alert is late, never lost. If the final write fails
 * after SNS took the message, the alert is out and the record stays `alerting` with no check
 * pending, so nothing sends it twice; that is logged.
 */
async function sendAlert(
  clients: Clients,
  record: OnboardingRecord,
  diagnosis: Diagnosis,
  attempt: number,
  scheduleNames: string[],
  reason: string,
  settings: Settings,
  now: Date,
): Promise<OnboardingRecord> {
  const claimed = await saveRecord(
    clients,
    settings.stateTable,
    advance(record, { status: 'alerting', diagnosis: recordedDiagnosis(diagnosis), checkAttempts: attempt }, 'alert-decided', now, `${diagnosis.code}: ${reason}`),
  );
  const message = renderAlert({ record: claimed, diagnosis, checks: attempt, scheduleNames, settings, now, accountName: await nameOfAccount(clients, settings) });
  let messageId: string;
  try {
    messageId = await publish(clients, message, settings);
  } catch (error) {
    const retryAt = alertRetryAt(attempt, settings, now);
    let detail = describeError(error);
    if (retryAt) {
      try {
        await scheduleCheck(clients, record.instanceId, attempt + 1, retryAt, settings);
        detail += `; alert retried by check ${attempt + 1} at ${retryAt.toISOString()}`;
      } catch (scheduleError) {
        detail += `; no retry scheduled: ${describeError(scheduleError)}`;
      }
    } else {
      detail += '; no more retries: invoke the checker by hand to send it';
    }
    await saveRecord(
      clients,
      settings.stateTable,
      advance(claimed, { lastError: `alert not sent: ${describeError(error)}` }, 'alert-failed', now, detail),
    ).catch((writeError: unknown) => logger.error('could not record the failed alert', { instanceId: record.instanceId, error: describeError(writeError) }));
    throw new AlertNotSentError(`${record.instanceId}: alert ${diagnosis.code} not sent: ${detail}`, { cause: error });
  }
  countAlerted(diagnosis.code);
  try {
    return await saveRecord(
      clients,
      settings.stateTable,
      advance(
        claimed,
        { status: 'alerted', alertedAt: now.toISOString(), alertedLaunch: claimed.launchTime, alertedDiagnosis: diagnosis.code, lastError: undefined },
        'alerted',
        now,
        `SNS message ${messageId}: ${message.subject}`,
      ),
    );
  } catch (error) {
    logger.error('alert sent, but the record could not be marked alerted', {
      instanceId: record.instanceId,
      messageId,
      stale: error instanceof StaleRecordError,
      error: describeError(error),
    });
    return claimed;
  }
}

/** What a check of a running instance comes to: done, or a retry that is recorded once its schedule exists. */
export type RunningOutcome =
  | { kind: 'done'; result: CheckResult; /** The record as saved, when it became healthy. */ saved?: OnboardingRecord }
  | {
      kind: 'retry';
      nextAttempt: number;
      at: Date;
      /** Records the retry with what scheduling it said (`scheduled for ...`), or throws as the check would. */
      complete: (scheduled: string) => Promise<CheckResult>;
    };

/**
 * The metric findings of one running instance from a GetMetricData lookup made for it (alone or with
 * its batch): the window starts at its live launch time, so a restart that onboarding has not
 * recorded yet never counts the old launch's datapoints.
 */
export function findingsOf(instance: InstanceFacts, record: OnboardingRecord, presence: readonly SeriesPresence[], window: { start: Date; end: Date }, settings: Settings): MetricFindings {
  return metricFindings(
    expectedMetrics(instance.os, settings.metrics),
    presence.filter((series) => series.instanceId === instance.instanceId),
    window,
    settings.metricLookbackSeconds,
  );
}

/** The GetMetricData window of one instance's check now. */
export function windowOf(instance: InstanceFacts, record: OnboardingRecord, now: Date, settings: Settings): { start: Date; end: Date } {
  return metricWindow(instance.launchTime ?? record.launchTime, now, settings);
}

/**
 * Check `attempt` of a running instance whose metric findings are known: healthy (alarms, record,
 * a recovery message if it was alerted), or the diagnosis and its decision: record it alerted
 * again, alert, or retry (re-sending the install command first when that can help). A retry is
 * returned unfinished, so a batch can schedule the retries of many instances with one schedule.
 */
export async function checkRunning(
  clients: Clients,
  record: OnboardingRecord,
  instance: InstanceFacts,
  attempt: number,
  scheduleNames: string[],
  settings: Settings,
  now: Date,
  findings: MetricFindings,
  alarms: 'now' | 'later' = 'now',
  beforeAlarm?: (index: number) => Promise<void>,
): Promise<RunningOutcome> {
  const { instanceId } = instance;
  if (findings.missing.length === 0) {
    const saved = await becomeHealthy(clients, record, instance, findings, attempt, scheduleNames, settings, now, alarms, beforeAlarm);
    return { kind: 'done', result: { instanceId, action: 'healthy', status: saved.status, reason: `${findings.present.join(', ')} arrive` }, saved };
  }

  const diagnosis = await gatherDiagnosis(clients, record, instance, findings, settings, now);
  const decision = decideAfterDiagnosis({ diagnosis, record, attempt, os: instance.os, settings, now });
  logger.info('check decision', { instanceId, attempt, diagnosis: diagnosis.code, decision });
  const result = (action: CheckResult['action'], saved: OnboardingRecord): CheckResult => ({
    instanceId,
    action,
    status: saved.status,
    reason: decision.reason,
    diagnosis: diagnosis.code,
  });

  switch (decision.action) {
    case 'already-alerted': {
      const saved = await saveRecord(
        clients,
        settings.stateTable,
        advance(record, { status: 'alerted', diagnosis: recordedDiagnosis(diagnosis), checkAttempts: attempt }, 'check', now, `${diagnosis.code}; ${decision.reason}, not alerted again`),
      );
      return { kind: 'done', result: result('already-alerted', saved) };
    }
    case 'alert':
      return { kind: 'done', result: result('alerted', await sendAlert(clients, record, diagnosis, attempt, scheduleNames, decision.reason, settings, now)) };
    case 'retry': {
      let current = record;
      let resent = '';
      if (decision.reinstall) {
        try {
          const commandId = await sendInstallCommand(clients, instanceId, instance.os, settings);
          // Saved at once, so a retried invocation never sends it twice.
          current = await saveRecord(
            clients,
            settings.stateTable,
            advance(
              current,
              { commandId, commandSentAt: now.toISOString(), reinstalls: (current.reinstalls ?? 0) + 1 },
              'install-command-resent',
              now,
              `${diagnosis.code}: ${settings.agentDocumentName} re-sent (command ${commandId})`,
            ),
          );
          resent = `; install command re-sent (${commandId})`;
        } catch (error) {
          if (!(error instanceof InstanceNotReachableError)) throw error;
          resent = `; install command not re-sent: ${error.message}`;
        }
      }
      const reinstalled = current;
      return {
        kind: 'retry',
        nextAttempt: decision.nextAttempt,
        at: decision.at,
        complete: async (scheduled) =>
          result(
            'retry',
            await saveRecord(
              clients,
              settings.stateTable,
              advance(
                reinstalled,
                { status: 'checking', checkAttempts: attempt, diagnosis: recordedDiagnosis(diagnosis), lastError: undefined },
                'check-retry',
                now,
                `${decision.reason}${resent}; check ${decision.nextAttempt} ${scheduled}`,
              ),
            ),
          ),
      };
    }
  }
}

/**
 * Runs one check for an instance: ignores checks that are not current; records a terminated or
 * stopped instance and cleans up after it; otherwise queries its expected metrics, and records it
 * healthy (with alarms) or diagnoses why not, then retries or alerts.
 *
 * @example
 * await runCheck({ instanceId: 'i-0123456789abcdef0', attempt: 1 }, settings);
 */
export async function runCheck(
  input: CheckRequest,
  settings: Settings,
  now = new Date(),
  factory: ClientFactory = clientFactoryOf(settings),
  pacing: BatchPacing = containerPacing(settings),
): Promise<CheckResult> {
  return withMemberAccess(
    input,
    settings,
    now,
    factory,
    (clients) => checkInstance(clients, input, settings, now, new PlacePacing(pacing, clients.place, clients)),
    (reason) => ({ instanceId: input.instanceId, action: 'unreachable', status: 'error', reason }),
  );
}

/**
 * How a healthy instance's alarms are paced in a check of its own: its PutMetricAlarm calls from
 * the account's ledger, each at its time, when the first comes within the wait budget; otherwise
 * it is recorded healthy with its alarms pending, and a batch schedule of its own creates them
 * when its reserved calls are due (as a batch check's alarms left for later are).
 */
async function alarmPacing(pace: PlacePacing, instance: InstanceFacts, settings: Settings): Promise<{ alarms: 'now'; beforeAlarm: (index: number) => Promise<void> } | { alarms: 'later'; dueAt: number }> {
  const calls = instanceAlarms(instance.instanceId, instance.os, settings).length;
  const slots = await pace.takeCalls('monitoring:put-metric-alarm', calls);
  if (slots) return { alarms: 'now', beforeAlarm: (index) => pace.waitUntil(slots[index] ?? 0) };
  const reserved = await pace.reserve('monitoring:put-metric-alarm', calls);
  return { alarms: 'later', dueAt: reserved?.[0] ?? pace.pacer.now() + pace.pacer.etaMs('monitoring:put-metric-alarm', calls) };
}

/** The least a single check's alarms left for later wait for their schedule (Scheduler's smallest useful delay). */
const pendingAlarmsDelayMs = 60_000;

async function checkInstance(clients: Clients, input: CheckRequest, settings: Settings, now: Date, pace: PlacePacing): Promise<CheckResult> {
  const { instanceId } = input;
  const [instance, record] = await Promise.all([describeInstance(clients, instanceId), readRecord(clients, settings.stateTable, instanceId)]);
  logAbout(instanceId, instance?.launchTime ?? record?.launchTime);
  const currency = checkCurrency(input.attempt, record);
  if (!currency.run || !record) {
    const reason = currency.run ? 'no record' : currency.reason;
    logger.info('check ignored', { instanceId, attempt: input.attempt, reason });
    return { instanceId, action: 'ignore', status: record?.status, reason };
  }

  try {
    const offline = await checkOffline(clients, record, instance, settings, now);
    if (offline) return offline;
    const running = instance as InstanceFacts;
    // The schedule that invoked this check, named in what it publishes (none for a check by hand).
    const scheduleNames = input.attempt === undefined ? [] : [scheduleName(clients, settings, 'check', instanceId, input.attempt)];
    const window = windowOf(running, record, now, settings);
    const presence = await seriesPresence(clients, [{ instanceId, os: running.os }], settings.metrics, window);
    const findings = findingsOf(running, record, presence, window, settings);
    const paced = findings.missing.length === 0 ? await alarmPacing(pace, running, settings) : undefined;
    const outcome = await checkRunning(
      clients,
      record,
      running,
      currency.attempt,
      scheduleNames,
      settings,
      now,
      findings,
      paced?.alarms ?? 'now',
      paced?.alarms === 'now' ? paced.beforeAlarm : undefined,
    );
    if (outcome.kind === 'done' && paced?.alarms === 'later' && outcome.saved?.alarmsPending) {
      // Its alarms come with a batch schedule of its own (a batch check creates a healthy record's pending alarms).
      const at = new Date(Math.max(now.getTime() + pendingAlarmsDelayMs, paced.dueAt));
      const { name } = await scheduleBatchCheck(clients, [instanceId], currency.attempt, lookPlan(settings).length + 1, at, settings);
      return { ...outcome.result, reason: `${outcome.result.reason}; alarms pending, created by ${name} at ${at.toISOString()}` };
    }
    if (outcome.kind === 'done') return outcome.result;
    const scheduled = await scheduleCheck(clients, instanceId, outcome.nextAttempt, outcome.at, settings);
    return await outcome.complete(`${scheduled} for ${outcome.at.toISOString()}`);
  } catch (error) {
    return settleCheckError(clients, record, instanceId, currency.attempt, error, settings);
  }
}

/**
 * A terminated or stopped instance (or one EC2 no longer knows): recorded `gone` or `stopped`, its
 * alarms and schedules cleaned up. Undefined for a running instance.
 */
export async function checkOffline(
  clients: Clients,
  record: OnboardingRecord,
  instance: InstanceFacts | undefined,
  settings: Settings,
  now: Date,
): Promise<CheckResult | undefined> {
  const { instanceId } = record;
  if (!instance || instance.state === 'terminated' || instance.state === 'shutting-down') {
    const reason = instance ? `instance is ${instance.state}` : 'EC2 does not know this instance (terminated)';
    const saved = await recordOffline(clients, record, 'gone', reason, settings, now);
    return { instanceId, action: 'gone', status: saved.status, reason };
  }
  if (instance.state === 'stopped' || instance.state === 'stopping') {
    const reason = `instance is ${instance.state}`;
    const saved = await recordOffline(clients, record, 'stopped', reason, settings, now);
    return { instanceId, action: 'stopped', status: saved.status, reason };
  }
  return undefined;
}

/**
 * What a check's error comes to. Another invocation that wrote first (a duplicate delivery,
 * offboarding, or onboarding after a restart) carries on from there: the check is `ignore`d (and
 * alarms it created meanwhile do not outlive a stop). Any other error is recorded on the latest
 * record (lastError; the status is unchanged, so the same check retried is still current) and
 * thrown again.
 */
export async function settleCheckError(clients: Clients, record: OnboardingRecord, instanceId: string, attempt: number, error: unknown, settings: Settings): Promise<CheckResult> {
  if (error instanceof StaleRecordError) {
    const latest = await readRecord(clients, settings.stateTable, instanceId);
    if (latest?.status === 'stopped' || latest?.status === 'gone') await deleteInstanceAlarms(clients, instanceId, settings);
    logger.info('check superseded', { instanceId, attempt, reason: error.message });
    return { instanceId, action: 'ignore', status: latest?.status, reason: `superseded: ${error.message}` };
  }
  if (error instanceof AlertNotSentError) throw error;
  const latest = (await readRecord(clients, settings.stateTable, instanceId).catch(() => undefined)) ?? record;
  await saveRecord(clients, settings.stateTable, advance(latest, { lastError: describeError(error) }, 'check-error', new Date(), describeError(error))).catch(
    (writeError: unknown) => logger.error('could not record the check error', { instanceId, error: describeError(writeError) }),
  );
  throw error;
}
