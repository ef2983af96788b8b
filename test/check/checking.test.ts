import { AlertNotSentError } from '../../shared/errors.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeleteAlarmsCommand, DescribeAlarmsCommand, GetMetricDataCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { CreateScheduleCommand, DeleteScheduleCommand } from '@aws-sdk/client-scheduler';
import { PublishCommand } from '@aws-sdk/client-sns';
import { GetCommandInvocationCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { runCheck } from '../../shared/checking/checking.js';
import { lookPlan } from '../../shared/checking/check-policy.js';
import { replaceContainerPacers } from '../../shared/pacing/batch-pacing.js';
import { parseCheckRequest } from '../../shared/input/triggers.js';
import { productMetrics } from '../../shared/observability/product-metrics.js';
import { awsError, cloudwatch, dynamodb, ec2Instance, givenDatapoints, givenInstance, iam, resetAws, scheduler, sns, ssm, steps, table } from './check-harness.js';
import { GetInstanceProfileCommand } from '@aws-sdk/client-iam';
import { instanceId, launchTime, settings } from './fixtures.js';
import { PutCommand } from '@aws-sdk/lib-dynamodb';

const now = new Date('2026-01-10T10:10:00.000Z');
const check = (attempt: number | undefined, at = now) => runCheck({ instanceId, attempt }, settings, at);

// An alert writes its per-diagnosis EMF record at once: quiet here (product-metrics.test.ts reads them).
beforeEach(() => {
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
  resetAws();
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('the checker finds the metrics', () => {
  it('a Linux instance whose agent publishes is recorded healthy with its first datapoint, alarms and product metrics', async () => {
    givenDatapoints(new Date('2026-01-10T10:03:00.000Z'), new Date('2026-01-10T10:08:00.000Z'));
    const addMetric = vi.spyOn(productMetrics, 'addMetric');

    const result = await check(1);

    expect(result).toMatchObject({ action: 'healthy', status: 'healthy' });
    expect(cloudwatch).toHaveReceivedCommandWith(GetMetricDataCommand, { StartTime: new Date(launchTime), EndTime: now });
    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricAlarmCommand, 4);
    expect(table.record).toMatchObject({
      status: 'healthy',
      checkAttempts: 1,
      firstDatapointAt: '2026-01-10T10:03:00.000Z',
      launchToFirstMetricSeconds: 180,
      alarmNames: [
        `cwap-dev-${instanceId}-MEMORY_USED-missing`,
        `cwap-dev-${instanceId}-MEMORY_USED-high`,
        `cwap-dev-${instanceId}-DISK_USED-missing`,
        `cwap-dev-${instanceId}-DISK_USED-high`,
      ],
    });
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    expect(addMetric.mock.calls.map((call) => [call[0], call[2]])).toEqual([
      ['InstancesHealthy', 1],
      ['InstancesOnboarded', 1],
      ['LaunchToFirstMetricSeconds', 180],
    ]);
  });

  it("a healthy instance's alarms take their PutMetricAlarm calls from the account's ledger, each call at its time", async () => {
    // The deployed share: half of PutMetricAlarm's 3 a second, no burst beyond one call.
    replaceContainerPacers();
    givenDatapoints(new Date('2026-01-10T10:03:00.000Z'), new Date('2026-01-10T10:08:00.000Z'));
    const before = Date.now();
    const result = await check(1);

    expect(result).toMatchObject({ action: 'healthy', status: 'healthy' });
    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricAlarmCommand, 4);
    const ledger = table.ledger.get(`pacing:123456789012:us-east-1:monitoring:put-metric-alarm`) as { tat: number; reserved: number } | undefined;
    // Four calls 667 ms apart: the last one 2 s after the first, the next due 667 ms later.
    expect(ledger?.reserved).toBe(0);
    expect(ledger!.tat - before).toBeGreaterThanOrEqual(4 * (1000 / 1.5) - 1);
    expect(Date.now() - before).toBeGreaterThanOrEqual(3 * (1000 / 1.5) - 5);
  });

  it('a healthy instance whose PutMetricAlarm calls are not due within the wait is recorded healthy with its alarms pending, and a batch schedule of its own creates them when its reserved calls are due', async () => {
    replaceContainerPacers();
    givenDatapoints(new Date('2026-01-10T10:03:00.000Z'), new Date('2026-01-10T10:08:00.000Z'));
    const key = 'pacing:123456789012:us-east-1:monitoring:put-metric-alarm';
    // Other containers' alarms hold the product's share for the next two minutes.
    const busyUntil = Date.now() + 120_000;
    table.ledger.set(key, { recordKey: key, tat: busyUntil, reserved: 0, version: 7 } as never);

    const result = await check(1);

    expect(result).toMatchObject({ action: 'healthy', status: 'healthy' });
    expect(result.reason).toMatch(/alarms pending, created by cwap-dev-check-b[0-9a-f]{10}-1-\d+ at /);
    expect(cloudwatch).not.toHaveReceivedCommand(PutMetricAlarmCommand);
    expect(table.record).toMatchObject({ status: 'healthy', alarmsPending: true, alarmNames: [] });
    // Its four calls are reserved behind the others'.
    expect(table.ledger.get(key)).toMatchObject({ reserved: 4, version: 8 });
    const schedule = scheduler.commandCalls(CreateScheduleCommand).map((call) => call.args[0].input);
    expect(schedule).toHaveLength(1);
    expect(JSON.parse(schedule[0]?.Target?.Input ?? '{}')).toEqual({ instanceIds: [instanceId], attempt: 1, look: lookPlan(settings).length + 1 });
    const at = Date.parse(`${/at\((.*)\)/.exec(schedule[0]?.ScheduleExpression ?? '')?.[1]}Z`);
    expect(at).toBeGreaterThanOrEqual(Math.floor(busyUntil / 1000) * 1000 - 1000);
  });

  it('a first datapoint stamped with a period start before the launch is recorded at the launch, not before it', async () => {
    // GetMetricData dates a datapoint by the start of its 60 s period: the first one can precede the launch.
    const periodStart = new Date(Date.parse(launchTime) - 40_000);
    givenDatapoints(periodStart, new Date('2026-01-10T10:08:00.000Z'));
    await check(1);
    expect(table.record).toMatchObject({ status: 'healthy', firstDatapointAt: new Date(launchTime).toISOString(), launchToFirstMetricSeconds: 0 });
  });

  it('datapoints older than the lookback window do not count: the agent stopped publishing', async () => {
    givenDatapoints(new Date('2026-01-10T09:00:00.000Z'), new Date('2026-01-10T09:50:00.000Z'));
    const result = await check(1, new Date('2026-01-10T10:10:00.000Z'));
    expect(result.action).toBe('retry');
  });

  it('an instance that alerted and now publishes gets one recovery message', async () => {
    resetAws({ status: 'alerted', checkAttempts: 3, alertedAt: '2026-01-10T10:05:00.000Z', alertedLaunch: launchTime, alertedDiagnosis: 'no-datapoints' });
    givenDatapoints(new Date('2026-01-10T10:06:00.000Z'), new Date('2026-01-10T10:09:00.000Z'));

    expect(await check(undefined)).toMatchObject({ action: 'healthy' });
    expect(sns).toHaveReceivedCommandOnce(PublishCommand);
    expect(sns).toHaveReceivedCommandWith(PublishCommand, {
      Subject: `[cw-agent-autopilot] web-1 (${instanceId}): recovered, metrics arrive`,
      MessageAttributes: expect.objectContaining({ event: { DataType: 'String', StringValue: 'recovery' } }),
    });
    expect(table.record?.alertedAt).toBeUndefined();

    await check(undefined);
    expect(sns).toHaveReceivedCommandOnce(PublishCommand);
  });

  it('a recovery message SNS did not take is sent by one more scheduled check', async () => {
    resetAws({ status: 'alerted', checkAttempts: 3, alertedAt: '2026-01-10T10:05:00.000Z', alertedLaunch: launchTime, alertedDiagnosis: 'no-datapoints' });
    givenDatapoints(new Date('2026-01-10T10:06:00.000Z'), new Date('2026-01-10T10:09:00.000Z'));
    sns.on(PublishCommand).rejectsOnce(awsError('InternalError', 'SNS is down')).resolves({ MessageId: 'msg-r' });

    expect(await check(undefined)).toMatchObject({ action: 'healthy' });
    expect(table.record).toMatchObject({ status: 'healthy', alertedAt: '2026-01-10T10:05:00.000Z', lastError: 'recovery message not sent: InternalError: SNS is down' });
    expect(scheduler).toHaveReceivedCommandWith(CreateScheduleCommand, { Name: `cwap-dev-check-${instanceId}-5` });

    expect(await check(5)).toMatchObject({ action: 'healthy' });
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 2);
    expect(table.record?.alertedAt).toBeUndefined();
    // Once sent, a further scheduled check of the healthy instance is not current.
    expect(await check(6)).toMatchObject({ action: 'ignore' });
  });
});

describe('the checker retries what a retry can fix', () => {
  it('an invocation SSM still does not know 15 minutes after it was sent was never delivered: the install is re-sent', async () => {
    const sentLongAgo = new Date(now.getTime() - 16 * 60_000).toISOString();
    resetAws({ commandSentAt: sentLongAgo });
    ssm.on(GetCommandInvocationCommand).rejects(awsError('InvocationDoesNotExist'));
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-again' } });

    const result = await check(1);

    expect(result).toMatchObject({ action: 'retry', diagnosis: 'command-not-sent' });
    expect(ssm).toHaveReceivedCommand(SendCommandCommand);
    expect(table.record).toMatchObject({ commandId: 'cmd-again', reinstalls: 1 });
  });

  it('right after SendCommand, InvocationDoesNotExist means "not yet known": re-check later, no alert', async () => {
    ssm.on(GetCommandInvocationCommand).rejects(awsError('InvocationDoesNotExist'));

    const result = await check(1);

    expect(result).toMatchObject({ action: 'retry', status: 'checking', diagnosis: 'command-running' });
    expect(scheduler).toHaveReceivedCommandWith(CreateScheduleCommand, {
      Name: `cwap-dev-check-${instanceId}-2`,
      ScheduleExpression: 'at(2026-01-10T10:15:00)',
      Target: expect.objectContaining({ Input: JSON.stringify({ instanceId, attempt: 2 }) }),
    });
    expect(table.record).toMatchObject({ checkAttempts: 1, diagnosis: { code: 'command-running' } });
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it('a failed install step re-sends the install command and counts it', async () => {
    ssm.on(GetCommandInvocationCommand, { PluginName: 'installAgent' }).resolves({ Status: 'Failed', StatusDetails: 'Failed', StandardErrorContent: 'Failed to download\nmore', ResponseCode: 1 });

    expect(await check(1)).toMatchObject({ action: 'retry', diagnosis: 'command-failed' });
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, { DocumentName: 'cwap-dev-install-agent', InstanceIds: [instanceId] });
    expect(table.record).toMatchObject({ commandId: 'cmd-2', reinstalls: 1, status: 'checking' });
    expect(steps()).toEqual(['install-command-resent', 'check-retry']);
  });

  it('a scheduled check that is not current (a duplicate delivery) does nothing', async () => {
    resetAws({ checkAttempts: 2 });
    expect(await check(2)).toMatchObject({ action: 'ignore' });
    expect(dynamodb).not.toHaveReceivedCommand(PutCommand);
    expect(cloudwatch).not.toHaveReceivedCommand(GetMetricDataCommand);
  });

  it('throttling that outlasts the SDK retries fails the check but keeps the record current, so the retried check runs', async () => {
    cloudwatch.on(GetMetricDataCommand).rejectsOnce(awsError('ThrottlingException', 'Rate exceeded')).resolves({ MetricDataResults: [] });

    await expect(check(1)).rejects.toThrow('Rate exceeded');
    expect(table.record).toMatchObject({ status: 'checking', checkAttempts: 0, lastError: 'ThrottlingException: Rate exceeded' });

    expect(await check(1)).toMatchObject({ action: 'retry' });
  });
});

describe('the checker alerts once, in words a person can act on', () => {
  it('the last check alerts with the diagnosis, what was tried and filterable attributes', async () => {
    resetAws({ checkAttempts: 2, reinstalls: 0 });
    const addMetric = vi.spyOn(productMetrics, 'addMetric');
    const result = await check(3);

    expect(result).toMatchObject({ action: 'alerted', status: 'alerted', diagnosis: 'no-datapoints' });
    expect(sns).toHaveReceivedCommandExactlyOnceWith(PublishCommand, {
      TopicArn: settings.alertTopicArn,
      Subject: `[cw-agent-autopilot] web-1 (${instanceId}): metrics missing - no-datapoints`,
      MessageStructure: 'json',
      Message: expect.any(String),
      MessageAttributes: {
        severity: { DataType: 'String', StringValue: 'critical' },
        event: { DataType: 'String', StringValue: 'alert' },
        diagnosis: { DataType: 'String', StringValue: 'no-datapoints' },
        instanceId: { DataType: 'String', StringValue: instanceId },
        os: { DataType: 'String', StringValue: 'linux' },
        account: { DataType: 'String', StringValue: '123456789012' },
        region: { DataType: 'String', StringValue: 'us-east-1' },
        schemaVersion: { DataType: 'String', StringValue: '1' },
      },
    });
    const published = JSON.parse(sns.commandCalls(PublishCommand)[0]?.args[0].input.Message ?? '{}');
    expect(published.default).toContain('- checked the metrics 3 time(s)');
    expect(JSON.parse(published.sqs)).toMatchObject({ event: 'alert', diagnosis: 'no-datapoints', checks: 3, scheduleNames: [`cwap-dev-check-${instanceId}-3`] });
    expect(table.record).toMatchObject({ status: 'alerted', alertedLaunch: launchTime, alertedDiagnosis: 'no-datapoints' });
    expect(steps()).toEqual(['alert-decided', 'alerted']);
    expect(addMetric.mock.calls.map((call) => call[0])).toEqual(['InstancesAlerted']);
  });

  it('an instance without an instance profile alerts on the first check, no retry', async () => {
    givenInstance(ec2Instance({ IamInstanceProfile: undefined }));
    expect(await check(1)).toMatchObject({ action: 'alerted', diagnosis: 'no-instance-profile' });
    expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);
  });

  it('a check by hand after the alert does not alert again', async () => {
    resetAws({ checkAttempts: 2 });
    await check(3);
    await check(undefined);
    await check(undefined);
    expect(sns).toHaveReceivedCommandOnce(PublishCommand);
    expect(table.record?.status).toBe('alerted');
  });

  it('an SNS publish failure keeps the diagnosis and the error, and the next check sends the alert', async () => {
    resetAws({ checkAttempts: 2 });
    sns.on(PublishCommand).rejectsOnce(awsError('InternalError', 'SNS is down')).resolves({ MessageId: 'msg-2' });

    await expect(check(3)).rejects.toBeInstanceOf(AlertNotSentError);
    expect(table.record).toMatchObject({
      status: 'alerting',
      checkAttempts: 3,
      diagnosis: { code: 'no-datapoints' },
      lastError: 'alert not sent: InternalError: SNS is down',
    });
    expect(scheduler).toHaveReceivedCommandWith(CreateScheduleCommand, { Name: `cwap-dev-check-${instanceId}-4` });

    // Lambda's own retry of check 3 sends it (the alert was claimed, not sent): late, never lost.
    expect(await check(3)).toMatchObject({ action: 'alerted', status: 'alerted' });
    // The check scheduled for the alert's retry then finds it sent: nothing twice.
    expect(await check(4)).toMatchObject({ action: 'ignore' });
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 2);
    expect(table.record?.lastError).toBeUndefined();
  });

  it('when another invocation changed the record after the alert went out, the alert is not repeated and nothing throws', async () => {
    resetAws({ checkAttempts: 2 });
    sns.on(PublishCommand).callsFake(() => {
      if (table.record) table.record = { ...table.record, version: table.record.version + 1 };
      return { MessageId: 'msg-9' };
    });
    expect(await check(3)).toMatchObject({ action: 'alerted', status: 'alerting' });
    expect(sns).toHaveReceivedCommandOnce(PublishCommand);
  });

  it('a duplicate check that loses the claim sends nothing', async () => {
    resetAws({ checkAttempts: 2 });
    dynamodb.on(PutCommand).rejects(awsError('ConditionalCheckFailedException'));
    expect(await check(3)).toMatchObject({ action: 'ignore', reason: expect.stringContaining('superseded') });
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });
});

describe('a terminated or stopped instance', () => {
  it('a terminated instance is recorded gone, its alarms and pending schedules deleted, no alert', async () => {
    resetAws({ checkAttempts: 1, ssmAttempts: 1, alarmNames: ['x'] });
    givenInstance(ec2Instance({ State: { Name: 'terminated' } }));
    const names = [`cwap-dev-${instanceId}-MEMORY_USED-missing`, `cwap-dev-${instanceId}-DISK_USED-missing`];
    cloudwatch.on(DescribeAlarmsCommand).resolves({ MetricAlarms: names.map((AlarmName) => ({ AlarmName })) });
    scheduler.on(DeleteScheduleCommand, { Name: `cwap-dev-check-${instanceId}-2` }).resolves({});

    expect(await check(2)).toMatchObject({ action: 'gone', status: 'gone' });
    expect(table.record?.expiresAt).toBe(Math.floor(now.getTime() / 1000) + 90 * 86_400);
    expect(cloudwatch).toHaveReceivedCommandWith(DescribeAlarmsCommand, { AlarmNamePrefix: `cwap-dev-${instanceId}-` });
    expect(cloudwatch).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: names });
    expect(scheduler.commandCalls(DeleteScheduleCommand).map((call) => call.args[0].input.Name)).toEqual([
      `cwap-dev-check-${instanceId}-1`,
      `cwap-dev-check-${instanceId}-2`,
      `cwap-dev-onboard-${instanceId}-2`,
    ]);
    expect(table.record?.history.at(-1)?.detail).toContain('deleted 2 alarm(s)');
    expect(table.record?.history.at(-1)?.detail).toContain('and 1 pending schedule(s)');
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });

  it('a stopped instance is recorded stopped and its alarms removed (they would fire on missing data)', async () => {
    givenInstance(ec2Instance({ State: { Name: 'stopped' } }));
    expect(await check(1)).toMatchObject({ action: 'stopped', status: 'stopped' });
    expect(cloudwatch).toHaveReceivedCommand(DescribeAlarmsCommand);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });
});

describe('the checker input', () => {
  it('a schedule passes the attempt; by hand it is left out', () => {
    expect(parseCheckRequest({ instanceId, attempt: 2 })).toEqual({ instanceId, attempt: 2 });
    expect(parseCheckRequest({ instanceId })).toEqual({ instanceId, attempt: undefined });
    expect(() => parseCheckRequest({ instanceId: 'web-1' })).toThrow('not an EC2 instance id');
  });
});

describe('the diagnosis when IAM will not answer', () => {
  it('a profile deleted while still associated is diagnosed as a role lacking the policies, and alerted at once', async () => {
    iam.on(GetInstanceProfileCommand).rejects(awsError('NoSuchEntity', 'Instance Profile cwap-dev-agent cannot be found.'));
    expect(await check(1)).toMatchObject({ action: 'alerted', diagnosis: 'role-missing-policies' });
  });

  it('a role lookup IAM denies is left out: the check still diagnoses and retries instead of failing', async () => {
    iam.on(GetInstanceProfileCommand).rejects(awsError('AccessDenied', 'explicit deny in a service control policy'));
    expect(await check(1)).toMatchObject({ action: 'retry', diagnosis: 'no-datapoints' });
  });
});

