// Launch bursts: the onboard function consumes the onboard queue in batches. The scenarios count
// the calls a batch costs and check that every rule of one instance's onboarding still holds for
// each instance of the batch, and that one instance's failure sends back only its own message.
import { beforeEach, describe, expect, it } from 'vitest';
import { accountBuckets, Pacer, type BucketSize, type BucketName } from '../../shared/pacing/pacer.js';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { AssociateIamInstanceProfileCommand, DescribeInstancesCommand, type DescribeInstancesCommandInput, type Instance } from '@aws-sdk/client-ec2';
import { AttachRolePolicyCommand, GetInstanceProfileCommand, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import {
  DescribeInstanceInformationCommand,
  SendCommandCommand,
  type DescribeInstanceInformationCommandInput,
  type SendCommandCommandInput,
} from '@aws-sdk/client-ssm';
import { CreateScheduleCommand } from '@aws-sdk/client-scheduler';
import { BatchGetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { ChangeMessageVisibilityBatchCommand, type ChangeMessageVisibilityBatchCommandInput } from '@aws-sdk/client-sqs';
import {
  agentProfileArn,
  awsError,
  dynamodb,
  ec2,
  ec2Instance,
  existingRecord,
  iam,
  launchTime,
  now,
  runningEvent,
  scheduler,
  sqs,
  ssm,
  stackEnv,
  steps,
  table,
  useOnboardScenario,
} from './onboard-harness.js';
import { hubRecordKey } from '../harness/test-clients.js';
import { onboardQueueRecord } from '../harness/queue-records.js';

// INSTALL_WINDOW_SECONDS 0: these scenarios are about what one batch does in its own invocation
// (its calls, the per-instance rules, partial batch responses, the pacing and the redelivery of what
// it deferred), so every batch installs right away, as it did before install windows. The window a
// small batch joins instead, and its run, are test/onboarding/install-window.test.ts and
// test/integration/install-window.test.ts.
const onboard = useOnboardScenario({ INSTALL_WINDOW_SECONDS: '0' });

const workloadProfileArn = 'arn:aws:iam::123456789012:instance-profile/web-profile';
const agentPolicies = ['arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy', 'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore'];

/** The n-th instance id of a burst: i-00000000000000001, i-00000000000000002, ... */
const burstId = (n: number) => `i-${n.toString(16).padStart(17, '0')}`;

interface BurstInstance {
  id: string;
  windows?: boolean;
  profileArn?: string;
}

/**
 * EC2 and Systems Manager for a burst: DescribeInstances answers the ids of its `instance-id`
 * filter (200 values at most, as EC2 refuses more), DescribeInstanceInformation those of its
 * `InstanceIds` filter (50 a page), SendCommand up to 50 registered ids with a new command id per
 * call; each instance without a profile gets the agent profile.
 */
function givenBurst(instances: BurstInstance[], options: { offline?: string[] } = {}): Map<string, Instance> {
  const fleet = new Map(instances.map((spec) => [spec.id, { ...ec2Instance({ windows: spec.windows, profileArn: spec.profileArn }), InstanceId: spec.id }]));
  ec2.on(DescribeInstancesCommand).callsFake((input: DescribeInstancesCommandInput) => {
    const values = (input.Filters ?? []).flatMap((filter) => filter.Values ?? []);
    if (values.length > 200) throw awsError('FilterLimitExceeded', 'The maximum number of filter values specified on a single call is 200');
    const ids = input.Filters?.find((filter) => filter.Name === 'instance-id')?.Values ?? [];
    return { Reservations: [{ Instances: ids.flatMap((id) => (fleet.has(id) ? [fleet.get(id) as Instance] : [])) }] };
  });
  ec2.on(AssociateIamInstanceProfileCommand).callsFake((input: { InstanceId: string }) => ({
    IamInstanceProfileAssociation: { InstanceId: input.InstanceId, State: 'associating', IamInstanceProfile: { Arn: agentProfileArn, Id: 'AIPAAGENT' } },
  }));
  const offline = new Set(options.offline ?? []);
  ssm.on(DescribeInstanceInformationCommand).callsFake((input: DescribeInstanceInformationCommandInput) => {
    const ids = input.Filters?.find((filter) => filter.Key === 'InstanceIds')?.Values ?? [];
    if (ids.length > 50 || (input.MaxResults ?? 0) > 50) throw awsError('ValidationException', 'at most 50 instance ids and results a call');
    return {
      InstanceInformationList: ids.filter((id) => fleet.has(id)).map((id) => ({ InstanceId: id, PingStatus: offline.has(id) ? 'ConnectionLost' : 'Online', PlatformType: fleet.get(id)?.Platform ? 'Windows' : 'Linux' })),
    };
  });
  let commands = 0;
  ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => {
    if ((input.InstanceIds?.length ?? 0) > 50) throw awsError('ValidationException', "Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50");
    commands += 1;
    return { Command: { CommandId: `cmd-${commands}` } };
  });
  iam.on(GetInstanceProfileCommand, { InstanceProfileName: 'web-profile' }).resolves({
    InstanceProfile: { Path: '/', InstanceProfileName: 'web-profile', InstanceProfileId: 'AIPAWORKLOAD', Arn: workloadProfileArn, CreateDate: new Date('2024-01-01T00:00:00Z'), Roles: [{ Path: '/', RoleName: 'web-role', RoleId: 'AROAWORKLOAD', Arn: 'arn:aws:iam::123456789012:role/web-role', CreateDate: new Date('2024-01-01T00:00:00Z') }] },
  });
  iam.on(ListAttachedRolePoliciesCommand, { RoleName: 'web-role' }).resolves({ AttachedPolicies: agentPolicies.map((arn) => ({ PolicyArn: arn, PolicyName: arn.split('/').at(-1) })), IsTruncated: false });
  return fleet;
}

/** An SQS message of the onboard queue as Lambda delivers it; the body is what the rule put there. */
function queueMessage(body: unknown, messageId: string, receiveCount = 1): SQSRecord {
  return onboardQueueRecord(body, { messageId, receiveCount, queueArn: 'arn:aws:sqs:us-east-1:123456789012:cwap-dev-onboard' });
}

/** One batch: a running event per id (message id `m-<id>` unless repeated, then `m-<id>-<n>`). */
function runningBatch(ids: string[]): SQSEvent {
  const seen = new Map<string, number>();
  return {
    Records: ids.map((id) => {
      const count = (seen.get(id) ?? 0) + 1;
      seen.set(id, count);
      return queueMessage(runningEvent(id), count === 1 ? `m-${id}` : `m-${id}-${count}`);
    }),
  };
}

const sent = () => ssm.commandCalls(SendCommandCommand).map((call) => call.args[0].input);
const associated = () => ec2.commandCalls(AssociateIamInstanceProfileCommand).map((call) => call.args[0].input.InstanceId);

describe('a burst of 120 launches in one batch', () => {
  // 80 Linux, 40 Windows; every tenth has a workload profile of its own.
  const specs: BurstInstance[] = Array.from({ length: 120 }, (_, index) => ({
    id: burstId(index + 1),
    windows: index % 3 === 2,
    profileArn: index % 10 === 9 ? workloadProfileArn : undefined,
  }));
  const withoutProfile = specs.filter((spec) => !spec.profileArn).map((spec) => spec.id);
  // What these scenarios count is the calls of one batch, not its pacing (the "pacing" scenarios
  // below): an association bucket that holds the whole burst, so all 120 start in this batch.
  beforeEach(() => onboard.replaceContainerPacers(() => new Pacer({ buckets: { 'ec2:associate-iam-instance-profile': { capacity: 1000, refillPerSecond: 1000 } } })));

  it('costs one DescribeInstances, two BatchGetItem, three DescribeInstanceInformation and one SendCommand per OS and 50 instances', async () => {
    givenBurst(specs);

    const response = await onboard.invokeBatch(runningBatch(specs.map((spec) => spec.id)));

    expect(response).toEqual({ batchItemFailures: [] });
    // 200 ids a filter: ceil(120 / 200) = 1; 100 keys a BatchGetItem; 50 ids a DescribeInstanceInformation.
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(1);
    expect(dynamodb.commandCalls(BatchGetCommand)).toHaveLength(2);
    expect(ssm.commandCalls(DescribeInstanceInformationCommand)).toHaveLength(3);
    // 80 Linux: 50 + 30; 40 Windows: one call. Each call is one OS with its config parameter.
    const commands = sent();
    const linux = specs.filter((spec) => !spec.windows).map((spec) => spec.id);
    const windows = specs.filter((spec) => spec.windows).map((spec) => spec.id);
    expect(linux).toHaveLength(80);
    expect(commands.map((command) => [command.Parameters?.configParameter, command.InstanceIds?.length])).toEqual([
      [[stackEnv.LINUX_CONFIG_PARAMETER], 50],
      [[stackEnv.LINUX_CONFIG_PARAMETER], 30],
      [[stackEnv.WINDOWS_CONFIG_PARAMETER], 40],
    ]);
    expect(commands.flatMap((command) => command.InstanceIds).sort()).toEqual([...linux, ...windows].sort());
    expect(commands.every((command) => command.DocumentName === stackEnv.AGENT_DOCUMENT_NAME)).toBe(true);
    // AssociateIamInstanceProfile is per instance by nature: once for each of the 108 without a profile.
    expect(associated().sort()).toEqual([...withoutProfile].sort());
    expect(withoutProfile).toHaveLength(108);
    // One check schedule for the whole batch, Linux and Windows: its first look, 60 s after the commands.
    const schedules = scheduler.commandCalls(CreateScheduleCommand).map((call) => call.args[0].input);
    expect(schedules).toHaveLength(1);
    const input = JSON.parse(schedules[0]?.Target?.Input ?? '{}') as { instanceIds: string[]; attempt: number; look: number };
    expect(input).toMatchObject({ attempt: 1, look: 1 });
    expect([...input.instanceIds].sort()).toEqual(specs.map((spec) => spec.id).sort());
    expect(schedules[0]?.Name).toMatch(/^cwap-dev-check-b[0-9a-f]{10}-1-1$/);
  });

  it('gives every instance its own record with the full trail, the command id of its group, and keeps the workload profiles', async () => {
    givenBurst(specs);

    await onboard.invokeBatch(runningBatch(specs.map((spec) => spec.id)));

    const commandOf = new Map(ssm.commandCalls(SendCommandCommand).flatMap((call, index) => (call.args[0].input.InstanceIds ?? []).map((id) => [id, `cmd-${index + 1}`] as const)));
    for (const spec of specs) {
      const record = table.get(spec.id);
      expect(record, spec.id).toMatchObject({ status: 'checking', os: spec.windows ? 'windows' : 'linux', launchTime: launchTime.toISOString(), commandId: commandOf.get(spec.id), ssmAttempts: 0 });
      expect(record?.profilePath).toBe(spec.profileArn ? 'existing-role-compliant' : 'associated-agent-profile');
      expect(steps(record!)).toEqual(['claimed', `profile:${record?.profilePath}`, 'install-command-sent', 'check-scheduled']);
    }
    expect(iam).not.toHaveReceivedCommand(AttachRolePolicyCommand);
  });
});

describe('partial batch response', () => {
  it('an instance whose profile association fails is the only message returned, with its lastError; its neighbours are onboarded', async () => {
    const ids = [burstId(1), burstId(2), burstId(3)];
    givenBurst(ids.map((id) => ({ id })));
    ec2.on(AssociateIamInstanceProfileCommand, { InstanceId: burstId(2) }).rejects(awsError('InternalError', 'An internal error has occurred', 'server'));

    const response = await onboard.invokeBatch(runningBatch(ids));

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: `m-${burstId(2)}` }] });
    expect(table.get(burstId(2))).toMatchObject({ status: 'error', lastError: 'InternalError: An internal error has occurred' });
    expect(steps(table.get(burstId(2))!)).toEqual(['claimed', 'error']);
    for (const id of [burstId(1), burstId(3)]) expect(table.get(id)?.status).toBe('checking');
    expect(sent().map((command) => command.InstanceIds)).toEqual([[burstId(1), burstId(3)]]);
  });

  it('its message delivered again resumes that instance alone, without a second install for the others', async () => {
    const ids = [burstId(1), burstId(2)];
    givenBurst(ids.map((id) => ({ id })));
    let failed = false;
    ec2.on(AssociateIamInstanceProfileCommand).callsFake((input: { InstanceId: string }) => {
      if (input.InstanceId === burstId(2) && !failed) {
        failed = true;
        throw awsError('InternalError', 'An internal error has occurred', 'server');
      }
      return { IamInstanceProfileAssociation: { InstanceId: input.InstanceId, State: 'associating', IamInstanceProfile: { Arn: agentProfileArn, Id: 'AIPAAGENT' } } };
    });
    const first = await onboard.invokeBatch(runningBatch(ids));
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: `m-${burstId(2)}` }]);

    // SQS delivers the failed message again, alongside a late duplicate of the healthy one.
    const again = await onboard.invokeBatch(runningBatch([burstId(2), burstId(1)]));

    expect(again).toEqual({ batchItemFailures: [] });
    expect(sent().map((command) => command.InstanceIds)).toEqual([[burstId(1)], [burstId(2)]]);
    expect(table.get(burstId(2))?.status).toBe('checking');
    expect(table.get(burstId(2))?.lastError).toBeUndefined();
    expect(steps(table.get(burstId(1))!)).toEqual(['claimed', 'profile:associated-agent-profile', 'install-command-sent', 'check-scheduled']);
  });

  it('an instance EC2 does not know yet (just launched) is returned for another delivery and leaves no record', async () => {
    givenBurst([{ id: burstId(1) }]);

    const response = await onboard.invokeBatch(runningBatch([burstId(1), burstId(9)]));

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: `m-${burstId(9)}` }] });
    expect(table.get(burstId(9))).toBeUndefined();
    expect(table.get(burstId(1))?.status).toBe('checking');
  });

  it('a message whose body is not an onboarding trigger is dropped (it would fail forever), the rest is onboarded', async () => {
    givenBurst([{ id: burstId(1) }]);
    const misspelt = { ...runningEvent(burstId(2)), detail: { 'instance-id': burstId(2), state: 'running', stat: 'x' } };

    const response = await onboard.invokeBatch({
      Records: [queueMessage('not json', 'm-garbage'), queueMessage(misspelt, 'm-misspelt'), ...runningBatch([burstId(1)]).Records],
    });

    expect(response).toEqual({ batchItemFailures: [] });
    expect(table.get(burstId(1))?.status).toBe('checking');
    expect(table.get(burstId(2))).toBeUndefined();
  });

  it('a failed SendCommand returns the messages of that group only, each instance recorded in error', async () => {
    const specs = [{ id: burstId(1) }, { id: burstId(2) }, { id: burstId(3), windows: true }];
    givenBurst(specs);
    ssm.on(SendCommandCommand, { Parameters: { configParameter: [stackEnv.LINUX_CONFIG_PARAMETER] } }).rejects(awsError('InternalServerError', 'try again', 'server'));

    const response = await onboard.invokeBatch(runningBatch(specs.map((spec) => spec.id)));

    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier).sort()).toEqual([`m-${burstId(1)}`, `m-${burstId(2)}`]);
    for (const id of [burstId(1), burstId(2)]) {
      expect(table.get(id)).toMatchObject({ status: 'error', lastError: 'InternalServerError: try again' });
      expect(table.get(id)?.commandId).toBeUndefined();
    }
    expect(table.get(burstId(3))).toMatchObject({ status: 'checking', commandId: 'cmd-1' });
  });
});

describe('every rule of one instance holds in a batch', () => {
  it('a duplicate event in the same batch onboards the instance once: one profile, one install, one claim', async () => {
    givenBurst([{ id: burstId(1) }, { id: burstId(2) }]);

    const response = await onboard.invokeBatch(runningBatch([burstId(1), burstId(2), burstId(1)]));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(associated().sort()).toEqual([burstId(1), burstId(2)]);
    expect(sent().map((command) => command.InstanceIds)).toEqual([[burstId(1), burstId(2)]]);
    expect(steps(table.get(burstId(1))!)).toEqual(['claimed', 'profile:associated-agent-profile', 'install-command-sent', 'check-scheduled']);
    // One check schedule for the two, naming each once.
    expect(scheduler.commandCalls(CreateScheduleCommand).map((call) => JSON.parse(call.args[0].input.Target?.Input ?? '{}').instanceIds)).toEqual([[burstId(1), burstId(2)]]);
  });

  it('a late batch of the same events changes nothing: the facts are read, nothing is written or sent', async () => {
    givenBurst([{ id: burstId(1) }, { id: burstId(2) }]);
    await onboard.invokeBatch(runningBatch([burstId(1), burstId(2)]));
    const writes = dynamodb.commandCalls(PutCommand).length;

    const late = await onboard.invokeBatch(runningBatch([burstId(2), burstId(1)]));

    expect(late).toEqual({ batchItemFailures: [] });
    expect(dynamodb.commandCalls(PutCommand)).toHaveLength(writes);
    expect(sent()).toHaveLength(1);
    expect(associated()).toHaveLength(2);
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
  });

  it('a workload profile whose role lacks the policies is kept and its role gets them; no profile is associated', async () => {
    givenBurst([{ id: burstId(1), profileArn: workloadProfileArn }]);
    iam.on(ListAttachedRolePoliciesCommand, { RoleName: 'web-role' }).resolves({ AttachedPolicies: [], IsTruncated: false });
    iam.on(AttachRolePolicyCommand).resolves({});

    await onboard.invokeBatch(runningBatch([burstId(1)]));

    expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
    expect(iam.commandCalls(AttachRolePolicyCommand).map((call) => call.args[0].input.PolicyArn)).toEqual(agentPolicies);
    expect(table.get(burstId(1))).toMatchObject({ status: 'checking', profilePath: 'existing-role-policies-added', profileArn: workloadProfileArn });
  });

  it('a restarted instance gets a check and no reinstall, beside a new one that is installed', async () => {
    givenBurst([{ id: burstId(1) }, { id: burstId(2) }]);
    table.seed({
      ...existingRecord({ status: 'healthy', commandId: 'cmd-earlier', profilePath: 'associated-agent-profile', launchTime: '2025-03-01T08:00:00.000Z', checkAttempts: 2 }),
      recordKey: `123456789012:us-east-1:${burstId(1)}`,
      instanceId: burstId(1),
    });

    await onboard.invokeBatch(runningBatch([burstId(1), burstId(2)]));

    expect(sent().map((command) => command.InstanceIds)).toEqual([[burstId(2)]]);
    expect(associated()).toEqual([burstId(2)]);
    expect(table.get(burstId(1))).toMatchObject({ status: 'checking', commandId: 'cmd-earlier', checkAttempts: 0 });
    expect(steps(table.get(burstId(1))!).slice(-2)).toEqual(['restarted', 'check-scheduled']);
  });

  it('opt-out and opt-in tags are honoured per instance', async () => {
    givenBurst([{ id: burstId(1) }, { id: burstId(2) }]);
    const tagged = { ...ec2Instance({ tags: { 'cw-autopilot:skip': 'true' } }), InstanceId: burstId(2) };
    const untagged = { ...ec2Instance(), InstanceId: burstId(1) };
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [untagged, tagged] }] });

    await onboard.invokeBatch(runningBatch([burstId(1), burstId(2)]));

    expect(table.get(burstId(2))).toMatchObject({ status: 'skipped', reason: 'opt-out tag cw-autopilot:skip=true is set' });
    expect(associated()).toEqual([burstId(1)]);
    expect(sent().map((command) => command.InstanceIds)).toEqual([[burstId(1)]]);
  });

  it('instances not online in Systems Manager wait together with one retry schedule; the online ones share one command', async () => {
    const ids = [1, 2, 3, 4].map(burstId);
    givenBurst(ids.map((id) => ({ id })), { offline: [burstId(2), burstId(4)] });

    await onboard.invokeBatch(runningBatch(ids));

    expect(sent().map((command) => command.InstanceIds)).toEqual([[burstId(1), burstId(3)]]);
    for (const id of [burstId(2), burstId(4)]) expect(table.get(id)).toMatchObject({ status: 'waiting-for-ssm', ssmAttempts: 1 });
    const retries = scheduler.commandCalls(CreateScheduleCommand).map((call) => call.args[0].input).filter((input) => input.Name?.startsWith('cwap-dev-onboard-'));
    expect(retries.map((input) => input.Name)).toEqual([expect.stringMatching(/^cwap-dev-onboard-b[0-9a-f]{10}-2$/)]);
    const retry = JSON.parse(retries[0]?.Target?.Input ?? 'null') as { instanceIds: string[]; attempt: number };
    expect(retry).toEqual({ instanceIds: [burstId(2), burstId(4)], attempt: 2 });
    expect(table.get(burstId(2))?.history.at(-1)?.detail).toContain(`batch schedule ${retries[0]?.Name}, 2 instance(s)`);

    // The retry is a batch again, once both are online: one command for the two, one first look.
    givenBurst(ids.map((id) => ({ id })));
    scheduler.resetHistory();
    ssm.resetHistory();
    const result = (await onboard.invoke(retry)) as unknown as { results: { instanceId: string; status: string }[] };

    expect(result.results.map((entry) => [entry.instanceId, entry.status])).toEqual([[burstId(2), 'checking'], [burstId(4), 'checking']]);
    expect(sent().map((command) => command.InstanceIds)).toEqual([[burstId(2), burstId(4)]]);
    const looks = scheduler.commandCalls(CreateScheduleCommand).map((call) => JSON.parse(call.args[0].input.Target?.Input ?? '{}'));
    expect(looks).toEqual([{ instanceIds: [burstId(2), burstId(4)], attempt: 1, look: 1 }]);
    // Delivered again (Scheduler or Lambda retrying), the retry is no longer current: nothing more is sent.
    ssm.resetHistory();
    const again = (await onboard.invoke(retry)) as unknown as { results: { action: string }[] };
    expect(again.results.map((entry) => entry.action)).toEqual(['ignore', 'ignore']);
    expect(sent()).toEqual([]);
  });

  it('a batch of retries refuses an input it does not know, naming the key', async () => {
    await expect(onboard.invoke({ instanceIds: [burstId(1)] })).rejects.toThrow(/attempt/);
    await expect(onboard.invoke({ instanceIds: [], attempt: 2 })).rejects.toThrow(/1 to 100/);
    await expect(onboard.invoke({ instanceIds: [burstId(1)], attempt: 2, look: 1 })).rejects.toThrow(/look/);
  });

  it('an instance Systems Manager refuses in a group command (InvalidInstanceId) waits alone; the group is halved, the others installed', async () => {
    const ids = [1, 2, 3, 4].map(burstId);
    givenBurst(ids.map((id) => ({ id })));
    // Halving makes 5 SendCommand for 4 instances: one container's share of the bucket (5 at once),
    // not the 2.5 of each of the deployed two, which would leave the last for a later delivery.
    onboard.replaceContainerPacers(() => new Pacer({ share: 0.5, concurrency: 1 }));
    let commands = 0;
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => {
      if (input.InstanceIds?.includes(burstId(3))) throw awsError('InvalidInstanceId', `Instances [[${burstId(3)}]] not in a valid state`);
      commands += 1;
      return { Command: { CommandId: `cmd-${commands}` } };
    });

    const response = await onboard.invokeBatch(runningBatch(ids));

    expect(response).toEqual({ batchItemFailures: [] });
    // [1,2,3,4] refused; [1,2] sent; [3,4] refused; [3] refused; [4] sent.
    expect(sent().map((command) => command.InstanceIds)).toEqual([ids, [burstId(1), burstId(2)], [burstId(3), burstId(4)], [burstId(3)], [burstId(4)]]);
    expect(table.get(burstId(3))?.status).toBe('waiting-for-ssm');
    expect(table.get(burstId(3))?.commandId).toBeUndefined();
    expect(table.get(burstId(4))).toMatchObject({ status: 'checking', commandId: 'cmd-2' });
  });
});

/**
 * A simulated clock for the pacing scenarios: the container's pacers read it and wait on it, and
 * an invocation's remaining time counts down on it from Lambda's 60 s. The association bucket is
 * paced by the state table's ledger for every container (as deployed), unless `ledgers` is false:
 * then by the container's own pacer, as the buckets outside the ledger are (SendCommand,
 * AttachRolePolicy, CreateSchedule), which the scenarios about that pacer's deferral use.
 */
function simulatedContainer(options: { buckets?: Partial<Record<BucketName, BucketSize>>; ledgers?: boolean } = {}) {
  const time = { now: 0 };
  const pacers: Pacer[] = [];
  onboard.replaceContainerPacers(
    () => {
      const pacer = new Pacer({ clock: () => time.now, buckets: options.buckets });
      pacers.push(pacer);
      return pacer;
    },
    async (ms) => {
      const until = time.now + ms;
      await Promise.resolve();
      time.now = Math.max(time.now, until);
    },
    { ledgers: options.ledgers ?? true },
  );
  const invoke = (event: SQSEvent) => {
    const start = time.now;
    return onboard.invokeBatch(event, () => 60_000 - (time.now - start));
  };
  return { time, pacers, invoke };
}

const idOfMessage = (itemIdentifier: string) => itemIdentifier.replace(/^m-/, '');

describe('pacing of the slow-refill calls', () => {
  it('300 launches in 6 batches of 50 never take more than half the association bucket as a burst plus half its refill; the rest is returned untouched and completes when delivered again', async () => {
    const ids = Array.from({ length: 300 }, (_, index) => burstId(index + 1));
    givenBurst(ids.map((id) => ({ id })));
    const container = simulatedContainer();
    const associatedAt: { id: string; at: number }[] = [];
    ec2.on(AssociateIamInstanceProfileCommand).callsFake((input: { InstanceId: string }) => {
      associatedAt.push({ id: input.InstanceId, at: container.time.now });
      return { IamInstanceProfileAssociation: { InstanceId: input.InstanceId, State: 'associating', IamInstanceProfile: { Arn: agentProfileArn, Id: 'AIPAAGENT' } } };
    });

    // The event source mapping closes a batch every 10 s of the burst.
    let returned: string[] = [];
    for (let batch = 0; batch < 6; batch++) {
      container.time.now = Math.max(container.time.now, batch * 10_000);
      const response = await container.invoke(runningBatch(ids.slice(batch * 50, batch * 50 + 50)));
      returned.push(...response.batchItemFailures.map((failure) => idOfMessage(failure.itemIdentifier)));
    }
    expect(returned.length).toBeGreaterThan(0);
    const associatedFirst = new Set(associatedAt.map((call) => call.id));
    for (const id of returned) {
      expect(associatedFirst.has(id)).toBe(false);
      expect(table.get(id)).toBeUndefined();
    }
    expect(associatedFirst.size + returned.length).toBe(300);
    const sentFirst = new Set(sent().flatMap((command) => command.InstanceIds ?? []));
    for (const id of returned) expect(sentFirst.has(id)).toBe(false);

    // SQS delivers the returned messages again after the queue's visibility timeout (360 s).
    for (let round = 0; returned.length > 0; round++) {
      expect(round).toBeLessThan(20);
      container.time.now += 360_000;
      const again = returned;
      returned = [];
      for (let start = 0; start < again.length; start += 50) {
        const response = await container.invoke(runningBatch(again.slice(start, start + 50)));
        returned.push(...response.batchItemFailures.map((failure) => idOfMessage(failure.itemIdentifier)));
      }
    }

    // share x capacity as a burst plus share x refill per second, over every window of calls.
    const { capacity, refillPerSecond } = accountBuckets['ec2:associate-iam-instance-profile'];
    const times = associatedAt.map((call) => call.at);
    for (let first = 0; first < times.length; first++) {
      for (let last = first; last < times.length; last++) {
        expect(last - first + 1).toBeLessThanOrEqual(0.5 * capacity + 0.5 * refillPerSecond * ((times[last]! - times[first]!) / 1000) + 1e-9);
      }
    }
    expect(associated().sort()).toEqual([...ids].sort());
    for (const id of ids) expect(table.get(id)?.status).toBe('checking');
    expect(new Set(sent().flatMap((command) => command.InstanceIds ?? [])).size).toBe(300);
  });

  it('an instance whose profile is associated but whose command must wait is returned with its record saying so, and resumes at the command when delivered again', async () => {
    const [linux, windows] = [burstId(1), burstId(2)];
    givenBurst([{ id: linux }, { id: windows, windows: true }]);
    // One SendCommand now, the next one in 200 s: more than the batch may wait.
    const container = simulatedContainer({ buckets: { 'ssm:send-command': { capacity: 2, refillPerSecond: 0.01 } } });

    const first = await container.invoke(runningBatch([linux, windows]));

    expect(first.batchItemFailures).toEqual([{ itemIdentifier: `m-${windows}` }]);
    expect(sent().map((command) => command.InstanceIds)).toEqual([[linux]]);
    expect(table.get(windows)).toMatchObject({ status: 'error', profilePath: 'associated-agent-profile', lastError: expect.stringContaining('PacedLaterError') });
    expect(table.get(windows)?.commandId).toBeUndefined();

    container.time.now += 360_000;
    const again = await container.invoke(runningBatch([windows]));

    expect(again).toEqual({ batchItemFailures: [] });
    expect(associated()).toEqual([linux, windows]);
    expect(sent().map((command) => command.InstanceIds)).toEqual([[linux], [windows]]);
    expect(table.get(windows)?.status).toBe('checking');
    expect(table.get(windows)?.lastError).toBeUndefined();
    expect(steps(table.get(windows)!)).toEqual(['claimed', 'profile:associated-agent-profile', 'error', 'claimed', 'install-command-sent', 'check-scheduled']);
  });

  it('a throttle that survived the SDK halves the pacer\'s association rate and returns that instance, its lastError recorded', async () => {
    const ids = [burstId(1), burstId(2), burstId(3)];
    givenBurst(ids.map((id) => ({ id })));
    // The container's own pacer (the buckets outside the ledger yield this way).
    const container = simulatedContainer({ ledgers: false });
    ec2.on(AssociateIamInstanceProfileCommand, { InstanceId: burstId(2) }).rejects(awsError('RequestLimitExceeded', 'Request limit exceeded.', 'server'));

    const response = await container.invoke(runningBatch(ids));

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: `m-${burstId(2)}` }] });
    expect(table.get(burstId(2))).toMatchObject({ status: 'error', lastError: 'RequestLimitExceeded: Request limit exceeded.' });
    const full = accountBuckets['ec2:associate-iam-instance-profile'].refillPerSecond * 0.5;
    expect(container.pacers).toHaveLength(1);
    expect(container.pacers[0]!.rate('ec2:associate-iam-instance-profile')).toBeCloseTo(full / 2);
    for (const id of [burstId(1), burstId(3)]) expect(table.get(id)?.status).toBe('checking');
  });
});

const queueUrl = 'https://sqs.us-east-1.amazonaws.com/123456789012/cwap-dev-onboard';

/** Every ChangeMessageVisibilityBatch entry the handler sent, in order, with its call's queue URL and size. */
function visibilityChanges(): { queueUrl: string | undefined; callSize: number; receiptHandle: string | undefined; seconds: number | undefined }[] {
  return sqs.commandCalls(ChangeMessageVisibilityBatchCommand).flatMap((call) => {
    const input = call.args[0].input;
    return (input.Entries ?? []).map((entry) => ({ queueUrl: input.QueueUrl, callSize: input.Entries?.length ?? 0, receiptHandle: entry.ReceiptHandle, seconds: entry.VisibilityTimeout }));
  });
}

/** A batch of messages delivered once before (the pacing returned them): receive count 2. */
function returningBatch(ids: string[]): SQSEvent {
  return { Records: ids.map((id) => queueMessage(runningEvent(id), `m-${id}`, 2)) };
}

const keptFactsKey = (id: string) => `deferred:123456789012:us-east-1:${id}`;
const keptFactsWritten = () => dynamodb.commandCalls(PutCommand).map((call) => (call.args[0].input.Item as { recordKey: string }).recordKey).filter((key) => key.startsWith('deferred:'));

describe('a deferred instance comes back with what EC2 said of it', () => {
  // The association bucket of 10 tokens refilled at 1 a second: a batch starts a handful.
  const small = { 'ec2:associate-iam-instance-profile': { capacity: 10, refillPerSecond: 1 } };
  const ids = Array.from({ length: 20 }, (_, index) => burstId(index + 1));

  it('keeps the facts of the instances left for later untouched, and their messages coming back ask EC2 nothing', async () => {
    givenBurst(ids.map((id) => ({ id })));
    const container = simulatedContainer({ buckets: small });

    const first = await container.invoke(runningBatch(ids));

    const deferred = first.batchItemFailures.map((failure) => idOfMessage(failure.itemIdentifier));
    expect(deferred.length).toBeGreaterThan(5);
    expect(keptFactsWritten().sort()).toEqual(deferred.map(keptFactsKey).sort());
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(1);

    // Their turn has come: the same per-instance steps, without a DescribeInstances.
    container.time.now += 120_000;
    ec2.resetHistory();
    const again = await container.invoke(returningBatch(deferred));

    expect(ec2.commandCalls(DescribeInstancesCommand)).toEqual([]);
    const started = deferred.filter((id) => !again.batchItemFailures.some((failure) => failure.itemIdentifier === `m-${id}`));
    expect(started.length).toBeGreaterThan(0);
    for (const id of started) {
      expect(table.get(id), id).toMatchObject({ profilePath: 'associated-agent-profile', os: 'linux' });
      expect(steps(table.get(id)!).slice(0, 2), id).toEqual(['claimed', 'profile:associated-agent-profile']);
    }
    // Facts already kept are not written again: they age out from the first sight.
    expect(keptFactsWritten().filter((key) => deferred.map(keptFactsKey).includes(key))).toHaveLength(deferred.length);
  });

  it('asks EC2 about a returning instance whose facts are older than 15 minutes, or that has a record', async () => {
    givenBurst(ids.slice(0, 3).map((id) => ({ id })));
    onboard.replaceContainerPacers(() => new Pacer({ buckets: { 'ec2:associate-iam-instance-profile': { capacity: 1000, refillPerSecond: 1000 } } }));
    const [old, recorded, fresh] = ids as [string, string, string];
    const facts = (id: string, savedAt: Date) =>
      ({ recordKey: keptFactsKey(id), kind: 'deferred-facts', instanceId: id, savedAt: savedAt.toISOString(), facts: { instanceId: id, state: 'running', os: 'linux', name: 'web', tags: {}, profileArn: undefined, launchTime: launchTime.toISOString(), availabilityZone: 'us-east-1a' } }) as never;
    table.seed(facts(old, new Date(now.getTime() - 16 * 60_000)));
    table.seed(facts(recorded, now));
    table.seed(existingRecord({ ...hubRecordKey(recorded), instanceId: recorded, status: 'error', lastError: 'InternalError' }));
    table.seed(facts(fresh, now));

    await onboard.invokeBatch(returningBatch([old, recorded, fresh]));

    expect(ec2.commandCalls(DescribeInstancesCommand).map((call) => (call.args[0].input as DescribeInstancesCommandInput).Filters?.[0]?.Values)).toEqual([[old, recorded]]);
    for (const id of [old, recorded, fresh]) expect(table.get(id)?.status, id).toBe('checking');
  });

  it('a failed read of the kept facts only costs the DescribeInstances', async () => {
    givenBurst(ids.slice(0, 2).map((id) => ({ id })));
    onboard.replaceContainerPacers(() => new Pacer({ buckets: { 'ec2:associate-iam-instance-profile': { capacity: 1000, refillPerSecond: 1000 } } }));
    dynamodb.on(BatchGetCommand).callsFake((input: { RequestItems: Record<string, { Keys: { recordKey: string }[] }> }) => {
      const keys = Object.values(input.RequestItems)[0]?.Keys ?? [];
      if (keys.some((key) => key.recordKey.startsWith('deferred:'))) throw Object.assign(new Error('Throughput exceeds the current capacity'), { name: 'ThrottlingException' });
      return table.readMany(input as never);
    });

    expect(await onboard.invokeBatch(returningBatch(ids.slice(0, 2)))).toEqual({ batchItemFailures: [] });
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(1);
  });
});

describe('a message left for later comes back when its tokens do', () => {
  // The association bucket of 10 tokens refilled at 1 a second: the container's half is 5 tokens
  // at 0.5 a second, so a batch starts 5 at once and one or two more within its 5 s of waiting.
  const small = { 'ec2:associate-iam-instance-profile': { capacity: 10, refillPerSecond: 1 } };
  const ids = Array.from({ length: 26 }, (_, index) => burstId(index + 1));
  /** The messages of a batch's deferred instances: those returned but not failed (no record), in the batch's order. */
  const deferredOf = (response: { batchItemFailures: { itemIdentifier: string }[] }, batchIds: string[], failed: string[] = []) => {
    const returned = new Set(response.batchItemFailures.map((failure) => failure.itemIdentifier));
    return batchIds.filter((id) => !failed.includes(id) && returned.has(`m-${id}`));
  };

  it('the deferred messages get a visibility timeout of their own, 10 a call, the k-th about k tokens away; a failed instance keeps the queue\'s', async () => {
    givenBurst(ids.map((id) => ({ id })));
    // The container's own pacer's estimates (the ledger's reservations: test/aws/account-ledger.test.ts).
    const container = simulatedContainer({ buckets: small, ledgers: false });
    // The third instance's association fails for real: it backs off with the queue's 360 s.
    ec2.on(AssociateIamInstanceProfileCommand, { InstanceId: burstId(3) }).rejects(awsError('InternalError', 'An internal error has occurred', 'server'));

    const response = await container.invoke(runningBatch(ids));

    expect(response.batchItemFailures).toContainEqual({ itemIdentifier: `m-${burstId(3)}` });
    expect(table.get(burstId(3))).toMatchObject({ status: 'error', lastError: 'InternalError: An internal error has occurred' });
    const deferred = deferredOf(response, ids, [burstId(3)]);
    expect(deferred.length).toBeGreaterThanOrEqual(19);
    for (const id of deferred) expect(table.get(id), id).toBeUndefined();
    const changes = visibilityChanges();
    expect(changes.map((change) => change.receiptHandle)).toEqual(deferred.map((id) => `handle-m-${id}`));
    expect(changes.every((change) => change.queueUrl === queueUrl)).toBe(true);
    const sizes = sqs.commandCalls(ChangeMessageVisibilityBatchCommand).map((call) => call.args[0].input.Entries?.length);
    expect(sizes).toEqual([10, 10, deferred.length - 20].filter((size) => size > 0));
    // The container's bucket holds less than a token when the batch stops: the k-th deferred
    // instance needs k tokens at 0.5 a second, 2k seconds less at most 2, shifted by less than
    // 2 s and rounded up.
    changes.forEach((change, index) => {
      const k = index + 1;
      expect(change.seconds, `deferred instance ${k}`).toBeGreaterThanOrEqual(2 * k - 2);
      expect(change.seconds, `deferred instance ${k}`).toBeLessThanOrEqual(2 * k + 2);
    });
    const seconds = changes.map((change) => change.seconds ?? 0);
    expect(seconds).toEqual([...seconds].sort((a, b) => a - b));
    expect(seconds.at(-1)).toBeGreaterThan(seconds[0] ?? Infinity);
  });

  it('a second batch\'s deferred messages come back after the first one\'s, not with them', async () => {
    givenBurst(ids.map((id) => ({ id })));
    // The container's own pacer's promises (the ledger's reservations: test/aws/account-ledger.test.ts).
    const container = simulatedContainer({ buckets: small, ledgers: false });

    await container.invoke(runningBatch(ids.slice(0, 13)));
    const firstEnd = container.time.now;
    const first = visibilityChanges().map((change) => change.seconds ?? 0);
    await container.invoke(runningBatch(ids.slice(13)));
    const secondEnd = container.time.now;
    const second = visibilityChanges().slice(first.length).map((change) => change.seconds ?? 0);

    expect(first.length).toBeGreaterThan(5);
    expect(second.length).toBeGreaterThan(5);
    // In the simulated clock's time: the second batch's first message is due after the first
    // batch's last one (less its shift and rounding, under 3 s), the tokens until then being
    // promised to those.
    const firstLastDue = firstEnd + Math.max(...first) * 1000 - 3000;
    expect(secondEnd + Math.min(...second) * 1000).toBeGreaterThan(firstLastDue);
  });

  it('the deferral of launches that wait for associations does not hold back a launch that needs none', async () => {
    const withProfile = burstId(99);
    givenBurst([...ids.map((id) => ({ id })), { id: withProfile, profileArn: workloadProfileArn }]);
    const container = simulatedContainer({ buckets: small });
    await container.invoke(runningBatch(ids.slice(0, 12)));
    expect(visibilityChanges().length).toBeGreaterThan(0);
    const before = container.time.now;

    const response = await container.invoke(runningBatch([withProfile]));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(table.get(withProfile)?.status).toBe('checking');
    // Its schedule token was there: no wait behind the associations promised to the others.
    expect(container.time.now).toBe(before);
  });

  it('a duplicate message of a deferred instance comes back with it', async () => {
    givenBurst(ids.map((id) => ({ id })));
    const container = simulatedContainer({ buckets: small });

    const response = await container.invoke(runningBatch([...ids.slice(0, 12), burstId(12)]));

    expect(response.batchItemFailures).toContainEqual({ itemIdentifier: `m-${burstId(12)}-2` });
    const handles = new Map(visibilityChanges().map((change) => [change.receiptHandle, change.seconds]));
    expect([...handles.keys()].sort()).toEqual([...deferredOf(response, ids.slice(0, 12)).map((id) => `handle-m-${id}`), `handle-m-${burstId(12)}-2`].sort());
    expect(handles.get(`handle-m-${burstId(12)}-2`)).toBe(handles.get(`handle-m-${burstId(12)}`));
  });

  it('a ChangeMessageVisibilityBatch that fails, in full or for some entries, is ignored: the batch answers as before and nothing else changes', async () => {
    givenBurst(ids.map((id) => ({ id })));
    const container = simulatedContainer({ buckets: small });
    let calls = 0;
    sqs.on(ChangeMessageVisibilityBatchCommand).callsFake((input: ChangeMessageVisibilityBatchCommandInput) => {
      calls += 1;
      if (calls === 1) throw awsError('AccessDenied', 'not authorized to perform sqs:ChangeMessageVisibility');
      const [first, ...rest] = input.Entries ?? [];
      return { Successful: rest.map((entry) => ({ Id: entry.Id })), Failed: [{ Id: first?.Id, Code: 'ReceiptHandleIsInvalid', SenderFault: true, Message: 'gone' }] };
    });

    const response = await container.invoke(runningBatch(ids));

    const deferred = deferredOf(response, ids);
    expect(calls).toBe(Math.ceil(deferred.length / 10));
    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier).sort()).toEqual(deferred.map((id) => `m-${id}`).sort());
    for (const id of ids.filter((id) => !deferred.includes(id))) expect(table.get(id)?.status).toBe('checking');
    for (const id of deferred) expect(table.get(id)).toBeUndefined();
  });

  it('no call is made when nothing was deferred, nor for a message that carries no receipt handle', async () => {
    givenBurst(ids.map((id) => ({ id })));
    const container = simulatedContainer({ buckets: small });

    await container.invoke(runningBatch(ids.slice(0, 5)));
    expect(sqs).not.toHaveReceivedCommand(ChangeMessageVisibilityBatchCommand);

    const handBuilt = runningBatch(ids.slice(5, 15)).Records.map(({ receiptHandle: _handle, ...record }) => record);
    const response = await container.invoke({ Records: handBuilt } as unknown as SQSEvent);
    expect(response.batchItemFailures.length).toBeGreaterThan(0);
    expect(sqs).not.toHaveReceivedCommand(ChangeMessageVisibilityBatchCommand);
  });
});

/**
 * The onboard queue and its event source mapping on the simulated clock: messages become visible,
 * a batch closes when it holds `batchSize` visible messages or `windowMs` after its first one, one
 * invocation at a time (one container), and each returned message is visible again after the
 * visibility timeout the handler gave it (ChangeMessageVisibilityBatch), else after the queue's.
 */
async function runQueue(
  container: ReturnType<typeof simulatedContainer>,
  arrivals: { id: string; at: number }[],
  options: { batchSize?: number; windowMs?: number; queueVisibilityMs?: number; until?: number } = {},
) {
  const { batchSize = 100, windowMs = 10_000, queueVisibilityMs = 360_000, until = 3 * 3600_000 } = options;
  const messages = arrivals.map(({ id, at }) => ({ id, messageId: `m-${id}`, visibleAt: at, receives: 0, done: false }));
  const visibilityOf = new Map<string, number>();
  sqs.on(ChangeMessageVisibilityBatchCommand).callsFake((input: ChangeMessageVisibilityBatchCommandInput) => {
    for (const entry of input.Entries ?? []) visibilityOf.set(entry.ReceiptHandle ?? '', (entry.VisibilityTimeout ?? 0) * 1000);
    return { Successful: (input.Entries ?? []).map((entry) => ({ Id: entry.Id })), Failed: [] };
  });
  let invocations = 0;
  for (;;) {
    const waiting = messages.filter((message) => !message.done).sort((a, b) => a.visibleAt - b.visibleAt);
    if (waiting.length === 0 || container.time.now > until) break;
    const first = waiting[0] as (typeof waiting)[number];
    const full = waiting[batchSize - 1];
    const closesAt = Math.min(first.visibleAt + windowMs, full ? full.visibleAt : Infinity);
    container.time.now = Math.max(container.time.now, closesAt);
    const batch = waiting.filter((message) => message.visibleAt <= container.time.now).slice(0, batchSize);
    const receivedAt = container.time.now;
    const handles = new Map<string, string>();
    const event: SQSEvent = {
      Records: batch.map((message) => {
        message.receives += 1;
        const handle = `handle-${message.messageId}-${message.receives}`;
        handles.set(message.messageId, handle);
        const record = queueMessage(runningEvent(message.id), message.messageId);
        return { ...record, receiptHandle: handle, attributes: { ...record.attributes, ApproximateReceiveCount: String(message.receives) } };
      }),
    };
    invocations += 1;
    const response = await container.invoke(event);
    const endedAt = container.time.now;
    const returned = new Set(response.batchItemFailures.map((failure) => failure.itemIdentifier));
    for (const message of batch) {
      if (!returned.has(message.messageId)) {
        message.done = true;
        continue;
      }
      const changed = visibilityOf.get(handles.get(message.messageId) ?? '');
      message.visibleAt = changed === undefined ? receivedAt + queueVisibilityMs : endedAt + changed;
    }
  }
  return { messages, invocations };
}

describe('a launch burst through the onboard queue', () => {
  // Why the queue's maxReceiveCount is 10 (serverless.yml): every receive counts towards it, a
  // deferral's too. With the pacer's estimates a deferred message comes back when its tokens are
  // there, and the later launches of the burst wait behind it: each message is deferred once.
  it('1,000 launches within a minute: all onboarded within the association bucket\'s share, no message received more than twice, the last within 8 simulated minutes', async () => {
    const ids = Array.from({ length: 1000 }, (_, index) => burstId(index + 1));
    givenBurst(ids.map((id) => ({ id })));
    const container = simulatedContainer();
    const associatedAt: number[] = [];
    ec2.on(AssociateIamInstanceProfileCommand).callsFake((input: { InstanceId: string }) => {
      associatedAt.push(container.time.now);
      return { IamInstanceProfileAssociation: { InstanceId: input.InstanceId, State: 'associating', IamInstanceProfile: { Arn: agentProfileArn, Id: 'AIPAAGENT' } } };
    });

    // One launch every 60 ms; one container (pacingConcurrency 1).
    const { messages } = await runQueue(
      container,
      ids.map((id, index) => ({ id, at: index * 60 })),
    );

    for (const id of ids) expect(table.get(id)?.status, id).toBe('checking');
    expect(associated().sort()).toEqual([...ids].sort());
    expect(Math.max(...messages.map((message) => message.receives))).toBe(2);
    // The association bucket's half (50 tokens, 2.5 a second) bounds the burst at about 380 s.
    expect(container.time.now).toBeLessThan(8 * 60_000);
    const { capacity, refillPerSecond } = accountBuckets['ec2:associate-iam-instance-profile'];
    let worst = 0;
    for (let first = 0; first < associatedAt.length; first++) {
      for (let last = first; last < associatedAt.length; last++) {
        const allowed = 0.5 * capacity + 0.5 * refillPerSecond * (((associatedAt[last] as number) - (associatedAt[first] as number)) / 1000);
        worst = Math.max(worst, last - first + 1 - allowed);
      }
    }
    expect(worst).toBeLessThanOrEqual(1e-9);
  }, 120_000);
});
