// A launch burst end to end against moto: the real onboard handler gets a batch of the onboard
// queue as Lambda's SQS event source mapping delivers it (30 running events), with the real SDK,
// moto's EC2, IAM and DynamoDB, and the proxy's Systems Manager. The batch check it schedules is then
// fired, as Scheduler would: its looks, and the full check that reads each instance's invocation of
// the batch's command ids.
import type { Context, SQSEvent } from 'aws-lambda';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
const stackEnv = stackEnvironment();

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
  settings = (await deployStack()).settings;
});

/** The batch Lambda delivers: one message per running event, bodies as the rule put them on the queue. */
function queueBatch(instanceIds: string[]): SQSEvent {
  return {
    Records: instanceIds.map((instanceId, index) => ({
      messageId: `message-${index + 1}`,
      receiptHandle: `handle-${index + 1}`,
      body: JSON.stringify(stateChangeEvent(instanceId, 'running')),
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()), SenderId: 'AIDAEVENTS', ApproximateFirstReceiveTimestamp: String(Date.now()) },
      messageAttributes: {},
      md5OfBody: '0',
      eventSource: 'aws:sqs',
      eventSourceARN: `arn:aws:sqs:${testRegion}:${testAccountId}:${stackEnv.RESOURCE_PREFIX}-onboard`,
      awsRegion: testRegion,
    })),
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
    expect(count('GetItem')).toBe(0);
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
