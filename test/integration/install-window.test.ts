// Install windows against moto: small batches of the onboard queue (the real onboard handler, the
// real SDK, moto's EC2, IAM, DynamoDB and Scheduler, the proxy's Systems Manager) join the install
// window of their place instead of installing, and the window's schedule, fired as Scheduler would
// at its time, installs all of them together. Only `Date` is faked, so that the window a batch
// lands in does not depend on when the test runs.
import type { Context, SQSEvent } from 'aws-lambda';
import { onboardQueueRecord } from '../harness/queue-records.js';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { GetScheduleCommand, ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { Pacer } from '../../shared/pacing/pacer.js';
import { replaceContainerPacers } from '../../shared/pacing/batch-pacing.js';
import { forgetScheduledInstallWindows } from '../../shared/onboarding/install-window.js';
import { stateTableClient } from '../../shared/aws/client-factory.js';
import type { Settings } from '../../shared/config/settings.js';
import { readRecord, type OnboardingRecord } from '../../shared/state/instance-record.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { launchInstance, stateChangeEvent } from '../harness/fleet.js';
import { deployStack, stackEnvironment, testAccountId, testRegion } from '../harness/stack.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();
const aws = useAws();
const stackEnv = stackEnvironment();

// The function parses its settings at cold start: the environment is the stack's (a 60 s window) before import.
Object.assign(process.env, stackEnv, { POWERTOOLS_METRICS_DISABLED: 'true' });
type Handler = (event: unknown, context: Context) => Promise<Record<string, unknown>>;
let onboard: Handler;
let settings: Settings;
const context = { functionName: 'test', awsRequestId: 'req', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;

beforeAll(async () => {
  onboard = (await import('../../functions/onboard.js')).handler as unknown as Handler;
});

/** 10 s into the current minute: a 60 s window ends 50 s later. */
let windowStart: number;

beforeEach(async () => {
  settings = (await deployStack()).settings;
  // One container's pacer with the association bucket's whole share: these scenarios are about the window, not the pacing.
  replaceContainerPacers(() => new Pacer({ share: 0.5, concurrency: 1 }));
  // Each scenario's container has created no window schedule yet (the clock starts at the same window).
  forgetScheduledInstallWindows();
  windowStart = Math.floor(Date.now() / 60_000) * 60_000;
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(windowStart + 10_000);
});

afterEach(() => {
  vi.useRealTimers();
  replaceContainerPacers();
});

let messages = 0;

/** A batch as Lambda's event source mapping delivers it: one message per running event. */
function queueBatch(instanceIds: string[]): SQSEvent {
  const queueArn = `arn:aws:sqs:${testRegion}:${testAccountId}:${stackEnv.RESOURCE_PREFIX}-onboard`;
  return {
    Records: instanceIds.map((instanceId) => {
      messages += 1;
      return onboardQueueRecord(stateChangeEvent(instanceId, 'running'), { messageId: `message-${messages}`, receiptHandle: `handle-${messages}`, queueArn, sentTimestamp: String(Date.now()) });
    }),
  };
}

async function launch(count: number, os: 'linux' | 'windows'): Promise<string[]> {
  const ids: string[] = [];
  for (let index = 0; index < count; index++) {
    const { instanceId } = await launchInstance({ os });
    aws.ssm.register(instanceId, { platformType: os === 'windows' ? 'Windows' : 'Linux' });
    ids.push(instanceId);
  }
  return ids;
}

async function record(instanceId: string): Promise<OnboardingRecord> {
  const found = await readRecord(clients, settings.stateTable, instanceId);
  if (!found) throw new Error(`no record for ${instanceId}`);
  return found;
}

const steps = (saved: OnboardingRecord) => saved.history.map((entry) => entry.step);

/** The product's calls of one operation since `from` (an index into aws.calls()). */
const count = (operation: string, from = 0) => aws.calls().slice(from).filter((call) => call.operation === operation).length;

/** The stack's schedules whose name starts with `prefix`, each with its time and parsed input. */
async function schedules(prefix: string): Promise<{ name: string; expression: string; input: Record<string, unknown> }[]> {
  const scheduler = new SchedulerClient(localClientConfig());
  try {
    const names = (await scheduler.send(new ListSchedulesCommand({ GroupName: settings.scheduleGroup, NamePrefix: `${settings.resourcePrefix}-${prefix}` }))).Schedules?.map((schedule) => schedule.Name ?? '') ?? [];
    return await Promise.all(
      names.sort().map(async (name) => {
        const schedule = await scheduler.send(new GetScheduleCommand({ Name: name, GroupName: settings.scheduleGroup }));
        return { name, expression: schedule.ScheduleExpression ?? '', input: JSON.parse(schedule.Target?.Input ?? '{}') as Record<string, unknown> };
      }),
    );
  } finally {
    scheduler.destroy();
  }
}

/** The window item as the table holds it. */
async function windowItem(windowEnd: number): Promise<{ entries?: Set<string>; closedAt?: string; expiresAt?: number } | undefined> {
  const result = await stateTableClient(clients).send(new GetCommand({ TableName: settings.stateTable, Key: { recordKey: `install-window:${testAccountId}:${testRegion}:${windowEnd}` }, ConsistentRead: true }));
  return result.Item;
}

describe('small batches within one install window', () => {
  it('get one DescribeInstanceInformation, one SendCommand per OS and one batch check schedule in all, when the window runs', async () => {
    const linux = await launch(6, 'linux');
    const windows = await launch(3, 'windows');
    const first = [...linux.slice(0, 4), windows[0] as string];
    const second = [...linux.slice(4), ...windows.slice(1)];
    const windowEnd = windowStart / 1000 + 60;
    const before = aws.calls().length;

    expect(await onboard(queueBatch(first), context)).toEqual({ batchItemFailures: [] });
    vi.setSystemTime(windowStart + 25_000);
    expect(await onboard(queueBatch(second), context)).toEqual({ batchItemFailures: [] });

    // Claimed, profiled and waiting in the window: nothing asked of Systems Manager yet.
    expect(count('DescribeInstanceInformation', before)).toBe(0);
    expect(count('SendCommand', before)).toBe(0);
    expect(count('UpdateItem', before)).toBe(2);
    // One schedule for the window, created by the first batch; the second knew it (same container).
    expect(count('CreateSchedule', before)).toBe(1);
    const [run, ...noOther] = await schedules('install-');
    expect(noOther).toEqual([]);
    expect(run).toEqual({ name: `${settings.resourcePrefix}-install-w${windowEnd}`, expression: `at(${new Date((windowEnd + 5) * 1000).toISOString().slice(0, 19)})`, input: { installWindow: windowEnd } });
    expect(await schedules('check-')).toEqual([]);
    const item = await windowItem(windowEnd);
    expect([...(item?.entries ?? [])].sort()).toEqual([...first, ...second].map((instanceId) => `${instanceId}:1`).sort());
    expect(item?.closedAt).toBeUndefined();
    expect(item?.expiresAt).toBe(windowEnd + 86_400);
    for (const instanceId of [...first, ...second]) {
      const saved = await record(instanceId);
      expect(saved, instanceId).toMatchObject({ status: 'waiting-for-ssm', ssmAttempts: 0 });
      expect(steps(saved), instanceId).toEqual(['claimed', 'profile:associated-agent-profile', 'install-window']);
      expect(saved.history.at(-1)?.detail, instanceId).toContain(`install window install-window:${testAccountId}:${testRegion}:${windowEnd}`);
    }

    // A duplicate event of an instance waiting in the window changes nothing.
    const duplicateAt = aws.calls().length;
    expect(await onboard(queueBatch([linux[0] as string]), context)).toEqual({ batchItemFailures: [] });
    expect(aws.calls().slice(duplicateAt).map((call) => call.operation).sort()).toEqual(['BatchGetItem', 'DescribeInstances']);

    // Scheduler fires the window's run at its time.
    vi.setSystemTime((windowEnd + 5) * 1000);
    const runAt = aws.calls().length;
    const result = (await onboard(run?.input, context)) as { window: string; instances: number; results: { instanceId: string; action: string; status: string }[] };

    expect(result.instances).toBe(9);
    expect(result.results.map((entry) => [entry.action, entry.status])).toEqual(Array(9).fill(['onboard', 'checking']));
    expect(count('DescribeInstanceInformation', runAt)).toBe(1);
    expect(count('SendCommand', runAt)).toBe(2);
    expect(count('AssociateIamInstanceProfile', runAt)).toBe(0);
    const commands = aws.commands.sent();
    expect(commands.map((command) => [command.parameters.configParameter, [...command.instanceIds].sort()])).toEqual([
      [[settings.configParameter.linux], [...linux].sort()],
      [[settings.configParameter.windows], [...windows].sort()],
    ]);
    const checks = await schedules('check-');
    expect(checks).toHaveLength(1);
    expect(checks[0]?.input).toMatchObject({ attempt: 1, look: 1 });
    expect([...((checks[0]?.input.instanceIds as string[]) ?? [])].sort()).toEqual([...linux, ...windows].sort());
    for (const instanceId of [...linux, ...windows]) {
      const saved = await record(instanceId);
      const command = commands.find((sent) => sent.instanceIds.includes(instanceId));
      expect(saved, instanceId).toMatchObject({ status: 'checking', commandId: command?.commandId, ssmAttempts: 0 });
      expect(steps(saved), instanceId).toEqual(['claimed', 'profile:associated-agent-profile', 'install-window', 'claimed', 'install-command-sent', 'check-scheduled']);
    }
    expect((await windowItem(windowEnd))?.closedAt).toBe(new Date((windowEnd + 5) * 1000).toISOString());

    // The same run again (Lambda's retry of the schedule's invocation): every retry is no longer
    // current, so no second command, no second check schedule, no record write.
    const againAt = aws.calls().length;
    const again = (await onboard(run?.input, context)) as { results: { action: string }[] };
    expect(again.results.map((entry) => entry.action)).toEqual(Array(9).fill('ignore'));
    expect(count('SendCommand', againAt)).toBe(0);
    expect(count('CreateSchedule', againAt)).toBe(0);
    expect(count('PutItem', againAt)).toBe(0);
    expect(aws.commands.sent()).toHaveLength(2);
    expect(await schedules('check-')).toHaveLength(1);
  });

  it('a batch whose window was closed already joins the next one, and that window\'s run installs it', async () => {
    const [early, late] = await launch(2, 'linux');
    const windowEnd = windowStart / 1000 + 60;
    await onboard(queueBatch([early as string]), context);
    // The window's run closes it; then a batch of a container whose clock is some seconds late
    // (the test's one clock stands for both: the run's is 5 s early here instead) still computes
    // the closed window as the current one.
    vi.setSystemTime((windowEnd - 3) * 1000);
    const [run] = await schedules('install-');
    await onboard(run?.input, context);
    expect((await record(early as string)).status).toBe('checking');
    vi.setSystemTime((windowEnd - 2) * 1000);
    expect(await onboard(queueBatch([late as string]), context)).toEqual({ batchItemFailures: [] });

    const next = windowEnd + 60;
    const waiting = await record(late as string);
    expect(waiting.status).toBe('waiting-for-ssm');
    expect(waiting.history.at(-1)?.detail).toContain(`install window install-window:${testAccountId}:${testRegion}:${next}`);
    expect([...((await windowItem(windowEnd))?.entries ?? [])]).toEqual([`${early}:1`]);
    expect([...((await windowItem(next))?.entries ?? [])]).toEqual([`${late}:1`]);
    const nextRun = (await schedules('install-')).find((schedule) => schedule.input.installWindow === next);
    expect(nextRun?.name).toBe(`${settings.resourcePrefix}-install-w${next}`);

    vi.setSystemTime((next + 5) * 1000);
    const sentBefore = aws.commands.sent().length;
    await onboard(nextRun?.input, context);
    expect((await record(late as string)).status).toBe('checking');
    expect(aws.commands.sent().slice(sentBefore).map((command) => command.instanceIds)).toEqual([[late]]);
  });

  it('an instance Systems Manager does not see online when the window runs waits for it with the others, one retry schedule', async () => {
    const [online, offline] = await launch(2, 'linux');
    aws.ssm.unregister(offline as string);
    const windowEnd = windowStart / 1000 + 60;
    await onboard(queueBatch([online as string, offline as string]), context);
    vi.setSystemTime((windowEnd + 5) * 1000);
    const [run] = await schedules('install-');

    await onboard(run?.input, context);

    expect((await record(online as string)).status).toBe('checking');
    expect(await record(offline as string)).toMatchObject({ status: 'waiting-for-ssm', ssmAttempts: 1 });
    const retries = await schedules('onboard-b');
    expect(retries.map((schedule) => schedule.input)).toEqual([{ instanceIds: [offline], attempt: 2 }]);
    expect(aws.commands.sent().map((command) => command.instanceIds)).toEqual([[online]]);

    // The window's run again: the offline instance's attempt 1 is no longer current (it waits for attempt 2).
    const againAt = aws.calls().length;
    await onboard(run?.input, context);
    expect(count('DescribeInstanceInformation', againAt)).toBe(0);
    expect(count('PutItem', againAt)).toBe(0);
    expect(await schedules('onboard-b')).toHaveLength(1);
  });

  it('a window nobody joined does nothing and says so', async () => {
    const before = aws.calls().length;
    const windowEnd = windowStart / 1000 + 60;
    expect(await onboard({ installWindow: windowEnd }, context)).toEqual({
      window: `install-window:${testAccountId}:${testRegion}:${windowEnd}`,
      instances: 0,
      results: [],
      failures: [],
      deferred: [],
    });
    expect(aws.calls().slice(before).map((call) => call.operation)).toEqual(['UpdateItem']);
    // The run's conditional close left no item behind.
    expect(await windowItem(windowEnd)).toBeUndefined();
  });

  it('a malformed window input is refused with an error naming what is wrong, before any call', async () => {
    const before = aws.calls().length;
    await expect(onboard({ installWindow: 'soon' }, context)).rejects.toThrow("onboard: expected an install window's run { installWindow, account?, region? }: installWindow: expected a number, got string \"soon\"");
    await expect(onboard({ installWindow: Date.now() }, context)).rejects.toThrow('installWindow: expected epoch seconds of 2020 to 2100 (not milliseconds)');
    await expect(onboard({ installWindow: 1_796_187_780, instanceIds: ['i-0abc1234def567890'] }, context)).rejects.toThrow('instanceIds: unknown key');
    await expect(onboard({ installWindow: 1_796_187_780, account: testAccountId }, context)).rejects.toThrow("account: give both account and region, or neither (the hub's own)");
    expect(aws.calls().length).toBe(before);
  });
});
