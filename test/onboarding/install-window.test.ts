// Install windows with aws-sdk-client-mock: which batches join a window and which install at once,
// what a join costs, the per-instance rules in a small batch, a failed join, and a window's run of
// more instances than one retry batch takes. The same scenarios against moto (one DescribeInstanceInformation
// and one SendCommand per OS for two batches, a run twice, a closed window) are
// test/integration/install-window.test.ts.
import { beforeEach, describe, expect, it } from 'vitest';
import { Pacer } from '../../shared/pacing/pacer.js';
import type { SQSEvent } from 'aws-lambda';
import { DescribeInstancesCommand, type DescribeInstancesCommandInput } from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, SendCommandCommand, type DescribeInstanceInformationCommandInput, type SendCommandCommandInput } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand } from '@aws-sdk/client-scheduler';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { awsError, dynamodb, ec2, ec2Instance, existingRecord, now, runningEvent, scheduler, ssm, steps, table, useOnboardScenario } from './onboard-harness.js';
import { hubRecordKey } from '../harness/test-clients.js';
import { onboardQueueRecord } from '../harness/queue-records.js';

// The stack's settings: INSTALL_WINDOW_SECONDS 60 (serverless.yml's default).
const onboard = useOnboardScenario();
const roomy = { 'ec2:associate-iam-instance-profile': { capacity: 1000, refillPerSecond: 1000 }, 'scheduler:create-schedule': { capacity: 1000, refillPerSecond: 1000 } };
// Association and schedule buckets that hold every batch here: how many instances a batch claims is the
// pacing's business (test/onboarding/onboard-batch.test.ts), what they do after it is this file's.
beforeEach(() => onboard.replaceContainerPacers(() => new Pacer({ buckets: roomy })));

/** The scenario's clock is on a whole minute: its window ends 60 s later. */
const windowEnd = now.getTime() / 1000 + 60;
const burstId = (n: number) => `i-${n.toString(16).padStart(17, '0')}`;

/** EC2 and Systems Manager for these instances: every one running, online, Windows when told. */
function givenFleet(ids: string[], windows: ReadonlySet<string> = new Set()): void {
  ec2.on(DescribeInstancesCommand).callsFake((input: DescribeInstancesCommandInput) => {
    const asked = input.Filters?.find((filter) => filter.Name === 'instance-id')?.Values ?? [];
    return { Reservations: [{ Instances: asked.filter((id) => ids.includes(id)).map((id) => ({ ...ec2Instance({ windows: windows.has(id) }), InstanceId: id })) }] };
  });
  ssm.on(DescribeInstanceInformationCommand).callsFake((input: DescribeInstanceInformationCommandInput) => {
    const asked = input.Filters?.find((filter) => filter.Key === 'InstanceIds')?.Values ?? [];
    if (asked.length > 50) throw awsError('ValidationException', 'at most 50 instance ids a call');
    return { InstanceInformationList: asked.map((id) => ({ InstanceId: id, PingStatus: 'Online', PlatformType: windows.has(id) ? 'Windows' : 'Linux' })) };
  });
  let commands = 0;
  ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => {
    if ((input.InstanceIds?.length ?? 0) > 50) throw awsError('ValidationException', 'at most 50 instance ids a call');
    commands += 1;
    return { Command: { CommandId: `cmd-${commands}` } };
  });
}

function queueBatch(ids: string[]): SQSEvent {
  return { Records: ids.map((id) => onboardQueueRecord(runningEvent(id), { messageId: `m-${id}`, receiptHandle: `handle-${id}`, queueArn: 'arn:aws:sqs:us-east-1:123456789012:cwap-dev-onboard' })) };
}

const record = (id: string) => table.get(id);
const sends = () => ssm.commandCalls(SendCommandCommand).map((call) => call.args[0].input.InstanceIds ?? []);
const scheduleNames = () => scheduler.commandCalls(CreateScheduleCommand).map((call) => call.args[0].input.Name);

describe('which batches join an install window', () => {
  it('49 instances awaiting their install join the window: one UpdateItem, one window schedule, no Systems Manager call', async () => {
    const ids = Array.from({ length: 49 }, (_, index) => burstId(index + 1));
    givenFleet(ids);

    expect(await onboard.invokeBatch(queueBatch(ids))).toEqual({ batchItemFailures: [] });

    expect(ssm).not.toHaveReceivedCommand(DescribeInstanceInformationCommand);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(dynamodb).toHaveReceivedCommandTimes(UpdateCommand, 1);
    expect(dynamodb).toHaveReceivedCommandWith(UpdateCommand, {
      Key: { recordKey: `install-window:123456789012:us-east-1:${windowEnd}` },
      ConditionExpression: 'attribute_not_exists(#closedAt)',
    });
    expect(scheduleNames()).toEqual([`cwap-dev-install-w${windowEnd}`]);
    const window = scheduler.commandCalls(CreateScheduleCommand)[0]?.args[0].input;
    expect(window?.ScheduleExpression).toBe(`at(${new Date((windowEnd + 5) * 1000).toISOString().slice(0, 19)})`);
    expect(window?.Target?.Arn).toBe('arn:aws:lambda:us-east-1:123456789012:function:cwap-dev-onboard');
    expect(JSON.parse(window?.Target?.Input ?? '{}')).toEqual({ installWindow: windowEnd });
    for (const id of ids) expect(record(id)?.status, id).toBe('waiting-for-ssm');
  });

  it('50 instances awaiting their install are installed at once, as before: no window', async () => {
    const ids = Array.from({ length: 50 }, (_, index) => burstId(index + 1));
    givenFleet(ids);

    await onboard.invokeBatch(queueBatch(ids));

    expect(dynamodb).not.toHaveReceivedCommand(UpdateCommand);
    expect(sends().map((sent) => sent.length)).toEqual([50]);
    expect(scheduleNames().filter((name) => name?.includes('-install-'))).toEqual([]);
    for (const id of ids) expect(record(id)?.status, id).toBe('checking');
  });

  it("a window's run asks EC2 about the instances whose kept facts are gone (written 15 minutes ago or more, or never)", async () => {
    const ids = Array.from({ length: 3 }, (_, index) => burstId(index + 1));
    givenFleet(ids);
    await onboard.invokeBatch(queueBatch(ids));
    // The facts of the first one aged out; the others' are as kept at the join.
    const key = `deferred:123456789012:us-east-1:${ids[0]}`;
    const kept = table.item(key) as unknown as { savedAt: string };
    table.seed({ ...kept, savedAt: new Date(now.getTime() - 16 * 60_000).toISOString() } as never);
    ec2.resetHistory();

    await onboard.invoke({ installWindow: windowEnd });

    expect(ec2.commandCalls(DescribeInstancesCommand).map((call) => call.args[0].input.Filters?.[0]?.Values)).toEqual([[ids[0]]]);
    for (const id of ids) expect(record(id)?.status, id).toBe('checking');
  });

  it('a batch sends its full commands at once (50 of one OS) and what would make a smaller command joins the window', async () => {
    // 60 Linux and 15 Windows: one Linux command of 50 now; 10 Linux and 15 Windows wait for the window.
    const ids = Array.from({ length: 75 }, (_, index) => burstId(index + 1));
    const windows = new Set(ids.slice(60));
    givenFleet(ids, windows);

    expect(await onboard.invokeBatch(queueBatch(ids))).toEqual({ batchItemFailures: [] });

    expect(sends()).toEqual([ids.slice(0, 50)]);
    expect(ssm.commandCalls(DescribeInstanceInformationCommand).flatMap((call) => call.args[0].input.Filters?.[0]?.Values ?? [])).toEqual(ids.slice(0, 50));
    expect(dynamodb).toHaveReceivedCommandTimes(UpdateCommand, 1);
    for (const id of ids.slice(0, 50)) expect(record(id)?.status, id).toBe('checking');
    for (const id of ids.slice(50)) expect(record(id)?.status, id).toBe('waiting-for-ssm');
  });

  it('with INSTALL_WINDOW_SECONDS 0 a batch of one is installed at once', async () => {
    await onboard.restart({ INSTALL_WINDOW_SECONDS: '0' });
    onboard.replaceContainerPacers(() => new Pacer({ buckets: roomy }));
    givenFleet([burstId(1)]);

    await onboard.invokeBatch(queueBatch([burstId(1)]));

    expect(dynamodb).not.toHaveReceivedCommand(UpdateCommand);
    expect(sends()).toEqual([[burstId(1)]]);
  });

  it('a second small batch in the same container joins the same window without a second window schedule', async () => {
    const ids = Array.from({ length: 6 }, (_, index) => burstId(index + 1));
    givenFleet(ids);

    await onboard.invokeBatch(queueBatch(ids.slice(0, 3)));
    await onboard.invokeBatch(queueBatch(ids.slice(3)));

    expect(dynamodb).toHaveReceivedCommandTimes(UpdateCommand, 2);
    expect(scheduleNames()).toEqual([`cwap-dev-install-w${windowEnd}`]);
    for (const id of ids) expect(record(id)?.history.at(-1)?.detail, id).toContain(`install window install-window:123456789012:us-east-1:${windowEnd} with 3 instance(s) of this batch`);
  });
});

describe('every rule of one instance holds in a small batch', () => {
  it('a restarted instance gets its check and an opted-out one is skipped; only the new one joins the window', async () => {
    const [fresh, restarted, optedOut] = [burstId(1), burstId(2), burstId(3)];
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            { ...ec2Instance(), InstanceId: fresh },
            { ...ec2Instance({ launchedAt: new Date('2025-03-04T09:59:30.000Z'), profileArn: 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent' }), InstanceId: restarted },
            { ...ec2Instance({ tags: { 'cw-autopilot:skip': 'true' } }), InstanceId: optedOut },
          ],
        },
      ],
    });
    table.seed({ ...existingRecord({ status: 'healthy', commandId: 'cmd-old', checkAttempts: 1 }), ...hubRecordKey(restarted), instanceId: restarted });

    await onboard.invokeBatch(queueBatch([fresh, restarted, optedOut]));

    expect(record(fresh)?.status).toBe('waiting-for-ssm');
    expect(record(restarted)?.status).toBe('checking');
    expect(steps(record(restarted)!).slice(-2)).toEqual(['restarted', 'check-scheduled']);
    expect(record(optedOut)?.status).toBe('skipped');
    expect(dynamodb).toHaveReceivedCommandTimes(UpdateCommand, 1);
    const joined = dynamodb.commandCalls(UpdateCommand)[0]?.args[0].input.ExpressionAttributeValues?.[':entries'] as Set<string>;
    expect([...joined]).toEqual([`${fresh}:1`]);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it('a join that fails records the error on each instance and returns their messages; their redelivery joins a window', async () => {
    const ids = [burstId(1), burstId(2)];
    givenFleet(ids);
    dynamodb.on(UpdateCommand).rejectsOnce(awsError('InternalServerError', 'Internal server error', 'server'));

    const response = await onboard.invokeBatch(queueBatch(ids));

    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier).sort()).toEqual(ids.map((id) => `m-${id}`));
    for (const id of ids) expect(record(id)).toMatchObject({ status: 'error', lastError: 'InternalServerError: Internal server error' });
    expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);

    dynamodb.on(UpdateCommand).callsFake((input) => table.update(input));
    expect(await onboard.invokeBatch(queueBatch(ids))).toEqual({ batchItemFailures: [] });
    for (const id of ids) expect(steps(record(id)!).slice(-3), id).toEqual(['error', 'claimed', 'install-window']);
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(2);
  });
});

describe('a window\'s run', () => {
  it('of 150 instances runs in one batch: no DescribeInstances (their facts were kept when they joined), Systems Manager 50 a call, one SendCommand per OS and 50 across the whole window, one check schedule', async () => {
    const ids = Array.from({ length: 150 }, (_, index) => burstId(index + 1));
    const windows = new Set(ids.filter((_, index) => index % 5 === 4));
    givenFleet(ids, windows);
    for (let from = 0; from < ids.length; from += 30) await onboard.invokeBatch(queueBatch(ids.slice(from, from + 30)));
    expect(dynamodb).toHaveReceivedCommandTimes(UpdateCommand, 5);
    ec2.resetHistory();
    ssm.resetHistory();
    scheduler.resetHistory();

    const result = (await onboard.invoke({ installWindow: windowEnd })) as unknown as { instances: number; results: { status: string }[] };

    expect(result.instances).toBe(150);
    expect(result.results.every((entry) => entry.status === 'checking')).toBe(true);
    expect(ec2.commandCalls(DescribeInstancesCommand)).toEqual([]);
    expect(ssm.commandCalls(DescribeInstanceInformationCommand)).toHaveLength(3);
    // 120 Linux (50 + 50 + 20) and 30 Windows: grouped per OS across the window, not per 100
    // (which made 50 + 30 + 20 and 40 + 10, five commands).
    expect(sends().map((sent) => sent.length)).toEqual([50, 50, 20, 30]);
    expect(scheduleNames().every((name) => name?.startsWith('cwap-dev-check-b'))).toBe(true);
    expect(scheduleNames()).toHaveLength(1);
    for (const id of ids) expect(record(id)?.status, id).toBe('checking');
  });
});
