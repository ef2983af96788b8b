import { StaleRecordError } from '../errors.js';
import { BatchGetCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Clients } from '../aws/client-factory.js';
import { stateTableClient } from '../aws/client-factory.js';
import { awsErrorName, sleep } from '../aws/errors.js';
import type { OsFamily } from '../agent-config.js';
import type { ProfilePath } from '../onboarding/instance-profiles.js';
import type { RecordedDiagnosis } from '../checking/check-explanation.js';
import type { Settings } from '../config/settings.js';
import type { Place } from '../aws/place.js';

/** Where an instance is in its onboarding; the record's `status`. */
export type OnboardingStatus =
  | 'onboarding' // an invocation has claimed it and is working on it
  | 'waiting-for-ssm' // profile done; Systems Manager does not see it online yet, or it waits in an install window: a retry (or the window's run) is scheduled
  | 'installing' // the install-and-configure command was sent
  | 'checking' // the checker is scheduled to confirm metrics arrive
  | 'healthy'
  | 'alerting' // the checker decided to alert and recorded the diagnosis; the message is not confirmed sent
  | 'alerted'
  | 'skipped' // opt-out tag, or no opt-in tag
  | 'stopped' // no longer running when looked at
  | 'gone' // terminated, or unknown to EC2
  | 'error'; // an unexpected error stopped the last invocation; the next one resumes

/** One step of what the product did to an instance, kept in the record's history. */
export interface HistoryEntry {
  at: string;
  step: string;
  detail?: string;
}

/** The product's one record per instance, in the state table. */
export interface OnboardingRecord {
  /** The table's key: `<account>:<region>:<instanceId>` (see {@link recordKeyOf}). */
  recordKey: string;
  /** The account and region the instance lives in. */
  account: string;
  region: string;
  instanceId: string;
  status: OnboardingStatus;
  /** Optimistic lock: every write requires the version it read. */
  version: number;
  os?: OsFamily;
  name?: string;
  /** The launch this record is about: EC2 LaunchTime changes on every start. */
  launchTime?: string;
  profilePath?: ProfilePath;
  profileArn?: string;
  roleName?: string;
  missingPolicies?: string[];
  commandId?: string;
  commandSentAt?: string;
  ssmAttempts: number;
  checkAttempts: number;
  /** Install commands re-sent by the checker for this launch. */
  reinstalls?: number;
  /** The checker's latest finding while metrics are missing. */
  diagnosis?: RecordedDiagnosis;
  /** When an alert was sent, and for which launch and diagnosis: one alert per launch's failure. */
  alertedAt?: string;
  alertedLaunch?: string;
  alertedDiagnosis?: string;
  /** First datapoint of the expected series for this launch, and its delay after launch. */
  firstDatapointAt?: string;
  launchToFirstMetricSeconds?: number;
  healthyAt?: string;
  /** The CloudWatch alarms the checker created for this instance. */
  alarmNames?: string[];
  /**
   * Healthy, but its alarms are still to be created: a batch check found more healthy instances
   * than the product's share of PutMetricAlarm allowed at once, and the batch's next schedule creates them.
   */
  alarmsPending?: boolean;
  /** Why it is in a terminal status (skipped, failed, gone, stopped). */
  reason?: string;
  lastError?: string;
  /**
   * The table's TTL attribute (epoch seconds): set when the record becomes `gone`, absent in any
   * other status, so only the records of terminated instances are ever deleted.
   */
  expiresAt?: number;
  createdAt: string;
  updatedAt: string;
  history: HistoryEntry[];
}

/**
 * A change of status. Only `gone` records expire, so a change to `gone` carries the expiry: make it
 * with {@link statusChange}.
 */
export type StatusChange = { status: Exclude<OnboardingStatus, 'gone'>; expiresAt?: undefined } | { status: 'gone'; expiresAt: number };

/** What one step changes in a record; the status, when it changes, with its expiry. */
export type RecordChanges = Partial<Omit<OnboardingRecord, 'recordKey' | 'account' | 'region' | 'instanceId' | 'version' | 'history' | 'createdAt' | 'status' | 'expiresAt'>> &
  (StatusChange | { status?: undefined; expiresAt?: undefined });

/**
 * The change to `status`; to `gone`, with the expiry GONE_RECORD_RETENTION_DAYS from `now`.
 *
 * @example
 * advance(record, { ...statusChange('gone', now, settings), reason: 'instance terminated' }, 'gone', now);
 */
export function statusChange(status: OnboardingStatus, now: Date, settings: Pick<Settings, 'goneRecordRetentionDays'>): StatusChange {
  if (status !== 'gone') return { status };
  return { status, expiresAt: Math.floor(now.getTime() / 1000) + settings.goneRecordRetentionDays * 86_400 };
}

const historyLimit = 50;

/**
 * The state table's key of an instance: account, region and instance id, so records of two
 * accounts or regions never collide.
 *
 * @example
 * recordKeyOf({ account: '111111111111', region: 'eu-west-1' }, 'i-0abc'); // '111111111111:eu-west-1:i-0abc'
 */
export function recordKeyOf(place: Place, instanceId: string): string {
  return `${place.account}:${place.region}:${instanceId}`;
}

/** A new, unsaved record (version 0) for an instance seen for the first time. */
export function newRecord(place: Place, instanceId: string, now: Date): OnboardingRecord {
  const at = now.toISOString();
  return { recordKey: recordKeyOf(place, instanceId), account: place.account, region: place.region, instanceId, status: 'onboarding', version: 0, ssmAttempts: 0, checkAttempts: 0, createdAt: at, updatedAt: at, history: [] };
}

/**
 * The record after one step: the changes applied and the step appended to the history (the
 * oldest entries are dropped past 50). A record that is not `gone` afterwards has no expiry; one
 * that already was `gone` keeps the expiry it got then. Pure: nothing is written.
 */
export function advance(record: OnboardingRecord, changes: RecordChanges, step: string, now: Date, detail?: string): OnboardingRecord {
  const at = now.toISOString();
  const entry: HistoryEntry = detail === undefined ? { at, step } : { at, step, detail };
  const { expiresAt: _previous, ...next } = { ...record, ...changes, updatedAt: at, history: [...record.history, entry].slice(-historyLimit) };
  if (next.status !== 'gone') return next;
  const expiresAt = record.status === 'gone' ? (record.expiresAt ?? changes.expiresAt) : changes.expiresAt;
  return expiresAt === undefined ? next : { ...next, expiresAt };
}

/** Reads the record of an instance of the clients' place (strongly consistent), or undefined. */
export async function readRecord(clients: Clients, table: string, instanceId: string): Promise<OnboardingRecord | undefined> {
  const result = await stateTableClient(clients).send(
    new GetCommand({ TableName: table, Key: { recordKey: recordKeyOf(clients.place, instanceId) }, ConsistentRead: true }),
  );
  return result.Item as OnboardingRecord | undefined;
}

/** BatchGetItem reads at most 100 keys a call. */
export const maxRecordsPerBatchGet = 100;

/** How often keys DynamoDB leaves unprocessed (throttling) are asked again before giving up. */
const unprocessedRetries = 5;

/**
 * Reads the records of many instances of the clients' place: BatchGetItem, 100 keys a call,
 * strongly consistent like {@link readRecord}, whole records (with their history). Keys DynamoDB
 * leaves unprocessed are asked again with backoff, a few times. Instances without a record are
 * absent from the map.
 *
 * @example
 * const records = await readRecords(clients, settings.stateTable, ['i-0abc', 'i-0def']);
 */
export async function readRecords(clients: Clients, table: string, instanceIds: readonly string[]): Promise<Map<string, OnboardingRecord>> {
  const found = new Map<string, OnboardingRecord>();
  for (let from = 0; from < instanceIds.length; from += maxRecordsPerBatchGet) {
    let keys: Record<string, unknown>[] = instanceIds.slice(from, from + maxRecordsPerBatchGet).map((instanceId) => ({ recordKey: recordKeyOf(clients.place, instanceId) }));
    for (let attempt = 0; keys.length > 0; attempt++) {
      if (attempt > 0) {
        if (attempt > unprocessedRetries) throw new Error(`DynamoDB left ${keys.length} keys of ${table} unprocessed after ${unprocessedRetries} retries`);
        await sleep(100 * 2 ** attempt);
      }
      const result = await stateTableClient(clients).send(new BatchGetCommand({ RequestItems: { [table]: { Keys: keys, ConsistentRead: true } } }));
      for (const item of result.Responses?.[table] ?? []) {
        const record = item as OnboardingRecord;
        found.set(record.instanceId, record);
      }
      keys = (result.UnprocessedKeys?.[table]?.Keys ?? []) as Record<string, unknown>[];
    }
  }
  return found;
}

/**
 * Writes a record if nobody else changed it since it was read (its `version` is the one read;
 * 0 means "must not exist yet"). Returns the saved record with its new version.
 *
 * @throws StaleRecordError when another invocation wrote first.
 */
export async function saveRecord(clients: Clients, table: string, record: OnboardingRecord): Promise<OnboardingRecord> {
  const saved = { ...record, version: record.version + 1 };
  try {
    await stateTableClient(clients).send(
      new PutCommand({
        TableName: table,
        Item: saved,
        ConditionExpression: record.version === 0 ? 'attribute_not_exists(recordKey)' : 'version = :read',
        ...(record.version === 0 ? {} : { ExpressionAttributeValues: { ':read': record.version } }),
      }),
    );
    return saved;
  } catch (error) {
    if (awsErrorName(error) === 'ConditionalCheckFailedException') {
      throw new StaleRecordError(`${record.instanceId} (${record.account}/${record.region}): the state record changed since it was read (version ${record.version})`);
    }
    throw error;
  }
}

/**
 * The successive saves of one record by one invocation. It always writes from the version it saved
 * last, so a step that fails after earlier steps were saved can still be recorded.
 *
 * @example
 * const trail = new RecordTrail(clients, table, claimed);
 * await trail.step({ status: 'installing', commandId }, 'install-command-sent', now);
 */
export class RecordTrail {
  constructor(
    private readonly clients: Clients,
    private readonly table: string,
    private last: OnboardingRecord,
  ) {}

  /** The record as last saved (or as read, before the first save). */
  get record(): OnboardingRecord {
    return this.last;
  }

  /** Applies one step and saves it; see {@link advance} and {@link saveRecord}. */
  async step(
    changes: Parameters<typeof advance>[1],
    step: string,
    now: Date,
    detail?: string,
  ): Promise<OnboardingRecord> {
    this.last = await saveRecord(this.clients, this.table, advance(this.last, changes, step, now, detail));
    return this.last;
  }
}
