import { beforeEach, describe, expect, it } from 'vitest';
import { DeleteAlarmsCommand, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { DeleteScheduleCommand } from '@aws-sdk/client-scheduler';
import { offboardingOutcome, runOffboarding } from '../../shared/offboarding.js';
import { parseOffboardRequest } from '../../shared/triggers.js';
import { awsError, cloudwatch, ec2, ec2Instance, givenInstance, resetAws, scheduler, table } from './check-harness.js';
import { instanceId, settings } from './fixtures.js';

const stateChange = (state: string) => ({
  source: 'aws.ec2',
  'detail-type': 'EC2 Instance State-change Notification',
  detail: { 'instance-id': instanceId, state },
});
const memoryAlarm = `cwap-dev-${instanceId}-MEMORY_USED-missing`;

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
