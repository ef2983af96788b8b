import { beforeEach, describe, expect, it } from 'vitest';
import { DeleteAlarmsCommand, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { DeleteScheduleCommand } from '@aws-sdk/client-scheduler';
import { runOffboarding } from '../../shared/checking.js';
import { parseOffboardRequest } from '../../shared/triggers.js';
import { awsError, cloudwatch, resetAws, scheduler, table } from './check-harness.js';
import { instanceId, settings } from './fixtures.js';

const terminated = (state: string) => ({
  source: 'aws.ec2',
  'detail-type': 'EC2 Instance State-change Notification',
  detail: { 'instance-id': instanceId, state },
});

beforeEach(() => resetAws({ status: 'healthy', checkAttempts: 1 }));

describe('offboarding a terminated instance', () => {
  it('the terminated event deletes the alarms, the pending schedules and records the instance gone', async () => {
    cloudwatch.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [{ AlarmName: `cwap-dev-${instanceId}-MEMORY_USED-missing` }] });
    const result = await runOffboarding(parseOffboardRequest(terminated('terminated')).instanceId, settings);
    expect(result).toMatchObject({ alarms: [`cwap-dev-${instanceId}-MEMORY_USED-missing`], status: 'gone' });
    expect(cloudwatch).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [`cwap-dev-${instanceId}-MEMORY_USED-missing`] });
    expect(scheduler).toHaveReceivedCommandWith(DeleteScheduleCommand, { Name: `cwap-dev-check-${instanceId}-2`, GroupName: 'default' });
    expect(table.record).toMatchObject({ status: 'gone', reason: 'instance terminated' });
  });

  it('an instance the product never recorded still has its alarms looked up, and no record is created', async () => {
    table.record = undefined;
    const result = await runOffboarding(instanceId, settings);
    expect(result.status).toBeUndefined();
    expect(cloudwatch).toHaveReceivedCommand(DescribeAlarmsCommand);
    expect(table.writes).toEqual([]);
  });

  it('a scheduler failure other than "not found" is not swallowed', async () => {
    scheduler.on(DeleteScheduleCommand).rejects(awsError('AccessDeniedException', 'no'));
    await expect(runOffboarding(instanceId, settings)).rejects.toThrow('no');
  });

  it('a state-change event that is not a termination cleans nothing', () => {
    expect(parseOffboardRequest(terminated('running'))).toEqual({ instanceId, ignore: 'state running is not a termination' });
    expect(parseOffboardRequest({ instanceId })).toEqual({ instanceId });
  });
});
