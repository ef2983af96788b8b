// A launch burst end to end against moto: the real onboard handler gets a batch of the onboard
// queue as Lambda's SQS event source mapping delivers it (30 running events), with the real SDK,
// moto's EC2, IAM and DynamoDB, and the proxy's Systems Manager. The batch check it schedules is then
// fired, as Scheduler would: its looks, and the full check that reads each instance's invocation of
// the batch's command ids.
import type { Context, SQSEvent } from 'aws-lambda';
import { onboardQueueRecord } from '../harness/queue-records.js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { Pacer } from '../../shared/pacing/pacer.js';
import { replaceContainerPacers } from '../../shared/pacing/batch-pacing.js';
import { GetScheduleCommand, ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { lookPlan } from '../../shared/checking/check-policy.js';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import type { Settings } from '../../shared/config/settings.js';
import { readRecord, type OnboardingRecord } from '../../shared/state/instance-record.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { createWorkloadProfile, launchInstance, stateChangeEvent } from '../harness/fleet.js';
import { agentManagedPolicies, deployStack, stackEnvironment, testAccountId, testRegion } from '../harness/stack.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();
const aws = useAws();
// INSTALL_WINDOW_SECONDS 0: these scenarios are about what one batch does in its own invocation
// (its calls, its records, its check schedule, the pacing's redelivery), so every batch installs
// right away; the install window small batches join instead is test/integration/install-window.test.ts.
const stackEnv: Record<string, string> = { ...stackEnvironment(), INSTALL_WINDOW_SECONDS: '0' };

// The function parses its settings at cold start: the environment is the stack's before import.
Object.assign(process.env, stackEnv, { POWERTOOLS_METRICS_DISABLED: 'true' });
type Handler = (event: unknown, context: Context) => Promise<Record<string, unknown>>;
let onboard: Handler;
let check: Handler;
let settings: Settings;
const context = { functionName: 'test', awsRequestId: 'req', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;

beforeAll(async () => {
  onboard = (await import('../../functions/onboard.js')).handler as unknown as Handler;
  check = (await import('../../functions/check.js')).handler as unknown as Handler;
});

beforeEach(async () => {
  settings = (await deployStack({ env: { INSTALL_WINDOW_SECONDS: '0' } })).settings;
  // One container's pacer at the deployed share: the 30 launches of a batch fit its 50 association
  // tokens. With the deployed PACING_CONCURRENCY (2) a container has 25; the deferral that makes is
  // the scenario of 'the pacing on moto's queue' below and of test/onboarding/onboard-batch.test.ts.
  replaceContainerPacers(() => new Pacer({ share: 0.5, concurrency: 1 }));
});

afterEach(() => replaceContainerPacers());

/** The batch Lambda delivers: one message per running event, bodies as the rule put them on the queue. */
function queueBatch(instanceIds: string[]): SQSEvent {
  const queueArn = `arn:aws:sqs:${testRegion}:${testAccountId}:${stackEnv.RESOURCE_PREFIX}-onboard`;
  return {
    Records: instanceIds.map((instanceId, index) =>
      onboardQueueRecord(stateChangeEvent(instanceId, 'running'), { messageId: `message-${index + 1}`, receiptHandle: `handle-${index + 1}`, queueArn, sentTimestamp: String(Date.now()) }),
    ),
  };
}

async function record(instanceId: string): Promise<OnboardingRecord> {
  const found = await readRecord(clients, settings.stateTable, instanceId);
  if (!found) throw new Error(`no record for ${instanceId}`);
  return found;
}

describe('a batch of 30 launches from the onboard queue', () => {
  it('onboards all of them with a few batched calls, one install command per OS, and each one\'s own record and check', async () => {
    const ec2 = new EC2Client(localClientConfig());
    const iam = new IAMClient(localClientConfig());
    // 20 Linux, 10 Windows; five Linux ones with a workload profile of their own.
    const web = await createWorkloadProfile('web-app', { policies: ['arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess'] });
    const launched: { instanceId: string; os: 'linux' | 'windows'; profiled: boolean }[] = [];
    for (let index = 0; index < 30; index++) {
      const os: 'linux' | 'windows' = index % 3 === 2 ? 'windows' : 'linux';
      const withProfile = os === 'linux' && index % 4 === 0 && launched.filter((i) => i.profiled).length < 5;
      const { instanceId } = await launchInstance({ os, tags: { Name: `burst-${index}` }, ...(withProfile ? { profileName: web.profileName } : {}) });
      aws.ssm.register(instanceId, { platformType: os === 'windows' ? 'Windows' : 'Linux' });
      launched.push({ instanceId, os, profiled: withProfile });
    }
    expect(launched.filter((i) => i.profiled)).toHaveLength(5);
    const before = aws.calls().length;

    const response = await onboard(queueBatch(launched.map((i) => i.instanceId)), context);

    expect(response).toEqual({ batchItemFailures: [] });
    const calls = aws.calls().slice(before);
    const count = (operation: string) => calls.filter((call) => call.operation === operation).length;
    expect(count('DescribeInstances')).toBe(1);
    expect(count('BatchGetItem')).toBe(1);
    expect(count('DescribeInstanceInformation')).toBe(1);
    expect(count('SendCommand')).toBe(2);
    expect(count('AssociateIamInstanceProfile')).toBe(25);
    // No record is read alone; the one GetItem is the association ledger's, read once for the
    // batch's 25 associations (shared/pacing/account-ledger.ts).
    expect(count('GetItem')).toBe(1);
    const commands = aws.commands.sent();
    expect(commands.map((command) => [command.parameters.configParameter, command.instanceIds.length])).toEqual([
      [[settings.configParameter.linux], 20],
      [[settings.configParameter.windows], 10],
    ]);
    for (const { instanceId, os, profiled } of launched) {
      const saved = await record(instanceId);
      const command = commands.find((sent) => sent.instanceIds.includes(instanceId));
      expect(saved, instanceId).toMatchObject({ status: 'checking', os, commandId: command?.commandId });
      // The five share one workload role: the first to look attaches the policies, those after it
      // may find the role already compliant.
      if (profiled) expect(['existing-role-policies-added', 'existing-role-compliant'], instanceId).toContain(saved.profilePath);
      else expect(saved.profilePath, instanceId).toBe('associated-agent-profile');
      expect(saved.history.map((entry) => entry.step)).toEqual(['claimed', `profile:${saved.profilePath}`, 'install-command-sent', 'check-scheduled']);
    }
    // A workload's profile is kept (its instances still have it), and its role got the two policies.
    const profiledRecords = await Promise.all(launched.filter((i) => i.profiled).map((i) => record(i.instanceId)));
    expect(profiledRecords.map((saved) => saved.profileArn)).toEqual(Array(5).fill(web.profileArn));
    expect(profiledRecords.map((saved) => saved.profilePath)).toContain('existing-role-policies-added');
    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: launched.filter((i) => i.profiled).map((i) => i.instanceId) }));
    expect(described.Reservations?.flatMap((r) => r.Instances ?? []).map((instance) => instance.IamInstanceProfile?.Arn)).toEqual(Array(5).fill(web.profileArn));
    const policies = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: web.roleName }));
    expect(policies.AttachedPolicies?.map((policy) => policy.PolicyArn).sort()).toEqual(
      ['arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess', ...agentManagedPolicies].sort(),
    );

    // One check schedule for the batch: its first look, 60 s after the commands, names all 30.
    const scheduler = new SchedulerClient(localClientConfig());
    const checkSchedules = async () => {
      const names = (await scheduler.send(new ListSchedulesCommand({ GroupName: settings.scheduleGroup, NamePrefix: `${settings.resourcePrefix}-check-b` }))).Schedules?.map((schedule) => schedule.Name ?? '') ?? [];
      return Promise.all(names.map(async (name) => ({ name, input: JSON.parse((await scheduler.send(new GetScheduleCommand({ Name: name, GroupName: settings.scheduleGroup }))).Target?.Input ?? '{}') as { instanceIds: string[]; attempt: number; look?: number } })));
    };
    const [first, ...others] = await checkSchedules();
    expect(others).toEqual([]);
    expect(first?.input).toMatchObject({ attempt: 1, look: 1 });
    expect([...(first?.input.instanceIds ?? [])].sort()).toEqual(launched.map((i) => i.instanceId).sort());

    // No agent publishes here. The first look finds nothing and changes nothing: every instance is in the next look.
    const looked = (await check(first?.input, context)) as { results: { instanceId: string; action: string }[] };
    expect(looked.results.map((result) => result.action)).toEqual(Array(30).fill('look'));
    expect((await record(launched[0]!.instanceId)).history.map((entry) => entry.step)).not.toContain('check-retry');
    const second = (await checkSchedules()).find((schedule) => schedule.input.look === 2);
    expect([...(second?.input.instanceIds ?? [])].sort()).toEqual(launched.map((i) => i.instanceId).sort());

    // The look at Linux's first check (300 s) is Linux's full check 1: the checker finds the group's
    // command succeeded on each Linux instance (GetCommandInvocation of the shared command id, for
    // that instance) and retries all of them with one schedule; Windows still only looks.
    const plan = lookPlan(settings);
    const linuxCheck = plan.indexOf(settings.checkDelaySeconds) + 1;
    const full = (await check({ instanceIds: first?.input.instanceIds, attempt: 1, look: linuxCheck }, context)) as { results: { instanceId: string; action: string; diagnosis?: string }[] };
    for (const { instanceId, os } of launched) {
      const result = full.results.find((entry) => entry.instanceId === instanceId);
      if (os === 'windows') {
        expect(result, instanceId).toMatchObject({ action: 'look' });
        continue;
      }
      expect(result, instanceId).toMatchObject({ action: 'retry', diagnosis: 'no-datapoints' });
      const commandId = commands.find((sent) => sent.instanceIds.includes(instanceId))?.commandId;
      expect((await record(instanceId)).diagnosis?.evidence, instanceId).toContain(`install command ${commandId}: Success`);
    }
    const retries = (await checkSchedules()).filter((schedule) => schedule.input.attempt === 2);
    expect(retries.map((schedule) => schedule.input.look)).toEqual([undefined]);
    expect([...(retries[0]?.input.instanceIds ?? [])].sort()).toEqual(launched.filter((i) => i.os === 'linux').map((i) => i.instanceId).sort());
    scheduler.destroy();
    ec2.destroy();
    iam.destroy();
  });

  it('returns only the message of an instance EC2 does not know yet, and a late duplicate batch changes nothing', async () => {
    const launched = [];
    for (let index = 0; index < 3; index++) {
      const { instanceId } = await launchInstance({ os: 'linux' });
      aws.ssm.register(instanceId, { platformType: 'Linux' });
      launched.push(instanceId);
    }
    const unknown = 'i-0fffffffffffffff0';

    const response = await onboard(queueBatch([...launched, unknown]), context);

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'message-4' }] });
    expect(await readRecord(clients, settings.stateTable, unknown)).toBeUndefined();
    for (const instanceId of launched) expect((await record(instanceId)).status).toBe('checking');

    const before = aws.calls().length;
    const late = await onboard(queueBatch(launched), context);
    expect(late).toEqual({ batchItemFailures: [] });
    const after = aws.calls().slice(before).map((call) => call.operation);
    expect(after.sort()).toEqual(['BatchGetItem', 'DescribeInstances']);
    expect(aws.commands.sent()).toHaveLength(1);
  });
});

describe('a message the pacing leaves for later, on a real queue', () => {
  afterEach(() => replaceContainerPacers());

  it('is visible again when its tokens are due, seconds later; an instance that failed keeps the queue\'s 360 s', async () => {
    // The association bucket's half is 2 tokens refilled at 1 a second; an invocation with 20 s
    // left may not wait at all: of 5 new instances 2 start, the other 3 are deferred 1-3 s (plus
    // the 0-2 s shift). The unknown instance fails (EC2 does not know it yet).
    replaceContainerPacers(() => new Pacer({ buckets: { 'ec2:associate-iam-instance-profile': { capacity: 4, refillPerSecond: 2 } } }));
    const sqs = new SQSClient(localClientConfig());
    const { QueueUrl: queueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `${stackEnv.RESOURCE_PREFIX}-onboard`, Attributes: { VisibilityTimeout: '360' } }));
    if (!queueUrl) throw new Error('moto gave the queue no URL');
    const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn ?? '';
    const launched: string[] = [];
    for (let index = 0; index < 5; index++) {
      const { instanceId } = await launchInstance({ os: 'linux' });
      aws.ssm.register(instanceId, { platformType: 'Linux' });
      launched.push(instanceId);
    }
    const unknown = 'i-0fffffffffffffff0';
    for (const instanceId of [...launched, unknown]) await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(stateChangeEvent(instanceId, 'running')) }));
    // What the event source mapping does: receive (the queue's visibility timeout applies), invoke.
    const received: Message[] = [];
    while (received.length < 6) {
      const page = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, MessageSystemAttributeNames: ['ApproximateReceiveCount'] }));
      if (!page.Messages?.length) break;
      received.push(...page.Messages);
    }
    expect(received).toHaveLength(6);
    const event: SQSEvent = {
      Records: received.map((message) => ({
        messageId: message.MessageId ?? '',
        receiptHandle: message.ReceiptHandle ?? '',
        body: message.Body ?? '',
        attributes: { ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1', SentTimestamp: String(Date.now()), SenderId: 'AIDAEVENTS', ApproximateFirstReceiveTimestamp: String(Date.now()) },
        messageAttributes: {},
        md5OfBody: message.MD5OfBody ?? '',
        eventSource: 'aws:sqs',
        eventSourceARN: queueArn,
        awsRegion: testRegion,
      })),
    };
    const instanceOf = new Map(received.map((message) => [message.MessageId ?? '', (JSON.parse(message.Body ?? '{}') as { detail: { 'instance-id': string } }).detail['instance-id']]));
    const before = aws.calls().length;

    const response = (await onboard(event, { ...context, getRemainingTimeInMillis: () => 20_000 } as Context)) as { batchItemFailures: { itemIdentifier: string }[] };

    const returned = response.batchItemFailures.map((failure) => instanceOf.get(failure.itemIdentifier));
    expect(returned.sort()).toEqual([unknown, ...launched.slice(2)].sort());
    const visibilityCalls = aws.calls().slice(before).filter((call) => call.operation === 'ChangeMessageVisibilityBatch');
    expect(visibilityCalls).toHaveLength(1);
    for (const instanceId of launched.slice(0, 2)) expect((await record(instanceId)).status).toBe('checking');

    // Within the estimates (at most 3 s + 2 s, rounded up) the deferred messages are back, for a
    // second delivery; the unknown instance's is not (360 s), nor are the started ones'.
    const back: Message[] = [];
    const deadline = Date.now() + 8_000;
    while (Date.now() < deadline) {
      const page = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60, MessageSystemAttributeNames: ['ApproximateReceiveCount'] }));
      back.push(...(page.Messages ?? []));
    }
    expect(back.map((message) => instanceOf.get(message.MessageId ?? '')).sort()).toEqual(launched.slice(2).sort());
    expect(back.map((message) => message.Attributes?.ApproximateReceiveCount)).toEqual(['2', '2', '2']);
    sqs.destroy();
  }, 60_000);
});
