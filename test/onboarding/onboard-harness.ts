// What the onboard handler tests share: the stack's settings, mocked AWS clients with a happy
// default answer for every call, an in-memory state table that keeps DynamoDB's conditional-write
// rule, and builders for instances, events and AWS errors.
import 'aws-sdk-client-mock-vitest/extend';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, expect, vi } from 'vitest';
import type { Context, EventBridgeEvent } from 'aws-lambda';
import {
  AssociateIamInstanceProfileCommand,
  DescribeInstancesCommand,
  DisassociateIamInstanceProfileCommand,
  EC2Client,
  ReplaceIamInstanceProfileAssociationCommand,
  type Instance,
  type InstanceStateName,
} from '@aws-sdk/client-ec2';
import {
  AttachRolePolicyCommand,
  DeleteInstanceProfileCommand,
  DetachRolePolicyCommand,
  IAMClient,
  RemoveRoleFromInstanceProfileCommand,
} from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { SNSClient } from '@aws-sdk/client-sns';
import { ChangeMessageVisibilityBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand, type BatchGetCommandInput, type GetCommandInput, type PutCommandInput, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import type { OnboardingRecord } from '../../shared/state/instance-record.js';
import type { OnboardingResult } from '../../shared/onboarding/onboarding.js';
import type { QueueBatchResponse } from '../../functions/onboard.js';
import { hubRecordKey } from '../harness/test-clients.js';
import { FakeStateTable } from '../harness/fake-state-table.js';

export const instanceId = 'i-0abc1234def567890';
/** The wall clock of every scenario (only `Date` is faked: backoff sleeps stay real and short). */
export const now = new Date('2025-03-04T10:00:00.000Z');
export const launchTime = new Date('2025-03-04T09:58:30.000Z');
export const agentProfileArn = 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent';

/** The environment the stack gives the onboard function (serverless.yml), with short delays. */
export const stackEnv = {
  AWS_REGION: 'us-east-1',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  RESOURCE_PREFIX: 'cwap-dev',
  STATE_TABLE: 'cwap-dev-records',
  AGENT_PROFILE_NAME: 'cwap-dev-agent',
  AGENT_DOCUMENT_NAME: 'cwap-dev-install-and-configure',
  LINUX_CONFIG_PARAMETER: 'AmazonCloudWatch-cwap-dev-linux',
  WINDOWS_CONFIG_PARAMETER: 'AmazonCloudWatch-cwap-dev-windows',
  OPT_OUT_TAG: 'cw-autopilot:skip=true',
  OPT_IN_TAG: '',
  MODIFY_EXISTING_ROLES: 'true',
  SSM_MAX_ATTEMPTS: '3',
  SSM_RETRY_DELAY_SECONDS: '120',
  CHECK_DELAY_SECONDS: '240',
  WINDOWS_GRACE_SECONDS: '600',
  PROFILE_RETRY_ATTEMPTS: '3',
  PROFILE_RETRY_BASE_DELAY_MS: '1',
  ONBOARD_FUNCTION_ARN: 'arn:aws:lambda:us-east-1:123456789012:function:cwap-dev-onboard',
  CHECK_FUNCTION_ARN: 'arn:aws:lambda:us-east-1:123456789012:function:cwap-dev-check',
  SCHEDULER_ROLE_ARN: 'arn:aws:iam::123456789012:role/cwap-dev-scheduler',
  SCHEDULE_GROUP: 'cwap-dev',
  ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:cwap-dev-alerts',
} as const;

export const ec2 = mockClient(EC2Client);
export const iam = mockClient(IAMClient);
export const ssm = mockClient(SSMClient);
export const scheduler = mockClient(SchedulerClient);
export const dynamodb = mockClient(DynamoDBDocumentClient);
// Never used by onboarding: mocked so that "no AWS call at all" covers every client.
export const rawDynamodb = mockClient(DynamoDBClient);
export const cloudwatch = mockClient(CloudWatchClient);
export const sns = mockClient(SNSClient);
// The onboard queue: a batch gives the messages the pacing left for later a visibility of their own.
export const sqs = mockClient(SQSClient);

const allClients = [ec2, iam, ssm, scheduler, dynamodb, rawDynamodb, cloudwatch, sns, sqs];

/** Number of AWS calls made through any client. */
export function awsCallCount(): number {
  return allClients.reduce((total, client) => total + client.calls().length, 0);
}

/** The state table: one item per instance, written only when the condition DynamoDB would check holds. */
export class StateTable extends FakeStateTable<OnboardingRecord> {
  seed(record: OnboardingRecord): void {
    this.items.set(record.recordKey, structuredClone(record));
  }

  /** The record of an instance of the hub's place (`i-...`), or of a record key (`account:region:i-...`). */
  get(idOrKey: string): OnboardingRecord | undefined {
    return this.item(idOrKey.includes(':') ? idOrKey : hubRecordKey(idOrKey).recordKey);
  }
}

export let table = new StateTable();

/** Every record the handler wrote (PutCommand Items), oldest first. */
export function recordsWritten(): OnboardingRecord[] {
  return dynamodb.commandCalls(PutCommand).map((call) => call.args[0].input.Item as OnboardingRecord);
}

/** The last record the handler wrote; fails the test when nothing was written. */
export function lastRecordWritten(): OnboardingRecord {
  const record = recordsWritten().at(-1);
  if (!record) throw new Error('the handler wrote no record');
  return record;
}

export function steps(record: OnboardingRecord): string[] {
  return record.history.map((entry) => entry.step);
}

/** The input of the one CreateSchedule call, with its Target.Input parsed. */
export function onlySchedule(): { name: string | undefined; expression: string | undefined; targetArn: string | undefined; input: unknown } {
  const calls = scheduler.commandCalls(CreateScheduleCommand);
  expect(calls).toHaveLength(1);
  const input = calls[0]!.args[0].input;
  return {
    name: input.Name,
    expression: input.ScheduleExpression,
    targetArn: input.Target?.Arn,
    input: JSON.parse(input.Target?.Input ?? 'null') as unknown,
  };
}

/** `at(...)` for a moment `seconds` after the scenario's clock. */
export function atSecondsFromNow(seconds: number): string {
  return `at(${new Date(now.getTime() + seconds * 1000).toISOString().slice(0, 19)})`;
}

/** A DescribeInstances entry; running Linux without a profile unless told otherwise. */
export function ec2Instance(
  options: {
    state?: InstanceStateName;
    windows?: boolean;
    profileArn?: string;
    tags?: Record<string, string>;
    launchedAt?: Date;
  } = {},
): Instance {
  return {
    InstanceId: instanceId,
    State: { Name: options.state ?? 'running', Code: 16 },
    LaunchTime: options.launchedAt ?? launchTime,
    Placement: { AvailabilityZone: 'us-east-1a' },
    ...(options.windows ? { Platform: 'windows', PlatformDetails: 'Windows' } : { PlatformDetails: 'Linux/UNIX' }),
    ...(options.profileArn ? { IamInstanceProfile: { Arn: options.profileArn, Id: 'AIPAEXAMPLE' } } : {}),
    Tags: Object.entries({ Name: 'web-1', ...options.tags }).map(([Key, Value]) => ({ Key, Value })),
  } as Instance;
}

export function givenInstance(instance: Instance): void {
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance] }] });
}

/** What Systems Manager answers for the instance; `undefined` = it has never heard of it. */
export function givenSsmPing(pingStatus: 'Online' | 'ConnectionLost' | 'Inactive' | undefined): void {
  ssm.on(DescribeInstanceInformationCommand).resolves({
    InstanceInformationList: pingStatus ? [{ InstanceId: instanceId, PingStatus: pingStatus, PlatformType: 'Linux' }] : [],
  });
}

/** The EventBridge event for the instance entering `running`. */
export function runningEvent(id: string = instanceId): EventBridgeEvent<'EC2 Instance State-change Notification', { 'instance-id': string; state: string }> {
  return {
    id: '7bf73129-1428-4cd3-a780-95db273d1602',
    version: '0',
    account: '123456789012',
    time: now.toISOString(),
    region: 'us-east-1',
    resources: [`arn:aws:ec2:us-east-1:123456789012:instance/${id}`],
    source: 'aws.ec2',
    'detail-type': 'EC2 Instance State-change Notification',
    detail: { 'instance-id': id, state: 'running' },
  };
}

/** The input a scheduled onboarding retry carries. */
export function retryInput(attempt: number): { instanceId: string; attempt: number } {
  return { instanceId, attempt };
}

/** An error as the SDK raises it for an AWS error code. */
export function awsError(name: string, message: string, fault: 'client' | 'server' = 'client'): Error {
  return Object.assign(new Error(message), { name, $fault: fault, $metadata: { httpStatusCode: fault === 'client' ? 400 : 500 } });
}

/** A state record as an earlier invocation left it, for the same launch unless told otherwise. */
export function existingRecord(changes: Partial<OnboardingRecord>): OnboardingRecord {
  return {
    ...hubRecordKey(instanceId),
    instanceId,
    status: 'onboarding',
    version: 3,
    os: 'linux',
    name: 'web-1',
    launchTime: launchTime.toISOString(),
    ssmAttempts: 0,
    checkAttempts: 0,
    createdAt: '2025-03-04T09:59:00.000Z',
    updatedAt: '2025-03-04T09:59:30.000Z',
    history: [{ at: '2025-03-04T09:59:00.000Z', step: 'claimed', detail: 'first time seen' }],
    ...changes,
  };
}

function lambdaContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'cwap-dev-onboard',
    functionVersion: '$LATEST',
    invokedFunctionArn: stackEnv.ONBOARD_FUNCTION_ARN,
    memoryLimitInMB: '256',
    awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
    logGroupName: '/aws/lambda/cwap-dev-onboard',
    logStreamName: '2025/03/04/[$LATEST]abcdef',
    getRemainingTimeInMillis: () => 60_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/**
 * Resets every mock to the happy path (nothing recorded yet, our profile associates, SSM online,
 * the command and the schedule accepted), fixes the clock, and clears the state table.
 */
export function resetAws(): void {
  for (const client of allClients) client.reset();
  table = new StateTable();
  const current = table;
  dynamodb.on(GetCommand).callsFake((input: GetCommandInput) => current.read(input));
  dynamodb.on(PutCommand).callsFake((input: PutCommandInput) => current.write(input));
  dynamodb.on(BatchGetCommand).callsFake((input: BatchGetCommandInput) => current.readMany(input));
  dynamodb.on(UpdateCommand).callsFake((input: UpdateCommandInput) => current.update(input));
  givenInstance(ec2Instance());
  ec2.on(AssociateIamInstanceProfileCommand).resolves({
    IamInstanceProfileAssociation: {
      AssociationId: 'iip-assoc-0123456789abcdef0',
      InstanceId: instanceId,
      State: 'associating',
      IamInstanceProfile: { Arn: agentProfileArn, Id: 'AIPAAGENT' },
    },
  });
  givenSsmPing('Online');
  ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-0001' } });
  scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: 'arn:aws:scheduler:us-east-1:123456789012:schedule/cwap-dev/x' });
  sqs.on(ChangeMessageVisibilityBatchCommand).callsFake((input: { Entries?: { Id?: string }[] }) => ({ Successful: (input.Entries ?? []).map((entry) => ({ Id: entry.Id })), Failed: [] }));
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(now);
}

/** Put back the real clock and environment. */
export function restoreWorld(): void {
  vi.useRealTimers();
  vi.unstubAllEnvs();
}

/** Whatever happened in a scenario, a profile the instance has is never removed or replaced. */
export function expectProfileNeverRemovedOrReplaced(): void {
  expect(ec2).not.toHaveReceivedCommand(DisassociateIamInstanceProfileCommand);
  expect(ec2).not.toHaveReceivedCommand(ReplaceIamInstanceProfileAssociationCommand);
  expect(iam).not.toHaveReceivedCommand(RemoveRoleFromInstanceProfileCommand);
  expect(iam).not.toHaveReceivedCommand(DetachRolePolicyCommand);
  expect(iam).not.toHaveReceivedCommand(DeleteInstanceProfileCommand);
}

/** Nothing about the instance was changed: no profile, no policy, no command, no schedule. */
export function expectInstanceUntouched(): void {
  expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
  expect(iam).not.toHaveReceivedCommand(AttachRolePolicyCommand);
  expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
  expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);
}

/**
 * Imports the real onboard function as a cold start with the stack's settings (plus overrides),
 * and the error classes of that same module graph.
 */
export async function coldStart(overrides: Record<string, string | undefined> = {}) {
  for (const [name, value] of Object.entries({ ...stackEnv, ...overrides })) vi.stubEnv(name, value);
  vi.resetModules();
  const { handler } = await import('../../functions/onboard.js');
  const { InvalidInputError } = await import('../../shared/errors.js');
  const { StaleRecordError } = await import('../../shared/errors.js');
  // The handler's own module instance (after resetModules): its container's pacers.
  const { replaceContainerPacers } = await import('../../shared/pacing/batch-pacing.js');
  return {
    /** Invokes the handler as Lambda would, with one of the direct inputs (an event, a retry, a remediation). */
    invoke: (event: unknown) => handler(event, lambdaContext()) as Promise<OnboardingResult>,
    /** Invokes the handler with a batch of the onboard queue, as Lambda's SQS event source mapping would. */
    invokeBatch: (event: unknown, remainingMs?: () => number) =>
      handler(event, remainingMs ? { ...lambdaContext(), getRemainingTimeInMillis: remainingMs } : lambdaContext()) as Promise<QueueBatchResponse>,
    InvalidInputError,
    StaleRecordError,
    replaceContainerPacers,
  };
}

type ColdStarted = Awaited<ReturnType<typeof coldStart>>;

/**
 * The world of one onboarding test file: before each test the AWS mocks are reset and the handler
 * cold-started with the stack's settings; after it, no test may have removed or replaced a
 * profile, and the clock and environment are put back. Returns the current test's handler;
 * `restart(overrides)` cold-starts it again with other settings. `settings`: the file's own
 * changes to the stack's settings, kept by `restart`.
 */
export function useOnboardScenario(settings: Record<string, string | undefined> = {}): ColdStarted & { restart: (overrides: Record<string, string | undefined>) => Promise<void> } {
  let current: ColdStarted | undefined;
  const started = (): ColdStarted => {
    if (!current) throw new Error('the onboard handler is used outside a test');
    return current;
  };
  beforeEach(async () => {
    resetAws();
    current = await coldStart(settings);
  });
  afterEach(() => {
    expectProfileNeverRemovedOrReplaced();
    restoreWorld();
  });
  return {
    invoke: (event: unknown) => started().invoke(event),
    invokeBatch: (event: unknown, remainingMs?: () => number) => started().invokeBatch(event, remainingMs),
    replaceContainerPacers: (...args: Parameters<ColdStarted['replaceContainerPacers']>) => started().replaceContainerPacers(...args),
    get InvalidInputError() {
      return started().InvalidInputError;
    },
    get StaleRecordError() {
      return started().StaleRecordError;
    },
    restart: async (overrides) => {
      current = await coldStart({ ...settings, ...overrides });
    },
  };
}

