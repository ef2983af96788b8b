// What the checker's aws-sdk-client-mock tests share: mocked clients with a default answer for
// every call the checker makes, and an in-memory state table that keeps the conditional-write rule.
import 'aws-sdk-client-mock-vitest/extend';
import { mockClient } from 'aws-sdk-client-mock';
import { CloudWatchClient, DeleteAlarmsCommand, DescribeAlarmsCommand, GetMetricDataCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand, EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { CreateScheduleCommand, DeleteScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { OnboardingRecord } from '../../shared/state/instance-record.js';
import { replaceContainerPacers } from '../../shared/pacing/batch-pacing.js';
import { Pacer } from '../../shared/pacing/pacer.js';
import { instanceId, launchTime, recordOf } from './fixtures.js';

export const ec2 = mockClient(EC2Client);
export const iam = mockClient(IAMClient);
export const ssm = mockClient(SSMClient);
export const cloudwatch = mockClient(CloudWatchClient);
export const sns = mockClient(SNSClient);
export const scheduler = mockClient(SchedulerClient);
export const dynamodb = mockClient(DynamoDBDocumentClient);

/** An AWS SDK error as the SDK throws it: the error code is the name. */
export function awsError(name: string, message = name): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/**
 * The in-memory state table: the one instance's record, with every saved version in order, and
 * the pacing ledger's items (shared/pacing/account-ledger.ts) by key, under the same
 * conditional-write rule.
 */
export const table = { record: undefined as OnboardingRecord | undefined, writes: [] as OnboardingRecord[], ledger: new Map<string, { version: number }>() };

const isLedgerKey = (key: unknown) => typeof key === 'string' && key.startsWith('pacing:');

export function ec2Instance(changes: Partial<Instance> = {}): Instance {
  return {
    InstanceId: instanceId,
    State: { Name: 'running' },
    LaunchTime: new Date(launchTime),
    PlatformDetails: 'Linux/UNIX',
    IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent' },
    Tags: [{ Key: 'Name', Value: 'web-1' }],
    ...changes,
  };
}

export function givenInstance(instance: Instance | undefined): void {
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: instance ? [{ Instances: [instance] }] : [] });
}

/** CloudWatch answers with a datapoint every minute for the given metrics, from `from` to `to`. */
export function givenDatapoints(from: Date, to: Date): void {
  cloudwatch.on(GetMetricDataCommand).callsFake((input: { MetricDataQueries: { Id: string }[] }) => {
    const timestamps: Date[] = [];
    for (let t = from.getTime(); t <= to.getTime(); t += 60_000) timestamps.push(new Date(t));
    return { MetricDataResults: input.MetricDataQueries.map((q) => ({ Id: q.Id, Timestamps: timestamps, Values: timestamps.map(() => 1) })) };
  });
}

export function resetAws(record: Partial<OnboardingRecord> = {}): void {
  for (const client of [ec2, iam, ssm, cloudwatch, sns, scheduler, dynamodb]) client.reset();
  table.record = recordOf(record);
  table.writes = [];
  table.ledger = new Map();
  // PutMetricAlarm calls to spare, so that a check's alarms do not wait out its pacing in real
  // time; the scenarios about that pacing put the deployed figures back.
  replaceContainerPacers(() => new Pacer({ share: 1, buckets: { 'monitoring:put-metric-alarm': { capacity: 10_000, refillPerSecond: 10_000 } } }));
  givenInstance(ec2Instance());
  iam.on(GetInstanceProfileCommand).resolves({
    InstanceProfile: { InstanceProfileName: 'cwap-dev-agent', InstanceProfileId: 'p', Arn: 'a', Path: '/', CreateDate: new Date(), Roles: [{ RoleName: 'cwap-dev-agent', RoleId: 'r', Arn: 'a', Path: '/', CreateDate: new Date() }] },
  });
  iam.on(ListAttachedRolePoliciesCommand).resolves({
    AttachedPolicies: [
      { PolicyName: 'CloudWatchAgentServerPolicy', PolicyArn: 'arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy' },
      { PolicyName: 'AmazonSSMManagedInstanceCore', PolicyArn: 'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore' },
    ],
  });
  ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [{ InstanceId: instanceId, PingStatus: 'Online', AgentVersion: '3.3.40.0' }] });
  ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StatusDetails: 'Success', ResponseCode: 0 });
  ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-2' } });
  cloudwatch.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
  cloudwatch.on(PutMetricAlarmCommand).resolves({});
  cloudwatch.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
  cloudwatch.on(DeleteAlarmsCommand).resolves({});
  sns.on(PublishCommand).resolves({ MessageId: 'msg-1' });
  scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: 'arn:aws:scheduler:::schedule/x' });
  scheduler.on(DeleteScheduleCommand).rejects(awsError('ResourceNotFoundException'));
  dynamodb.on(GetCommand).callsFake((input: { Key: { recordKey: string } }) => {
    if (isLedgerKey(input.Key.recordKey)) return { Item: structuredClone(table.ledger.get(input.Key.recordKey)) };
    return { Item: table.record ? structuredClone(table.record) : undefined };
  });
  dynamodb.on(PutCommand).callsFake((input: { Item: OnboardingRecord; ExpressionAttributeValues?: Record<string, number> }) => {
    const read = input.ExpressionAttributeValues?.[':read'];
    if (isLedgerKey(input.Item.recordKey)) {
      const held = table.ledger.get(input.Item.recordKey);
      if (read === undefined ? held !== undefined : held?.version !== read) throw awsError('ConditionalCheckFailedException');
      table.ledger.set(input.Item.recordKey, structuredClone(input.Item));
      return {};
    }
    const ok = read === undefined ? table.record === undefined : table.record?.version === read;
    if (!ok) throw awsError('ConditionalCheckFailedException');
    table.record = structuredClone(input.Item);
    table.writes.push(table.record);
    return {};
  });
}

/** The record's history step names, in order. */
export function steps(): string[] {
  return table.record?.history.map((entry) => entry.step) ?? [];
}
