// The checker end to end against moto: the real handlers, the real SDK, moto's state. Scheduler
// never fires in moto, so the test fires each schedule itself, with the input the product stored.
import type { Context } from 'aws-lambda';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CloudWatchClient, DescribeAlarmsCommand, ListTagsForResourceCommand, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { EC2Client, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { GetScheduleCommand, ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { metricsPublishedBy, renderedAgentConfigs, type OsFamily } from '../../shared/agent-config.js';
import { readRecord, type OnboardingRecord } from '../../shared/state/instance-record.js';
import type { Settings } from '../../shared/config/settings.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { launchInstance, stateChangeEvent } from '../harness/fleet.js';
import { deployStack, stackEnvironment, testAccountId, testRegion } from '../harness/stack.js';
import { payloadViolations } from '../harness/payload-schema.js';
import { acceptsMessage, type FilterPolicy } from '../harness/sns-filter-policy.js';
import { readmePolicies } from '../alerts/readme-policies.js';
import { payloadOf, publishedMessages, type PublishedMessage } from '../simulator/moto-state.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();

const aws = useAws();
const stackEnv = stackEnvironment();
const prefix = stackEnv.RESOURCE_PREFIX ?? '';
const topicArn = stackEnv.ALERT_TOPIC_ARN ?? '';

// The functions parse their settings at cold start: the environment is the stack's before import.
Object.assign(process.env, stackEnv, { POWERTOOLS_METRICS_DISABLED: 'true' });
type Handler = (event: unknown, context: Context) => Promise<Record<string, unknown>>;
let onboard: Handler;
let check: Handler;
let offboard: Handler;
let audit: Handler;
let settings: Settings;

const context = { functionName: 'test', awsRequestId: 'req', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;

beforeAll(async () => {
  onboard = (await import('../../functions/onboard.js')).handler as unknown as Handler;
  check = (await import('../../functions/check.js')).handler as unknown as Handler;
  offboard = (await import('../../functions/offboard.js')).handler as unknown as Handler;
  audit = (await import('../../functions/audit.js')).handler as unknown as Handler;
});

beforeEach(async () => {
  const stack = await deployStack();
  expect(stack.alertTopicArn).toBe(topicArn);
  settings = stack.settings;
});

const cloudwatch = () => new CloudWatchClient(localClientConfig());
const scheduler = () => new SchedulerClient(localClientConfig());

/** The agent's side: datapoints on exactly the series the deployed config publishes, {InstanceId} only. */
async function agentPublishes(instanceId: string, os: OsFamily): Promise<string[]> {
  const published = metricsPublishedBy(renderedAgentConfigs(settings.metrics)[os], os);
  const client = cloudwatch();
  // Collected a second ago, as the agent stamps datapoints before it sends them (and moto compares
  // to the second).
  const at = new Date(Math.floor(Date.now() / 1000) * 1000 - 1000);
  for (const metric of published) {
    await client.send(
      new PutMetricDataCommand({
        Namespace: metric.namespace,
        MetricData: [{ MetricName: metric.metricName, Dimensions: [{ Name: 'InstanceId', Value: instanceId }], Timestamp: at, Value: 42, Unit: 'Percent' }],
      }),
    );
  }
  client.destroy();
  return published.map((metric) => metric.metricName);
}

/** Fires the product's pending check schedule for an instance, as Scheduler would, with its stored input. */
async function fireCheck(instanceId: string, attempt: number): Promise<Record<string, unknown>> {
  const client = scheduler();
  const schedule = await client.send(new GetScheduleCommand({ Name: `${prefix}-check-${instanceId}-${attempt}`, GroupName: settings.scheduleGroup }));
  client.destroy();
  expect(schedule.Target?.Arn).toBe(settings.checkFunctionArn);
  expect(schedule.ActionAfterCompletion).toBe('DELETE');
  return check(JSON.parse(schedule.Target?.Input ?? '{}'), context);
}

async function onboarded(os: OsFamily, tags: Record<string, string> = { Name: 'web-1' }): Promise<string> {
  const { instanceId } = await launchInstance({ os, tags });
  aws.ssm.register(instanceId, { platformType: os === 'windows' ? 'Windows' : 'Linux' });
  await new Promise((resolve) => setTimeout(resolve, 2100)); // the agent's datapoints come after the launch
  const result = await onboard(stateChangeEvent(instanceId, 'running'), context);
  expect(result).toMatchObject({ action: 'onboard', status: 'checking' });
  return instanceId;
}

async function record(instanceId: string): Promise<OnboardingRecord> {
  const found = await readRecord(clients, settings.stateTable, instanceId);
  if (!found) throw new Error(`no record for ${instanceId}`);
  return found;
}

async function alarmsOf(instanceId: string) {
  const client = cloudwatch();
  const result = await client.send(new DescribeAlarmsCommand({ AlarmNamePrefix: `${prefix}-${instanceId}-` }));
  client.destroy();
  return result.MetricAlarms ?? [];
}

/** Every message published on the alert topic, read back from moto's state (GET /moto-api/data.json). */
async function alertsSent(): Promise<PublishedMessage[]> {
  return publishedMessages(aws.motoUrl, topicArn);
}

describe('event to healthy', () => {
  it('a Linux instance whose agent publishes MEMORY_USED and DISK_USED is healthy at its first check, with tagged alarms', async () => {
    const instanceId = await onboarded('linux');
    const published = await agentPublishes(instanceId, 'linux');
    expect(published).toEqual(['MEMORY_USED', 'DISK_USED']);

    const result = await fireCheck(instanceId, 1);

    expect(result).toMatchObject({ action: 'healthy', status: 'healthy' });
    const saved = await record(instanceId);
    expect(saved.firstDatapointAt).toBeDefined();
    expect(saved.launchToFirstMetricSeconds).toBeGreaterThanOrEqual(0);
    expect(saved.launchToFirstMetricSeconds).toBeLessThan(60);
    const alarms = await alarmsOf(instanceId);
    expect(alarms.map((alarm) => alarm.AlarmName).sort()).toEqual(
      [`MEMORY_USED-missing`, `MEMORY_USED-high`, `DISK_USED-missing`, `DISK_USED-high`].map((suffix) => `${prefix}-${instanceId}-${suffix}`).sort(),
    );
    const missing = alarms.find((alarm) => alarm.AlarmName?.endsWith('MEMORY_USED-missing'));
    expect(missing).toMatchObject({ TreatMissingData: 'breaching', AlarmActions: [topicArn], Dimensions: [{ Name: 'InstanceId', Value: instanceId }] });
    const client = cloudwatch();
    const tags = await client.send(new ListTagsForResourceCommand({ ResourceARN: missing?.AlarmArn }));
    client.destroy();
    expect(tags.Tags).toContainEqual({ Key: 'cw-autopilot:instance-id', Value: instanceId });
    expect(await alertsSent()).toEqual([]);
  });

  it('a Windows instance is healthy on memory and free disk space, with a low-free-space alarm', async () => {
    const instanceId = await onboarded('windows');
    expect(await agentPublishes(instanceId, 'windows')).toEqual(['MEMORY_USED', 'DISK_FREE']);
    expect(await fireCheck(instanceId, 1)).toMatchObject({ action: 'healthy' });
    const low = (await alarmsOf(instanceId)).find((alarm) => alarm.AlarmName === `${prefix}-${instanceId}-DISK_FREE-low`);
    expect(low).toMatchObject({ ComparisonOperator: 'LessThanThreshold', Threshold: 10 });
  });

  it('datapoints on another dimension set do not count: the checker queries exactly {InstanceId}', async () => {
    const instanceId = await onboarded('linux');
    const client = cloudwatch();
    await client.send(
      new PutMetricDataCommand({
        Namespace: settings.metrics.namespace,
        MetricData: ['MEMORY_USED', 'DISK_USED'].map((name) => ({
          MetricName: name,
          Dimensions: [{ Name: 'InstanceId', Value: instanceId }, { Name: 'path', Value: '/' }],
          Timestamp: new Date(Math.floor(Date.now() / 1000) * 1000 - 1000),
          Value: 1,
        })),
      }),
    );
    client.destroy();
    expect(await fireCheck(instanceId, 1)).toMatchObject({ action: 'retry', diagnosis: 'no-datapoints' });
  });

  it('throttled GetMetricData is retried by the SDK and the check still ends healthy', async () => {
    const instanceId = await onboarded('linux');
    await agentPublishes(instanceId, 'linux');
    let throttled = 0;
    aws.faults.set((service, operation) => (service === 'monitoring' && operation === 'GetMetricData' && throttled++ < 1 ? 'throttle' : undefined));

    expect(await fireCheck(instanceId, 1)).toMatchObject({ action: 'healthy' });
    expect(aws.calls().filter((call) => call.operation === 'GetMetricData').map((call) => call.status)).toEqual([400, 200]);
  });
});

describe('event to alert', () => {
  it('no datapoints: retried with backoff, then one alert with the diagnosis, read back from moto', async () => {
    const instanceId = await onboarded('linux');

    expect(await fireCheck(instanceId, 1)).toMatchObject({ action: 'retry', diagnosis: 'no-datapoints' });
    expect(await fireCheck(instanceId, 2)).toMatchObject({ action: 'retry', diagnosis: 'no-datapoints' });
    expect(await alertsSent()).toEqual([]);
    expect(await fireCheck(instanceId, 3)).toMatchObject({ action: 'alerted', status: 'alerted', diagnosis: 'no-datapoints' });

    const sent = await alertsSent();
    expect(sent).toHaveLength(1);
    expect(sent[0]?.subject).toBe(`[cw-agent-autopilot] web-1 (${instanceId}): metrics missing - no-datapoints`);
    expect(sent[0]?.message).toContain('- checked the metrics 3 time(s)');
    expect(sent[0]?.message).toContain(`on {InstanceId=${instanceId}}`);
    expect(sent[0]?.attributes.severity).toBe('critical');
    expect(sent[0]?.attributes.diagnosis).toBe('no-datapoints');
    expect(sent[0]?.attributes.instanceId).toBe(instanceId);
    const payload = payloadOf(sent[0] as PublishedMessage);
    expect(payloadViolations(payload)).toEqual([]);
    expect(payload).toMatchObject({ event: 'alert', diagnosis: 'no-datapoints', instance: { id: instanceId, name: 'web-1', os: 'linux' }, checks: 3, scheduleNames: [`${prefix}-check-${instanceId}-3`] });

    // Scheduler retries the delivery; a check by hand later: still one alert.
    expect(await check({ instanceId, attempt: 3 }, context)).toMatchObject({ action: 'ignore' });
    expect(await check({ instanceId }, context)).toMatchObject({ action: 'already-alerted' });
    expect(await alertsSent()).toHaveLength(1);

    // The agent starts publishing: one recovery message, and alarms.
    await agentPublishes(instanceId, 'linux');
    expect(await check({ instanceId }, context)).toMatchObject({ action: 'healthy' });
    const after = await alertsSent();
    expect(after).toHaveLength(2);
    expect(after[1]?.subject).toBe(`[cw-agent-autopilot] web-1 (${instanceId}): recovered, metrics arrive`);
    expect(after[1]?.attributes.event).toBe('recovery');
    expect(payloadViolations(payloadOf(after[1] as PublishedMessage))).toEqual([]);
    expect(await alarmsOf(instanceId)).toHaveLength(4);
  });

  it('names in any language: the subject names the instance by id when its Name tag is not ASCII, the body as written', async () => {
    const hangul = await onboarded('linux', { Name: '웹서버-1' });
    const emoji = await onboarded('windows', { Name: 'web 🚀' });
    for (const instanceId of [hangul, emoji]) {
      for (const attempt of [1, 2]) expect(await fireCheck(instanceId, attempt)).toMatchObject({ action: 'retry' });
      expect(await fireCheck(instanceId, 3)).toMatchObject({ action: 'alerted', diagnosis: 'no-datapoints' });
    }

    const sent = await alertsSent();
    expect(sent.map((message) => message.subject)).toEqual([
      `[cw-agent-autopilot] ${hangul}: metrics missing - no-datapoints`,
      `[cw-agent-autopilot] ${emoji}: metrics missing - no-datapoints`,
    ]);
    expect(sent[0]?.message).toContain(`CloudWatch agent metrics are missing for 웹서버-1 (${hangul}).`);
    expect(sent[1]?.message).toContain(`CloudWatch agent metrics are missing for web 🚀 (${emoji}).`);
    expect((await record(hangul)).name).toBe('웹서버-1');
    expect(sent.map((message) => payloadOf(message))).toEqual([
      expect.objectContaining({ instance: expect.objectContaining({ id: hangul, name: '웹서버-1' }) }),
      expect.objectContaining({ instance: expect.objectContaining({ id: emoji, name: 'web 🚀', os: 'windows' }) }),
    ]);
    for (const message of sent) expect(payloadViolations(payloadOf(message))).toEqual([]);

    await agentPublishes(hangul, 'linux');
    expect(await check({ instanceId: hangul }, context)).toMatchObject({ action: 'healthy' });
    const recovery = (await alertsSent())[2];
    expect(recovery?.subject).toBe(`[cw-agent-autopilot] ${hangul}: recovered, metrics arrive`);
    expect(recovery?.message).toContain(`CloudWatch agent metrics now arrive for 웹서버-1 (${hangul}).`);
  });

  it('an install step that keeps failing is re-sent, then alerted naming the step and its error output', async () => {
    const { instanceId } = await launchInstance({ os: 'linux', tags: { Name: 'db-1' } });
    aws.ssm.register(instanceId, { platformType: 'Linux' });
    const failed = { status: 'Failed', step: 'installAgent', output: 'Failed to download AmazonCloudWatchAgent\nnetwork unreachable' } as const;
    aws.commands.setOutcome(instanceId, failed);
    await onboard(stateChangeEvent(instanceId, 'running'), context);

    expect(await fireCheck(instanceId, 1)).toMatchObject({ action: 'retry', diagnosis: 'command-failed' });
    expect(await fireCheck(instanceId, 2)).toMatchObject({ action: 'retry', diagnosis: 'command-failed' });
    expect(await fireCheck(instanceId, 3)).toMatchObject({ action: 'alerted', diagnosis: 'command-failed' });

    expect(aws.commands.sent().filter((command) => command.instanceIds.includes(instanceId))).toHaveLength(3);
    expect((await record(instanceId)).reinstalls).toBe(2);
    const [alert] = await alertsSent();
    expect(alert?.subject).toBe(`[cw-agent-autopilot] db-1 (${instanceId}): metrics missing - command-failed`);
    expect(alert?.message).toContain('Failed at step installAgent');
    expect(alert?.message).toContain('| Failed to download AmazonCloudWatchAgent');
    expect(alert?.message).toContain('--plugin-name installAgent');
  });

  it('an agent role that lost CloudWatchAgentServerPolicy after onboarding alerts at the first check, with no retry scheduled', async () => {
    const { instanceId } = await launchInstance({ os: 'linux', tags: { Name: 'legacy' } });
    aws.ssm.register(instanceId, { platformType: 'Linux' });
    await onboard(stateChangeEvent(instanceId, 'running'), context);
    // Someone replaces the agent role's policies after onboarding.
    const { IAMClient, DetachRolePolicyCommand } = await import('@aws-sdk/client-iam');
    const iam = new IAMClient(localClientConfig());
    await iam.send(new DetachRolePolicyCommand({ RoleName: settings.agentProfileName, PolicyArn: 'arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy' }));
    iam.destroy();

    expect(await fireCheck(instanceId, 1)).toMatchObject({ action: 'alerted', diagnosis: 'role-missing-policies' });
    expect(aws.calls().filter((call) => call.operation === 'CreateSchedule')).toHaveLength(1); // onboarding's check 1 only
    const [alert] = await alertsSent();
    expect(alert?.message).toContain(`aws iam attach-role-policy --role-name ${settings.agentProfileName} --policy-arn arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy`);
  });

  it('an SNS outage does not lose the alert: the record keeps it, the next check sends it', async () => {
    const instanceId = await onboarded('linux');
    await fireCheck(instanceId, 1);
    await fireCheck(instanceId, 2);
    aws.faults.set((service, operation) => (service === 'sns' && operation === 'Publish' ? '5xx' : undefined));

    await expect(fireCheck(instanceId, 3)).rejects.toThrow('alert no-datapoints not sent');
    expect(await record(instanceId)).toMatchObject({ status: 'alerting', diagnosis: { code: 'no-datapoints' }, lastError: expect.stringContaining('alert not sent') });
    expect(await alertsSent()).toEqual([]);

    aws.faults.clear();
    expect(await fireCheck(instanceId, 4)).toMatchObject({ action: 'alerted', status: 'alerted' });
    expect(await alertsSent()).toHaveLength(1);
  });
});

/** Subscribes a new SQS queue to the alert topic, with a filter policy or none; returns its URL. */
async function subscribeQueue(sqs: SQSClient, sns: SNSClient, name: string, policy: FilterPolicy | undefined): Promise<string> {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
  await sns.send(
    new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: Attributes?.QueueArn, Attributes: policy ? { FilterPolicy: JSON.stringify(policy) } : {} }),
  );
  if (!QueueUrl) throw new Error(`no URL for queue ${name}`);
  return QueueUrl;
}

/** What a queue subscribed to the topic received: the SNS envelope of each message, in the order sent. */
async function received(sqs: SQSClient, queueUrl: string): Promise<{ MessageId: string; Message: string; MessageAttributes?: Record<string, { Value: string }> }[]> {
  const bodies: { MessageId: string; Message: string; MessageAttributes?: Record<string, { Value: string }> }[] = [];
  for (;;) {
    const page = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    if (!page.Messages?.length) return bodies;
    bodies.push(...page.Messages.map((message) => JSON.parse(message.Body ?? '{}')));
  }
}

describe('subscribers', () => {
  it('alerts, recoveries and audit summaries reach each SQS subscription as moto applies its filter policy, as the SNS rules predict, with the JSON payload', async () => {
    const sqs = new SQSClient(localClientConfig(aws.motoUrl));
    const sns = new SNSClient(localClientConfig(aws.motoUrl));
    const policies: Record<string, FilterPolicy | undefined> = { unfiltered: undefined, ...readmePolicies };
    const queues = new Map<string, string>();
    for (const [index, [purpose, policy]] of Object.entries(policies).entries()) queues.set(purpose, await subscribeQueue(sqs, sns, `subscriber-${index}`, policy));

    const instanceId = await onboarded('windows', { Name: 'win-1' });
    for (const attempt of [1, 2, 3]) await fireCheck(instanceId, attempt);
    await agentPublishes(instanceId, 'windows');
    expect(await check({ instanceId }, context)).toMatchObject({ action: 'healthy' });
    expect(await audit({ publish: true }, context)).toMatchObject({ publishedMessageId: expect.any(String) });

    const published = await alertsSent();
    expect(published.map((message) => message.attributes.event)).toEqual(['alert', 'recovery', 'audit-summary']);
    for (const message of published) expect(payloadViolations(payloadOf(message))).toEqual([]);
    expect(payloadOf(published[2] as PublishedMessage)).toMatchObject({ event: 'audit-summary', severity: 'info', fleet: { running: 1, healthy: 1 } });

    const order = (messageId: string) => published.findIndex((message) => message.messageId === messageId);
    const eventsBy: Record<string, string[]> = {};
    for (const [purpose, queueUrl] of queues) {
      const bodies = (await received(sqs, queueUrl)).sort((a, b) => order(a.MessageId) - order(b.MessageId));
      // Without raw message delivery the queue gets the SNS envelope: the sqs payload is its Message.
      for (const body of bodies) expect(JSON.parse(body.Message)).toEqual(payloadOf(published[order(body.MessageId)] as PublishedMessage));
      eventsBy[purpose] = bodies.map((body) => body.MessageAttributes?.event?.Value ?? '?');
      const policy = policies[purpose];
      const predicted = published.filter((message) => policy === undefined || acceptsMessage(policy, message.attributes));
      expect(eventsBy[purpose], purpose).toEqual(predicted.map((message) => message.attributes.event));
    }
    expect(eventsBy).toEqual({
      unfiltered: ['alert', 'recovery', 'audit-summary'],
      'alerts for the on-call': ['alert'],
      'everything the product publishes': ['alert', 'recovery', 'audit-summary'],
      'Windows alerts but ssm-offline': ['alert'],
      'audit summaries': ['audit-summary'],
    });
    sqs.destroy();
    sns.destroy();
  });
});

describe('terminated and stopped instances', () => {
  it('terminate: the offboard function removes its alarms and pending schedules and records it gone', async () => {
    const instanceId = await onboarded('linux');
    await fireCheck(instanceId, 1); // no datapoints yet: check 2 is scheduled
    await agentPublishes(instanceId, 'linux');
    await fireCheck(instanceId, 2);
    expect(await alarmsOf(instanceId)).toHaveLength(4);
    // A pending schedule left behind (as when a later check is scheduled):
    const client = scheduler();
    const before = await client.send(new ListSchedulesCommand({ NamePrefix: `${prefix}-check-${instanceId}` }));
    expect(before.Schedules?.length).toBeGreaterThan(0);

    const ec2 = new EC2Client(localClientConfig());
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    ec2.destroy();
    const result = await offboard(stateChangeEvent(instanceId, 'terminated'), context);

    expect(result).toMatchObject({ status: 'gone' });
    expect(result.alarms).toHaveLength(4);
    expect(await alarmsOf(instanceId)).toEqual([]);
    const after = await client.send(new ListSchedulesCommand({ NamePrefix: `${prefix}-check-${instanceId}` }));
    client.destroy();
    expect(after.Schedules ?? []).toEqual([]);
    expect((await record(instanceId)).status).toBe('gone');
    // DynamoDB's TTL reads only a Number attribute holding epoch seconds.
    const dynamodb = new DynamoDBClient(localClientConfig());
    const item = await dynamodb.send(new GetItemCommand({ TableName: settings.stateTable, Key: { recordKey: { S: `123456789012:us-east-1:${instanceId}` } } }));
    dynamodb.destroy();
    const expiresAt = Number(item.Item?.expiresAt?.N);
    expect(expiresAt).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 90 * 86_400 - 600);
    expect(expiresAt).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 90 * 86_400);
    expect(await alertsSent()).toEqual([]);
  });

  it('a check that finds the instance terminated records it gone and cleans up, without an alert', async () => {
    const instanceId = await onboarded('linux');
    const ec2 = new EC2Client(localClientConfig());
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    ec2.destroy();
    expect(await fireCheck(instanceId, 1)).toMatchObject({ action: 'gone', status: 'gone' });
    expect(await alertsSent()).toEqual([]);
  });
});
