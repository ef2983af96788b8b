// `cw-autopilot upgrade-state` against moto: the state table of the single-account version
// (cwap-<stage>-state, keyed by instanceId, records without account and region) copied into this
// version's (cwap-<stage>-records), then read by the real check handler's code.
import type { Context } from 'aws-lambda';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { runCheck } from '../../shared/checking/checking.js';
import { parseCheckRequest } from '../../shared/input/triggers.js';
import { readRecord, type OnboardingRecord } from '../../shared/state/instance-record.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { runCli } from '../harness/cli-run.js';
import { launchInstance, stateChangeEvent } from '../harness/fleet.js';
import { deployOnboardFunction, deployStack, stackEnvironment, type DeployedStack } from '../harness/stack.js';
import { hubRecordKey, testClients } from '../harness/test-clients.js';

const aws = useAws();
const clients = testClients();

// The onboard handler parses its settings at cold start: the environment is the stack's before import.
Object.assign(process.env, stackEnvironment(), { POWERTOOLS_METRICS_DISABLED: 'true' });
type Handler = (event: unknown, context: Context) => Promise<Record<string, unknown>>;
let onboard: Handler;
const context = { functionName: 'test', awsRequestId: 'req', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;

const oldTable = 'cwap-test-state';
const newTable = 'cwap-test-records';
const day = 86_400;

let stack: DeployedStack;
let documents: DynamoDBDocumentClient;

beforeAll(async () => {
  onboard = (await import('../../functions/onboard.js')).handler as unknown as Handler;
});

beforeEach(async () => {
  stack = await deployStack();
  const dynamodb = new DynamoDBClient(localClientConfig());
  // The single-account version's table, as its serverless.yml declared it.
  await dynamodb.send(
    new CreateTableCommand({
      TableName: oldTable,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'instanceId', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'instanceId', KeyType: 'HASH' }],
    }),
  );
  documents = DynamoDBDocumentClient.from(dynamodb, { marshallOptions: { removeUndefinedValues: true } });
});

/** A record as the single-account version wrote it: no recordKey, account or region. */
type OldRecord = Omit<OnboardingRecord, 'recordKey' | 'account' | 'region'>;

function oldRecord(instanceId: string, changes: Partial<OldRecord>): OldRecord {
  return {
    instanceId,
    status: 'healthy',
    version: 6,
    os: 'linux',
    name: instanceId.slice(-4),
    launchTime: '2025-11-02T08:00:00.000Z',
    ssmAttempts: 1,
    checkAttempts: 1,
    healthyAt: '2025-11-02T08:06:00.000Z',
    alarmNames: [`cwap-test-${instanceId}-memory`],
    createdAt: '2025-11-02T08:00:05.000Z',
    updatedAt: '2025-11-02T08:06:00.000Z',
    history: [{ at: '2025-11-02T08:00:05.000Z', step: 'claimed' }, { at: '2025-11-02T08:06:00.000Z', step: 'healthy', detail: 'MEMORY_USED, DISK_USED arrive' }],
    ...changes,
  };
}

const healthy = oldRecord('i-0a00000000000000a', {});
const goneWithoutExpiry = oldRecord('i-0b00000000000000b', { status: 'gone', reason: 'instance terminated', alarmNames: undefined, updatedAt: '2026-01-05T12:00:00.000Z' });
const goneWithExpiry = oldRecord('i-0c00000000000000c', { status: 'gone', reason: 'instance terminated', alarmNames: undefined, updatedAt: '2026-01-20T09:30:00.000Z', expiresAt: 1_776_677_400 });
const replaced = oldRecord('i-0d00000000000000d', { status: 'installing', version: 3, checkAttempts: 0 });
/** Something else someone kept in the old table. */
const notARecord = { instanceId: 'schema-version', value: 2 };
/** What the new version wrote for `replaced` once it restarted after the deploy. */
const newer: OnboardingRecord = { ...oldRecord(replaced.instanceId, { status: 'checking', version: 2, checkAttempts: 0, updatedAt: '2026-02-01T10:00:00.000Z' }), ...hubRecordKey(replaced.instanceId) };

async function givenTables(): Promise<void> {
  for (const item of [healthy, goneWithoutExpiry, goneWithExpiry, replaced, notARecord]) await documents.send(new PutCommand({ TableName: oldTable, Item: item }));
  await documents.send(new PutCommand({ TableName: newTable, Item: newer }));
}

async function itemsOf(table: string): Promise<Record<string, unknown>[]> {
  const items = (await documents.send(new ScanCommand({ TableName: table, ConsistentRead: true }))).Items ?? [];
  return items.sort((a, b) => String(a.instanceId).localeCompare(String(b.instanceId)));
}

const cli = (...argv: string[]) => runCli(['upgrade-state', '--stage', 'test', '--region', 'us-east-1', ...argv]);
const puts = () => aws.calls().filter((call) => call.service === 'dynamodb' && call.operation === 'PutItem');

describe('cw-autopilot upgrade-state against moto', () => {
  it('copies each old record with its account, region and key; keeps the newer record; skips what is not a record; gives a gone record without expiry one', async () => {
    await givenTables();
    const putsBefore = puts().length;

    const result = await cli();

    expect(result.code).toBe(0);
    // No onboard function to read goneRecordRetentionDays from: the default, with a warning.
    expect(result.stderr).toMatch(/^warning: cannot read the stack's settings from function cw-agent-autopilot-test-onboard in us-east-1 \(ResourceNotFoundException[^\n]*\): using flags and defaults, so the retention of gone records without an expiry \(goneRecordRetentionDays, default 90\) may differ/);
    expect(result.stdout.split('\n')).toEqual([
      'cwap-test-state -> cwap-test-records, records of account 123456789012 in us-east-1',
      '  scanned                          5',
      '  copied                           3',
      '  already copied                   0',
      '  skipped, newer in the new table  1',
      '  skipped, not a record            1',
      '  failed                           0',
      '  (1 gone record(s) without expiresAt got one)',
      'skipped-invalid: schema-version: not a record: instanceId "schema-version" is not an EC2 instance id',
      '',
      'Once "cw-autopilot status" and the audit show what you expect, delete the old table: aws dynamodb delete-table --table-name cwap-test-state --region us-east-1',
      '',
    ]);

    const expiry = Math.floor(Date.parse(goneWithoutExpiry.updatedAt) / 1000) + 90 * day;
    expect(await itemsOf(newTable)).toEqual([
      { ...healthy, ...hubRecordKey(healthy.instanceId) },
      { ...goneWithoutExpiry, ...hubRecordKey(goneWithoutExpiry.instanceId), expiresAt: expiry },
      { ...goneWithExpiry, ...hubRecordKey(goneWithExpiry.instanceId) },
      newer,
    ]);
    // The old table is only read.
    expect(await itemsOf(oldTable)).toEqual([healthy, goneWithoutExpiry, goneWithExpiry, replaced, notARecord]);
    // One conditional put per record, none for the item that is not one.
    expect(puts().length - putsBefore).toBe(4);
  });

  it('a second run copies nothing and changes nothing: every record is already there', async () => {
    await givenTables();
    expect((await cli()).code).toBe(0);
    const afterFirst = await itemsOf(newTable);
    const callsBefore = aws.calls().length;

    const second = await cli('--output', 'json');

    expect(second.code).toBe(0);
    const report = JSON.parse(second.stdout);
    expect(report).toMatchObject({
      from: oldTable,
      to: newTable,
      place: { account: '123456789012', region: 'us-east-1' },
      dryRun: false,
      scanned: 5,
      counts: { copied: 0, 'already-copied': 3, 'skipped-newer': 1, 'skipped-invalid': 1, failed: 0 },
      expiriesAdded: 0,
      deleteOldTable: 'aws dynamodb delete-table --table-name cwap-test-state --region us-east-1',
    });
    expect(await itemsOf(newTable)).toEqual(afterFirst);
    // The failed conditional put returns the record that is there: nothing is read to classify it.
    const dynamodbCalls = aws.calls().slice(callsBefore).filter((call) => call.service === 'dynamodb').map((call) => call.operation);
    expect(dynamodbCalls.filter((operation) => operation === 'PutItem')).toHaveLength(4);
    expect(dynamodbCalls).not.toContain('GetItem');
  });

  it('--dry-run says what it would copy and writes nothing', async () => {
    await givenTables();
    const putsBefore = puts().length;

    const result = await cli('--dry-run', '--output', 'json');

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      dryRun: true,
      counts: { copied: 3, 'already-copied': 0, 'skipped-newer': 1, 'skipped-invalid': 1, failed: 0 },
      expiriesAdded: 1,
      next: 'Nothing was written (--dry-run). Run "cw-autopilot upgrade-state --stage test --region us-east-1" to copy.',
    });
    expect(JSON.parse(result.stdout).deleteOldTable).toBeUndefined();
    expect(puts().length - putsBefore).toBe(0);
    expect(await itemsOf(newTable)).toEqual([newer]);
  });

  it('a gone record without expiry expires goneRecordRetentionDays after it became gone, as the deployed onboard function says', async () => {
    await deployOnboardFunction({ ...stack, env: { ...stack.env, GONE_RECORD_RETENTION_DAYS: '30' } });
    await documents.send(new PutCommand({ TableName: oldTable, Item: goneWithoutExpiry }));

    const result = await cli('--account', '123456789012');

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await itemsOf(newTable)).toEqual([
      { ...goneWithoutExpiry, ...hubRecordKey(goneWithoutExpiry.instanceId), expiresAt: Math.floor(Date.parse(goneWithoutExpiry.updatedAt) / 1000) + 30 * day },
    ]);
  });

  it('--account names whose records they are (the key and the attributes)', async () => {
    await documents.send(new PutCommand({ TableName: oldTable, Item: healthy }));
    const result = await cli('--account', '210987654321', '--output', 'json');
    expect(result.code).toBe(0);
    expect(await itemsOf(newTable)).toEqual([{ ...healthy, recordKey: `210987654321:us-east-1:${healthy.instanceId}`, account: '210987654321', region: 'us-east-1' }]);
  });

  it('stops before reading or writing when a table is missing or is not the kind of table named', async () => {
    const noOld = await cli('--from', 'cwap-test-nothing');
    expect(noOld.code).toBe(1);
    expect(noOld.stderr).toMatch(/^cw-autopilot upgrade-state: no table cwap-test-nothing in us-east-1: nothing to upgrade/m);

    const swapped = await cli('--from', newTable, '--to', oldTable);
    expect(swapped.code).toBe(1);
    expect(swapped.stderr).toBe(`cw-autopilot upgrade-state: table ${newTable} is keyed by recordKey, not instanceId: it is not a state table of the single-account version (pass --from naming the old one)\n`);

    const noNew = await cli('--stage', 'prod', '--from', oldTable);
    expect(noNew.code).toBe(1);
    expect(noNew.stderr).toMatch(/^cw-autopilot upgrade-state: no table cwap-prod-records in us-east-1: deploy this version first/m);
    expect(aws.calls().filter((call) => call.service === 'dynamodb' && ['Scan', 'PutItem'].includes(call.operation))).toEqual([]);
  });
});

describe('a check scheduled by the single-account version, after the upgrade', () => {
  it('its input {instanceId, attempt} (no account or region: the hub\'s place) reads the copied record and checks', async () => {
    // The single-account version onboarded this instance: its record is in the old table, and the
    // pending schedule's input is { instanceId, attempt: 1 }.
    const { instanceId } = await launchInstance({ os: 'linux', tags: { Name: 'legacy-web' } });
    aws.ssm.register(instanceId, { platformType: 'Linux' });
    expect(await onboard(stateChangeEvent(instanceId, 'running'), context)).toMatchObject({ action: 'onboard', status: 'checking' });
    const written = await readRecord(clients, stack.settings.stateTable, instanceId);
    if (!written) throw new Error(`no record for ${instanceId}`);
    const { recordKey, account: _account, region: _region, ...asTheOldVersionWroteIt } = written;
    await documents.send(new PutCommand({ TableName: oldTable, Item: asTheOldVersionWroteIt }));
    await documents.send(new DeleteCommand({ TableName: newTable, Key: { recordKey } }));
    const scheduleInput = { instanceId, attempt: 1 };

    // Before the upgrade the check finds no record, and ignores itself.
    expect(await runCheck(parseCheckRequest(scheduleInput), stack.settings)).toMatchObject({ action: 'ignore', reason: 'no onboarding record for this instance: it was never onboarded' });

    expect((await cli()).code).toBe(0);
    const result = await runCheck(parseCheckRequest(scheduleInput), stack.settings);

    // No datapoints yet: the check diagnoses, and schedules its next look, on the copied record.
    expect(result).toMatchObject({ instanceId, action: 'retry', diagnosis: 'no-datapoints', status: 'checking' });
    const checked = await readRecord(clients, stack.settings.stateTable, instanceId);
    expect(checked).toMatchObject({ recordKey, account: '123456789012', region: 'us-east-1', checkAttempts: 1 });
    expect(checked?.version).toBeGreaterThan(written.version);
    expect(checked?.history.slice(0, written.history.length)).toEqual(written.history);
  });
});
