import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { upgradedRecord } from '../../cli/upgrade-state-command.js';
import { runCli } from '../harness/cli-run.js';

// DynamoDB throttling that outlasts the SDK's retries cannot be produced by moto: the calls are
// answered by aws-sdk-client-mock, every client the command uses among them.
const dynamodb = mockClient(DynamoDBClient);
const documents = mockClient(DynamoDBDocumentClient);
const lambda = mockClient(LambdaClient);
const sts = mockClient(STSClient);

const place = { account: '123456789012', region: 'eu-west-1' };
const record = (instanceId: string) => ({ instanceId, status: 'healthy', version: 4, ssmAttempts: 1, checkAttempts: 1, createdAt: '2025-11-02T08:00:00.000Z', updatedAt: '2025-11-02T08:06:00.000Z', history: [] });

function awsError(name: string, message: string): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: 400, attempts: 5 } });
}

beforeEach(() => {
  dynamodb.on(DescribeTableCommand, { TableName: 'cwap-prod-state' }).resolves({ Table: { KeySchema: [{ AttributeName: 'instanceId', KeyType: 'HASH' }] } });
  dynamodb.on(DescribeTableCommand, { TableName: 'cwap-prod-records' }).resolves({ Table: { KeySchema: [{ AttributeName: 'recordKey', KeyType: 'HASH' }] } });
  lambda.on(GetFunctionConfigurationCommand).rejects(awsError('ResourceNotFoundException', 'Function not found'));
});
afterEach(() => {
  for (const client of [dynamodb, documents, lambda, sts]) client.reset();
});

describe('cw-autopilot upgrade-state when DynamoDB keeps throttling', () => {
  it('a record whose PutItem is still throttled after the retries is counted failed and named; the others are copied; exit 1, and the old table is not offered for deletion', async () => {
    documents.on(ScanCommand).resolves({ Items: [record('i-0a00000000000000a'), record('i-0b00000000000000b')] });
    documents.on(PutCommand).callsFake((input: { Item: { instanceId: string } }) => {
      if (input.Item.instanceId === 'i-0b00000000000000b') {
        throw awsError('ProvisionedThroughputExceededException', 'The level of configured provisioned throughput for the table was exceeded.');
      }
      return {};
    });

    const result = await runCli(['upgrade-state', '--stage', 'prod', '--region', place.region, '--account', place.account]);

    expect(result.code).toBe(1);
    expect(documents.commandCalls(PutCommand).map((call) => call.args[0].input)).toEqual(
      ['i-0a00000000000000a', 'i-0b00000000000000b'].map((instanceId) => ({
        TableName: 'cwap-prod-records',
        Item: { ...record(instanceId), recordKey: `${place.account}:${place.region}:${instanceId}`, ...place },
        ConditionExpression: 'attribute_not_exists(recordKey)',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      })),
    );
    // A failed write is not a conflict: nothing is read back to classify it.
    expect(documents.commandCalls(GetCommand)).toHaveLength(0);
    const lines = result.stdout.split('\n');
    expect(lines).toContain('  copied                           1');
    expect(lines).toContain('  failed                           1');
    expect(lines).toContain('failed: i-0b00000000000000b: ProvisionedThroughputExceededException: The level of configured provisioned throughput for the table was exceeded.');
    expect(result.stdout).toContain('1 record(s) not copied: run "cw-autopilot upgrade-state --stage prod --region eu-west-1 --account 123456789012" again (it copies only what is missing); the old table is kept.');
    expect(result.stdout).not.toContain('delete-table');
    // --account given: the caller's identity is not asked for.
    expect(sts.calls()).toHaveLength(0);
  });
});

describe('cw-autopilot upgrade-state when the new table has the record already', () => {
  it('a failed conditional put that does not return the record there reads it: the same version and updatedAt is "already copied", another "newer"', async () => {
    documents.on(ScanCommand).resolves({ Items: [record('i-0a00000000000000a'), record('i-0b00000000000000b')] });
    documents.on(PutCommand).rejects(awsError('ConditionalCheckFailedException', 'The conditional request failed'));
    documents.on(GetCommand).callsFake((input: { Key: { recordKey: string } }) => ({
      Item: input.Key.recordKey.endsWith('i-0a00000000000000a') ? { version: 4, updatedAt: '2025-11-02T08:06:00.000Z' } : { version: 1, updatedAt: '2026-02-01T10:00:00.000Z' },
    }));

    const result = await runCli(['upgrade-state', '--stage', 'prod', '--region', place.region, '--account', place.account, '--output', 'json']);

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).counts).toEqual({ copied: 0, 'already-copied': 1, 'skipped-newer': 1, 'skipped-invalid': 0, failed: 0 });
    expect(documents.commandCalls(GetCommand).map((call) => call.args[0].input.Key)).toEqual(
      expect.arrayContaining(['i-0a00000000000000a', 'i-0b00000000000000b'].map((instanceId) => ({ recordKey: `${place.account}:${place.region}:${instanceId}` }))),
    );
  });
});

describe('an item of the old table as a record of the new one', () => {
  const settings = { goneRecordRetentionDays: 90 };

  it.each([
    [{ value: 2 }, 'not a record: no instanceId'],
    [{ instanceId: 'lock', owner: 'ops' }, 'not a record: instanceId "lock" is not an EC2 instance id'],
    [{ instanceId: 'i-0a00000000000000a', version: 1 }, 'not a record: no status'],
    [{ instanceId: 'i-0a00000000000000a', status: 'healthy' }, 'not a record: no version (the optimistic lock every write checks)'],
  ])('%j is not a record: %s', (item, reason) => {
    expect(upgradedRecord(item, place, settings)).toEqual({ invalid: reason });
  });

  it('a gone record without expiresAt expires goneRecordRetentionDays after its updatedAt; one with expiresAt keeps it; others get none', () => {
    const gone = { ...record('i-0a00000000000000a'), status: 'gone' };
    expect(upgradedRecord(gone, place, settings)).toEqual({
      record: { ...gone, recordKey: `123456789012:eu-west-1:i-0a00000000000000a`, ...place, expiresAt: Date.parse(gone.updatedAt) / 1000 + 90 * 86_400 },
      expiryAdded: true,
    });
    expect(upgradedRecord({ ...gone, expiresAt: 1_800_000_000 }, place, settings)).toMatchObject({ record: { expiresAt: 1_800_000_000 }, expiryAdded: false });
    expect(upgradedRecord(record('i-0a00000000000000a'), place, settings)).toMatchObject({ record: { status: 'healthy' }, expiryAdded: false });
    expect('expiresAt' in ((upgradedRecord(record('i-0a00000000000000a'), place, settings) as { record: object }).record)).toBe(false);
  });
});
