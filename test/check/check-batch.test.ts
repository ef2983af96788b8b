// The batch check against aws-sdk-client-mock: the calls it makes for many instances, each
// instance's outcome, the schedules it shares, and the error paths moto cannot produce.
import { beforeEach, describe, expect, it } from 'vitest';
import { DescribeInstancesCommand, type Instance } from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand, DeleteScheduleCommand } from '@aws-sdk/client-scheduler';
import { DeleteAlarmsCommand, DescribeAlarmsCommand, GetMetricDataCommand, PutMetricAlarmCommand, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import { PublishCommand } from '@aws-sdk/client-sns';
import { BatchGetCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { CheckBatchError, runCheckBatch } from '../../shared/checking/check-batch.js';
import { isFullCheck, lookPlan, nextLookDelaySeconds } from '../../shared/checking/check-policy.js';
import { parseSettings } from '../../shared/config/settings.js';
import { batchScheduleName } from '../../shared/aws/schedules.js';
import { parseCheckInput } from '../../shared/input/triggers.js';
import type { OnboardingRecord } from '../../shared/state/instance-record.js';
import { hubRecordKey, testClients } from '../harness/test-clients.js';
import { Pacer } from '../../shared/pacing/pacer.js';
import { replaceContainerPacers, type BatchPacing } from '../../shared/pacing/batch-pacing.js';
import { instanceAlarms } from '../../shared/checking/instance-alarms.js';
import { cloudwatch, dynamodb, ec2, iam, scheduler, sns, ssm, stackEnv, StateTable } from '../onboarding/onboard-harness.js';

// The deployed defaults of the delays (serverless.yml): first check 300 s, +300 s on Windows, retries 300 s.
const settings = parseSettings({ ...stackEnv, CHECK_DELAY_SECONDS: '300', WINDOWS_GRACE_SECONDS: '300', CHECK_RETRY_DELAY_SECONDS: '300' });
const now = new Date('2025-03-04T10:10:00.000Z');
const launch = new Date('2025-03-04T10:00:00.000Z');
const sentAt = new Date('2025-03-04T10:01:00.000Z');
const id = (n: number) => `i-0b${String(n).padStart(15, '0')}`;
let table: StateTable;
/** Instance id -> the minute timestamps CloudWatch holds for both of its metrics. */
let datapoints: Map<string, Date[]>;
let instances: Map<string, Instance>;

function given(n: number, changes: { os?: 'linux' | 'windows'; state?: string; launchTime?: Date; record?: Partial<OnboardingRecord>; datapoints?: Date[] } = {}): string {
  const instanceId = id(n);
  const os = changes.os ?? 'linux';
  instances.set(instanceId, {
    InstanceId: instanceId,
    State: { Name: (changes.state ?? 'running') as 'running' },
    LaunchTime: changes.launchTime ?? launch,
    PlatformDetails: os === 'windows' ? 'Windows' : 'Linux/UNIX',
    Platform: os === 'windows' ? 'Windows' : undefined,
    IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent' },
    Tags: [{ Key: 'Name', Value: `web-${n}` }],
  });
  table.seed({
    ...hubRecordKey(instanceId),
    instanceId,
    status: 'checking',
    version: 3,
    os,
    name: `web-${n}`,
    launchTime: (changes.launchTime ?? launch).toISOString(),
    profilePath: 'associated-agent-profile',
    profileArn: 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent',
    commandId: 'cmd-1',
    commandSentAt: sentAt.toISOString(),
    ssmAttempts: 0,
    checkAttempts: 0,
    createdAt: launch.toISOString(),
    updatedAt: sentAt.toISOString(),
    history: [],
    ...changes.record,
  });
  if (changes.datapoints) datapoints.set(instanceId, changes.datapoints);
  return instanceId;
}

const minutes = (from: Date, count: number) => Array.from({ length: count }, (_, i) => new Date(from.getTime() + i * 60_000));
const schedules = () => scheduler.commandCalls(CreateScheduleCommand).map((call) => ({ name: call.args[0].input.Name, at: call.args[0].input.ScheduleExpression, input: JSON.parse(call.args[0].input.Target?.Input ?? '{}') as Record<string, unknown> }));
const written = (instanceId: string) => dynamodb.commandCalls(PutCommand).filter((call) => (call.args[0].input.Item as OnboardingRecord).instanceId === instanceId);

beforeEach(() => {
  // Every scenario but the pacing one has PutMetricAlarm tokens to spare.
  replaceContainerPacers(() => new Pacer({ share: 1, buckets: { 'monitoring:put-metric-alarm': { capacity: 10_000, refillPerSecond: 10_000 } } }));
  for (const client of [ec2, iam, ssm, scheduler, dynamodb, cloudwatch, sns]) client.reset();
  table = new StateTable();
  datapoints = new Map();
  instances = new Map();
  ec2.on(DescribeInstancesCommand).callsFake((input: { Filters?: { Name: string; Values: string[] }[] }) => {
    const ids = input.Filters?.find((filter) => filter.Name === 'instance-id')?.Values ?? [];
    return { Reservations: [{ Instances: ids.flatMap((instanceId) => (instances.has(instanceId) ? [instances.get(instanceId) as Instance] : [])) }] };
  });
  dynamodb.on(GetCommand).callsFake((input) => table.read(input));
  dynamodb.on(BatchGetCommand).callsFake((input) => table.readMany(input));
  dynamodb.on(PutCommand).callsFake((input) => table.write(input));
  cloudwatch.on(GetMetricDataCommand).callsFake((input: { MetricDataQueries: MetricDataQuery[]; StartTime: Date }) => {
    if (input.MetricDataQueries.length > 500) throw Object.assign(new Error('at most 500 queries'), { name: 'ValidationException' });
    return {
      MetricDataResults: input.MetricDataQueries.map((query) => {
        const instanceId = query.MetricStat?.Metric?.Dimensions?.[0]?.Value ?? '';
        const seen = (datapoints.get(instanceId) ?? []).filter((t) => t >= input.StartTime && t <= now);
        return { Id: query.Id, Timestamps: seen, Values: seen.map(() => 1) };
      }),
    };
  });
  cloudwatch.on(PutMetricAlarmCommand).resolves({});
  cloudwatch.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
  cloudwatch.on(DeleteAlarmsCommand).resolves({});
  iam.on(GetInstanceProfileCommand).resolves({ InstanceProfile: { InstanceProfileName: 'cwap-dev-agent', InstanceProfileId: 'p', Arn: 'a', Path: '/', CreateDate: now, Roles: [{ RoleName: 'cwap-dev-agent', RoleId: 'r', Arn: 'a', Path: '/', CreateDate: now }] } });
  iam.on(ListAttachedRolePoliciesCommand).resolves({
    AttachedPolicies: [
      { PolicyName: 'CloudWatchAgentServerPolicy', PolicyArn: 'arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy' },
      { PolicyName: 'AmazonSSMManagedInstanceCore', PolicyArn: 'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore' },
    ],
  });
  ssm.on(DescribeInstanceInformationCommand).callsFake((input: { Filters?: { Key: string; Values: string[] }[] }) => ({
    InstanceInformationList: (input.Filters?.[0]?.Values ?? []).map((instanceId) => ({ InstanceId: instanceId, PingStatus: 'Online', AgentVersion: '3.3.40.0' })),
  }));
  ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StatusDetails: 'Success', ResponseCode: 0 });
  scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: 'arn:aws:scheduler:::schedule/x' });
  scheduler.on(DeleteScheduleCommand).rejects(Object.assign(new Error('gone'), { name: 'ResourceNotFoundException' }));
  sns.on(PublishCommand).resolves({ MessageId: 'msg-1' });
});

describe('the look plan', () => {
  it('looks early over the agent start-up ranges of the register (H2), then at each OS first check', () => {
    expect(lookPlan(settings)).toEqual([60, 90, 120, 180, 240, 300, 420, 600]);
    expect(lookPlan({ checkDelaySeconds: 120, windowsGraceSeconds: 60 })).toEqual([60, 90, 120, 180]);
    expect([1, 5, 6, 7, 8].map((look) => isFullCheck(look, 'linux', settings))).toEqual([false, false, true, true, true]);
    expect([1, 6, 7, 8, 9].map((look) => isFullCheck(look, 'windows', settings))).toEqual([false, false, false, true, true]);
    expect([1, 4, 7, 8].map((look) => nextLookDelaySeconds(look, settings))).toEqual([30, 60, 180, undefined]);
  });

  it('names a batch schedule by its instance set, attempt and look, whatever their order, within 64 characters', () => {
    const hub = testClients();
    const a = batchScheduleName(hub, settings, [id(1), id(2)], 1, 1);
    expect(a).toMatch(/^cwap-dev-check-b[0-9a-f]{10}-1-1$/);
    expect(batchScheduleName(hub, settings, [id(2), id(1)], 1, 1)).toBe(a);
    expect(batchScheduleName(hub, settings, [id(1), id(3)], 1, 1)).not.toBe(a);
    expect(batchScheduleName(hub, settings, [id(1), id(2)], 2, undefined)).toMatch(/-2$/);
    const member = { place: { account: '210987654321', region: 'ap-southeast-2' }, hubPlace: hub.hubPlace };
    const name = batchScheduleName(member, { resourcePrefix: 'cwap-production' }, [id(1)], 12, 8);
    expect(name).toMatch(/^cwap-production-check-210987654321-apse2-b[0-9a-f]{10}-12-8$/);
    expect(name.length).toBeLessThanOrEqual(64);
  });

  it('reads a batch input, refusing what it does not know, naming the key', () => {
    expect(parseCheckInput({ instanceIds: [id(1), id(1), id(2)], attempt: 1, look: 2 })).toEqual({ kind: 'batch', request: { instanceIds: [id(1), id(2)], attempt: 1, look: 2, place: undefined } });
    expect(parseCheckInput({ instanceId: id(1) })).toMatchObject({ kind: 'one', request: { instanceId: id(1) } });
    expect(() => parseCheckInput({ instanceIds: [], attempt: 1 })).toThrow(/instanceIds.*1 to 250/);
    expect(() => parseCheckInput({ instanceIds: Array.from({ length: 251 }, (_, i) => id(i)), attempt: 1 })).toThrow(/1 to 250/);
    expect(() => parseCheckInput({ instanceIds: [id(1)] })).toThrow(/attempt/);
    expect(() => parseCheckInput({ instanceIds: [id(1)], attempt: 1, look: 0 })).toThrow(/look/);
    expect(() => parseCheckInput({ instanceIds: ['web-1'], attempt: 1 })).toThrow(/not an EC2 instance id/);
    expect(() => parseCheckInput({ instanceIds: [id(1)], attempt: 1, account: '210987654321' })).toThrow(/both account and region/);
    expect(() => parseCheckInput({ instanceIds: [id(1)], attempt: 1, lookk: 2 })).toThrow(/lookk/);
  });
});

describe('a batch check', () => {
  it('an early look costs one BatchGetItem and one GetMetricData for the batch and no DescribeInstances, records the healthy and carries the rest to one next look', async () => {
    const healthy = given(1, { datapoints: minutes(new Date('2025-03-04T10:02:00.000Z'), 8) });
    const waiting = [given(2), given(3, { os: 'windows' }), given(4)];

    const result = await runCheckBatch({ instanceIds: [healthy, ...waiting], attempt: 1, look: 1 }, settings, now);

    expect(result.results.map((entry) => [entry.instanceId, entry.action])).toEqual([[healthy, 'healthy'], ...waiting.map((instanceId) => [instanceId, 'look'])]);
    // The records say which launch each check is about: EC2 is not asked.
    expect(ec2.commandCalls(DescribeInstancesCommand)).toEqual([]);
    expect(dynamodb.commandCalls(BatchGetCommand)).toHaveLength(1);
    expect(cloudwatch.commandCalls(GetMetricDataCommand)).toHaveLength(1);
    expect(table.get(healthy)).toMatchObject({ status: 'healthy', checkAttempts: 1, firstDatapointAt: '2025-03-04T10:02:00.000Z' });
    // A look that finds nothing writes nothing, sends nothing, diagnoses nothing.
    for (const instanceId of waiting) expect(written(instanceId)).toEqual([]);
    expect(ssm.commandCalls(GetCommandInvocationCommand)).toEqual([]);
    expect(schedules()).toEqual([{ name: batchScheduleName(testClients(), settings, waiting, 1, 2), at: 'at(2025-03-04T10:10:30)', input: { instanceIds: waiting, attempt: 1, look: 2 } }]);
  });

  it("the look at Linux's first check is its full check 1, with one schedule for the retries due together; Windows only looks", async () => {
    const linux = [given(1), given(2), given(3)];
    const windows = given(4, { os: 'windows' });
    const look = lookPlan(settings).indexOf(300) + 1;

    const result = await runCheckBatch({ instanceIds: [...linux, windows], attempt: 1, look }, settings, now);

    expect(result.results.map((entry) => entry.action)).toEqual(['retry', 'retry', 'retry', 'look']);
    expect(result.results[0]).toMatchObject({ diagnosis: 'no-datapoints' });
    // The install command's two steps, for each Linux instance.
    expect(ssm.commandCalls(GetCommandInvocationCommand).map((call) => call.args[0].input.InstanceId).sort()).toEqual([...linux, ...linux].sort());
    const retryName = batchScheduleName(testClients(), settings, linux, 2, undefined);
    expect(schedules()).toEqual([
      { name: retryName, at: 'at(2025-03-04T10:15:00)', input: { instanceIds: linux, attempt: 2 } },
      { name: batchScheduleName(testClients(), settings, [windows], 1, look + 1), at: 'at(2025-03-04T10:12:00)', input: { instanceIds: [windows], attempt: 1, look: look + 1 } },
    ]);
    for (const instanceId of linux) {
      const saved = table.get(instanceId);
      expect(saved).toMatchObject({ status: 'checking', checkAttempts: 1, diagnosis: { code: 'no-datapoints' } });
      expect(saved?.history.at(-1)?.detail).toContain(`check 2 scheduled for 2025-03-04T10:15:00.000Z (schedule ${retryName}, 3 instance(s))`);
    }
    expect(written(windows)).toEqual([]);
  });

  it('the last check alerts once per instance, naming the batch schedule', async () => {
    const ids = [given(1, { record: { checkAttempts: 2 } }), given(2, { record: { checkAttempts: 2 } })];

    const result = await runCheckBatch({ instanceIds: ids, attempt: 3, look: undefined }, settings, now);

    expect(result.results.map((entry) => entry.action)).toEqual(['alerted', 'alerted']);
    expect(sns.commandCalls(PublishCommand)).toHaveLength(2);
    expect(sns.commandCalls(PublishCommand).map((call) => call.args[0].input.Message).join('\n')).toContain(batchScheduleName(testClients(), settings, ids, 3, undefined));
    expect(schedules()).toEqual([]);
    // The same schedule delivered again (Lambda's retry, a duplicate) finds nothing current: no second alert.
    const again = await runCheckBatch({ instanceIds: ids, attempt: 3, look: undefined }, settings, now);
    expect(again.results.map((entry) => entry.action)).toEqual(['ignore', 'ignore']);
    expect(sns.commandCalls(PublishCommand)).toHaveLength(2);
  });

  it('ignores checks that are not current; a full check asks EC2 about the instances whose metrics are missing, and records stopped and terminated ones, all in the same batch', async () => {
    const done = given(1, { record: { status: 'healthy', checkAttempts: 1 } });
    const stopped = given(2, { state: 'stopped' });
    const terminated = given(3);
    instances.delete(terminated);
    const healthy = given(4, { datapoints: minutes(new Date('2025-03-04T10:02:00.000Z'), 8) });

    // An early look does not ask EC2: the two without metrics (their stop and termination events
    // not recorded yet) are looked at again.
    const early = await runCheckBatch({ instanceIds: [done, stopped, terminated], attempt: 1, look: 1 }, settings, now);
    expect(early.results.map((entry) => [entry.instanceId, entry.action])).toEqual([[done, 'ignore'], [stopped, 'look'], [terminated, 'look']]);
    expect(ec2.commandCalls(DescribeInstancesCommand)).toEqual([]);
    expect(written(stopped)).toEqual([]);

    scheduler.resetHistory();
    const result = await runCheckBatch({ instanceIds: [done, stopped, terminated, healthy], attempt: 1, look: undefined }, settings, now);

    expect(result.results.map((entry) => [entry.instanceId, entry.action])).toEqual([[done, 'ignore'], [stopped, 'stopped'], [terminated, 'gone'], [healthy, 'healthy']]);
    expect(cloudwatch.commandCalls(GetMetricDataCommand)).toHaveLength(2);
    // One DescribeInstances, for the two whose metrics are missing only.
    expect(ec2.commandCalls(DescribeInstancesCommand).map((call) => call.args[0].input.Filters?.[0])).toEqual([{ Name: 'instance-id', Values: [stopped, terminated] }]);
    expect(table.get(stopped)?.status).toBe('stopped');
    expect(table.get(terminated)?.status).toBe('gone');
    expect(schedules()).toEqual([]);
  });

  it('asks EC2 at once about a record that does not say which launch it is about (an older record)', async () => {
    const older = given(1, { record: { launchTime: undefined }, datapoints: minutes(new Date('2025-03-04T10:02:00.000Z'), 8) });
    const gone = given(2, { record: { os: undefined } });
    instances.delete(gone);
    const recorded = given(3);

    const result = await runCheckBatch({ instanceIds: [older, gone, recorded], attempt: 1, look: 1 }, settings, now);

    expect(result.results.map((entry) => [entry.instanceId, entry.action])).toEqual([[older, 'healthy'], [gone, 'gone'], [recorded, 'look']]);
    expect(ec2.commandCalls(DescribeInstancesCommand).map((call) => call.args[0].input.Filters?.[0])).toEqual([{ Name: 'instance-id', Values: [older, gone] }]);
    expect(table.get(older)?.status).toBe('healthy');
  });

  it("counts only each instance's own launch: a restart in the batch ignores the datapoints of the launch before", async () => {
    const first = given(1, { datapoints: minutes(new Date('2025-03-04T10:02:00.000Z'), 8) });
    // Restarted at 10:07:30; its datapoints stopped at 10:05 with the old launch.
    const restarted = given(2, { launchTime: new Date('2025-03-04T10:07:30.000Z'), datapoints: minutes(new Date('2025-03-04T10:02:00.000Z'), 4) });

    const result = await runCheckBatch({ instanceIds: [first, restarted], attempt: 1, look: 1 }, settings, now);

    expect(result.results.map((entry) => entry.action)).toEqual(['healthy', 'look']);
    expect(cloudwatch.commandCalls(GetMetricDataCommand)).toHaveLength(1);
    expect(cloudwatch.commandCalls(GetMetricDataCommand)[0]?.args[0].input.StartTime).toEqual(launch);
  });

  it('250 instances are one GetMetricData call of 500 queries', async () => {
    const ids = Array.from({ length: 250 }, (_, i) => given(i + 1, { os: i % 5 === 0 ? 'windows' : 'linux' }));

    await runCheckBatch({ instanceIds: ids, attempt: 1, look: 1 }, settings, now);

    expect(cloudwatch.commandCalls(GetMetricDataCommand).map((call) => call.args[0].input.MetricDataQueries?.length)).toEqual([500]);
    expect(ec2.commandCalls(DescribeInstancesCommand)).toEqual([]);
    expect(dynamodb.commandCalls(BatchGetCommand)).toHaveLength(3);
    expect(schedules()).toHaveLength(1);

    // Their full check, all of them missing: EC2 asked for 200 ids a call.
    await runCheckBatch({ instanceIds: ids, attempt: 1, look: undefined }, settings, now);
    expect(ec2.commandCalls(DescribeInstancesCommand).map((call) => call.args[0].input.Filters?.[0]?.Values?.length)).toEqual([200, 50]);
  });

  it('a next look that cannot be scheduled fails the invocation after the rest is done, naming the instances', async () => {
    const healthy = given(1, { datapoints: minutes(new Date('2025-03-04T10:02:00.000Z'), 8) });
    const waiting = given(2);
    scheduler.on(CreateScheduleCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));

    const run = runCheckBatch({ instanceIds: [healthy, waiting], attempt: 1, look: 1 }, settings, now);

    await expect(run).rejects.toBeInstanceOf(CheckBatchError);
    await expect(run).rejects.toThrow(new RegExp(`${waiting}: next look not scheduled: ThrottlingException`));
    expect(table.get(healthy)?.status).toBe('healthy');
    // The waiting one is unchanged, so Lambda's retry of the invocation looks at it again; the healthy one is no longer current.
    expect(written(waiting)).toEqual([]);
    scheduler.on(CreateScheduleCommand).resolves({});
    const retried = await runCheckBatch({ instanceIds: [healthy, waiting], attempt: 1, look: 1 }, settings, now);
    expect(retried.results.map((entry) => entry.action)).toEqual(['ignore', 'look']);
  });

  it('reads throttled past the SDK: nothing written, the same check once more a minute later on a schedule of its own', async () => {
    const ids = [given(1), given(2)];
    cloudwatch.on(GetMetricDataCommand).rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));

    const result = await runCheckBatch({ instanceIds: ids, attempt: 1, look: 2 }, settings, now);

    expect(result.results.map((entry) => entry.action)).toEqual(['look', 'look']);
    expect(dynamodb.commandCalls(PutCommand)).toEqual([]);
    const [again, ...others] = schedules();
    expect(others).toEqual([]);
    expect(again?.input).toEqual({ instanceIds: ids, attempt: 1, look: 2 });
    expect(again?.at).toBe('at(2025-03-04T10:11:00)');
    // Not the name of the schedule that ran this check (it exists until the run ends).
    expect(again?.name).not.toBe(batchScheduleName(testClients(), settings, ids, 1, 2));
    // Another error is not waited out: the invocation fails, for Lambda's retries and its failure record.
    cloudwatch.on(GetMetricDataCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));
    await expect(runCheckBatch({ instanceIds: ids, attempt: 1, look: 2 }, settings, now)).rejects.toThrow(/not authorized/);
    expect(dynamodb.commandCalls(PutCommand)).toEqual([]);
  });

  it("a full check's DescribeInstances throttled past the SDK: nothing written for those instances, the batch's next schedule checks them a minute later", async () => {
    const ids = [given(1), given(2)];
    ec2.on(DescribeInstancesCommand).rejectsOnce(Object.assign(new Error('Request limit exceeded.'), { name: 'RequestLimitExceeded' }));

    const result = await runCheckBatch({ instanceIds: ids, attempt: 1, look: undefined }, settings, now);

    expect(result.results.map((entry) => entry.action)).toEqual(['look', 'look']);
    expect(dynamodb.commandCalls(PutCommand)).toEqual([]);
    expect(schedules().map((schedule) => [schedule.at, schedule.input])).toEqual([['at(2025-03-04T10:11:00)', { instanceIds: ids, attempt: 1, look: lookPlan(settings).length + 1 }]]);
  });

  it('a retry schedule that cannot be created records lastError on those instances and fails the invocation', async () => {
    const ids = [given(1), given(2)];
    scheduler.on(CreateScheduleCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));

    await expect(runCheckBatch({ instanceIds: ids, attempt: 1, look: undefined }, settings, now)).rejects.toThrow(CheckBatchError);

    for (const instanceId of ids) expect(table.get(instanceId)).toMatchObject({ status: 'checking', checkAttempts: 0, lastError: expect.stringContaining('ThrottlingException') });
  });

  it("records healthy at once and paces the alarms: those past the product's share of PutMetricAlarm come with the batch's next schedule", async () => {
    // The deployed pacing (half of 3 a second, two containers: 0.75 a second) on a simulated clock.
    let clock = now.getTime();
    const pacer = new Pacer({ share: 0.5, concurrency: 2, clock: () => clock });
    const pacing: BatchPacing = { pacerOf: () => pacer, waitBudgetMs: () => 5_000, sleep: async (ms) => void (clock += ms) };
    const ids = [1, 2, 3, 4].map((n) => given(n, { datapoints: minutes(new Date('2025-03-04T10:02:00.000Z'), 8) }));
    const perInstance = instanceAlarms(ids[0] as string, 'linux', settings).length;

    const result = await runCheckBatch({ instanceIds: ids, attempt: 1, look: 1 }, settings, now, undefined, pacing);

    expect(result.results.map((entry) => entry.action)).toEqual(['healthy', 'healthy', 'healthy', 'healthy']);
    for (const instanceId of ids) expect(table.get(instanceId)).toMatchObject({ status: 'healthy', checkAttempts: 1 });
    const pending = ids.filter((instanceId) => table.get(instanceId)?.alarmsPending);
    const created = cloudwatch.commandCalls(PutMetricAlarmCommand).length;
    // 1 token at once and 0.75 a second for 5 s: at most 4.75 calls; every instance gets all its alarms or none.
    expect(created).toBeLessThanOrEqual(4.75 + 1);
    expect(created % perInstance).toBe(0);
    expect(pending.length).toBe(ids.length - created / perInstance);
    expect(pending.length).toBeGreaterThan(0);
    for (const instanceId of pending) expect(table.get(instanceId)?.alarmNames).toEqual([]);
    const [follow] = schedules();
    expect(follow?.input).toMatchObject({ attempt: 1, look: 2 });
    expect([...(follow?.input.instanceIds as string[])].sort()).toEqual([...pending].sort());

    // Each next schedule, when it fires, creates the alarms its tokens allow (a few instances an
    // invocation at 0.75 a second), checks nothing again, and hands the rest to the one after it.
    let input = follow?.input as { instanceIds: string[]; attempt: number; look: number };
    let at = now.getTime();
    for (let round = 0; input; round++) {
      expect(round).toBeLessThan(10);
      const delay = Date.parse(`${/^at\((.*)\)$/.exec(schedules().at(-1)?.at ?? '')?.[1]}Z`) - at;
      expect(delay).toBeGreaterThanOrEqual(10_000);
      at += delay;
      clock += delay;
      cloudwatch.resetHistory();
      scheduler.resetHistory();
      const next = await runCheckBatch(input, settings, new Date(at), undefined, pacing);
      const made = cloudwatch.commandCalls(PutMetricAlarmCommand).length;
      expect(made).toBeGreaterThan(0);
      expect(made).toBeLessThanOrEqual(1 + 0.75 * 5 + 1);
      expect(cloudwatch.commandCalls(GetMetricDataCommand)).toEqual([]);
      expect(next.results.filter((entry) => entry.reason === `${perInstance} alarm(s) created`)).toHaveLength(made / perInstance);
      input = schedules()[0]?.input as typeof input;
    }
    for (const instanceId of pending) {
      expect(table.get(instanceId)).toMatchObject({ status: 'healthy', alarmNames: expect.arrayContaining([expect.stringContaining(instanceId)]) });
      expect(table.get(instanceId)?.alarmsPending).toBeUndefined();
    }
    expect(table.get(pending[0] as string)?.history.at(-1)?.step).toBe('alarms-created');
    expect(schedules()).toEqual([]);
  });
});
