import { beforeEach, describe, expect, it } from 'vitest';
import { DeleteAlarmsCommand, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { DeleteScheduleCommand } from '@aws-sdk/client-scheduler';
import { offboardingOutcome, runOffboarding } from '../../shared/offboarding/offboarding.js';
import { parseSettings } from '../../shared/config/settings.js';
import { parseOffboardRequest } from '../../shared/input/triggers.js';
import { awsError, cloudwatch, ec2, ec2Instance, givenInstance, resetAws, scheduler, table } from './check-harness.js';
import { env, instanceId, settings } from './fixtures.js';

const stateChange = (state: string) => ({
  source: 'aws.ec2',
  'detail-type': 'EC2 Instance State-change Notification',
  detail: { 'instance-id': instanceId, state },
});
const memoryAlarm = `cwap-dev-${instanceId}-MEMORY_USED-missing`;
const now = new Date('2026-01-10T12:00:00.000Z');
const daysFromNow = (days: number) => Math.floor(now.getTime() / 1000) + days * 86_400;

beforeEach(() => {
  resetAws({ status: 'healthy', checkAttempts: 1 });
  cloudwatch.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [{ AlarmName: memoryAlarm }] });
});

describe('offboarding a terminated instance', () => {
  it('the terminated event deletes the alarms, the pending schedules and records the instance gone, without asking EC2', async () => {
    const result = await runOffboarding(parseOffboardRequest(stateChange('terminated')), settings);
    expect(result).toMatchObject({ action: 'cleaned', alarms: [memoryAlarm], status: 'gone' });
    expect(cloudwatch).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [memoryAlarm] });
    expect(scheduler).toHaveReceivedCommandWith(DeleteScheduleCommand, { Name: `cwap-dev-check-${instanceId}-2`, GroupName: 'default' });
    expect(table.record).toMatchObject({ status: 'gone', reason: 'instance terminated' });
    expect(ec2).not.toHaveReceivedCommand(DescribeInstancesCommand);
  });

  it('the gone record expires (DynamoDB TTL attribute expiresAt, epoch seconds) GONE_RECORD_RETENTION_DAYS after the termination', async () => {
    await runOffboarding(parseOffboardRequest(stateChange('terminated')), settings, now);
    expect(table.record).toMatchObject({ status: 'gone', expiresAt: daysFromNow(90) });

    resetAws({ status: 'healthy', checkAttempts: 1 });
    await runOffboarding({ instanceId, state: 'terminated' }, { ...settings, goneRecordRetentionDays: 7 }, now);
    expect(table.record?.expiresAt).toBe(daysFromNow(7));
  });

  it('a second termination event keeps the expiry the record got when it became gone', async () => {
    resetAws({ status: 'gone', reason: 'instance terminated', expiresAt: daysFromNow(90) });
    await runOffboarding({ instanceId, state: 'terminated' }, settings, new Date(now.getTime() + 3_600_000));
    expect(table.writes).toHaveLength(1);
    expect(table.record).toMatchObject({ status: 'gone', expiresAt: daysFromNow(90) });
  });

  it('an instance the product never recorded still has its alarms looked up, and no record is created', async () => {
    table.record = undefined;
    const result = await runOffboarding({ instanceId, state: 'terminated' }, settings);
    expect(result.status).toBeUndefined();
    expect(cloudwatch).toHaveReceivedCommand(DescribeAlarmsCommand);
    expect(table.writes).toEqual([]);
  });

  it('a scheduler failure other than "not found" is not swallowed', async () => {
    scheduler.on(DeleteScheduleCommand).rejects(awsError('AccessDeniedException', 'no'));
    await expect(runOffboarding({ instanceId, state: 'terminated' }, settings)).rejects.toThrow('no');
  });
});

describe('offboarding a stopped instance', () => {
  it('a stop deletes the alarms (they would report the stopped agent as missing data) and records it stopped', async () => {
    givenInstance(ec2Instance({ State: { Name: 'stopped' } }));
    const result = await runOffboarding(parseOffboardRequest(stateChange('stopped')), settings);
    expect(result).toMatchObject({ action: 'cleaned', status: 'stopped', alarms: [memoryAlarm] });
    expect(cloudwatch).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [memoryAlarm] });
    expect(table.record).toMatchObject({ status: 'stopped', reason: 'instance stopped', alarmNames: undefined });
    expect(table.record?.expiresAt).toBeUndefined();
  });

  it('a record that is no longer gone loses its expiry (a stop recorded after a gone one)', async () => {
    resetAws({ status: 'gone', reason: 'instance terminated', expiresAt: daysFromNow(90) });
    givenInstance(ec2Instance({ State: { Name: 'stopped' } }));
    await runOffboarding(parseOffboardRequest(stateChange('stopped')), parseSettings({ ...env, GONE_RECORD_RETENTION_DAYS: '30' }), now);
    expect(table.record?.status).toBe('stopped');
    expect(table.record).not.toHaveProperty('expiresAt');
  });

  it('a stop event that arrives after the instance was started again deletes nothing and writes nothing', async () => {
    givenInstance(ec2Instance({ State: { Name: 'running' } }));
    const result = await runOffboarding(parseOffboardRequest(stateChange('stopped')), settings);
    expect(result).toMatchObject({ action: 'ignore', reason: 'instance is running now: nothing to clean up' });
    expect(cloudwatch).not.toHaveReceivedCommand(DeleteAlarmsCommand);
    expect(scheduler).not.toHaveReceivedCommand(DeleteScheduleCommand);
    expect(table.writes).toEqual([]);
  });

  it('by hand, EC2 says what happened: stopped, terminated, or still running', () => {
    const byHand = parseOffboardRequest({ instanceId });
    expect(byHand).toEqual({ instanceId });
    expect(offboardingOutcome(byHand, 'stopping')).toEqual({ status: 'stopped', reason: 'instance stopped' });
    expect(offboardingOutcome(byHand, 'shutting-down')).toEqual({ status: 'gone', reason: 'instance terminated' });
    expect(offboardingOutcome(byHand, undefined)).toEqual({ status: 'gone', reason: 'instance terminated' });
    expect(offboardingOutcome(byHand, 'pending').status).toBeUndefined();
  });
});

describe('offboarding input', () => {
  it('a state-change event that is neither a stop nor a termination cleans nothing', () => {
    expect(parseOffboardRequest(stateChange('running'))).toEqual({ instanceId, ignore: 'state running is neither a stop nor a termination' });
    expect(parseOffboardRequest(stateChange('shutting-down'))).toEqual({ instanceId, state: 'terminated' });
    expect(parseOffboardRequest(stateChange('stopping'))).toEqual({ instanceId, state: 'stopped' });
  });
});
