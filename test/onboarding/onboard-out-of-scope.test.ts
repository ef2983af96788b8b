import { describe, expect, it } from 'vitest';
import { AssociateIamInstanceProfileCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { CreateScheduleCommand } from '@aws-sdk/client-scheduler';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import {
  awsError,
  ec2,
  ec2Instance,
  expectInstanceUntouched,
  givenInstance,
  instanceId,
  lastRecordWritten,
  existingRecord,
  now,
  recordsWritten,
  resetAws,
  retryInput,
  runningEvent,
  scheduler,
  ssm,
  steps,
  table,
  useOnboardScenario,
} from './onboard-harness.js';

const onboard = useOnboardScenario();
/** A gone record's expiry with the default GONE_RECORD_RETENTION_DAYS (90), epoch seconds. */
const expiryOfGoneNow = Math.floor(now.getTime() / 1000) + 90 * 86_400;

describe('the instance is terminated while it is being onboarded', () => {
  it('associating the profile fails with InvalidInstanceID.NotFound: recorded as gone, no command, the invocation succeeds', async () => {
    ec2.on(AssociateIamInstanceProfileCommand).rejects(awsError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`));

    const result = await onboard.invoke(runningEvent());

    expect(result).toMatchObject({ instanceId, status: 'gone' });
    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 1);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);
    const record = lastRecordWritten();
    expect(record.status).toBe('gone');
    expect(record.reason).toContain('InvalidInstanceID.NotFound');
    expect(record.lastError).toBeUndefined();
    expect(steps(record)).toEqual(['claimed', 'gone']);
    expect(record.expiresAt).toBe(expiryOfGoneNow);
  });

  it('IncorrectInstanceState (stopping, or still pending) is not "gone": recorded as an error, and Lambda\'s retry finds it stopped', async () => {
    ec2.on(AssociateIamInstanceProfileCommand).rejects(awsError('IncorrectInstanceState', `The instance '${instanceId}' is not in the 'running' or 'stopped' states.`));

    await expect(onboard.invoke(runningEvent())).rejects.toThrow('is not in the');
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(lastRecordWritten()).toMatchObject({ status: 'error', lastError: expect.stringContaining('IncorrectInstanceState') });

    givenInstance(ec2Instance({ state: 'stopped' }));
    const retried = await onboard.invoke(runningEvent());
    expect(retried).toMatchObject({ status: 'stopped' });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });
});

describe('the instance is no longer running when onboarding looks at it', () => {
  it.each([
    ['terminated', 'gone', 'instance is terminated'],
    ['shutting-down', 'gone', 'instance is shutting-down'],
    ['stopped', 'stopped', 'instance is stopped, no longer running'],
    ['stopping', 'stopped', 'instance is stopping, no longer running'],
  ] as const)('a %s instance is recorded as %s and left alone', async (state, status, reason) => {
    givenInstance(ec2Instance({ state }));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe(status);
    expectInstanceUntouched();
    expect(recordsWritten()).toHaveLength(1);
    expect(lastRecordWritten()).toMatchObject({ instanceId, status, reason });
    if (status === 'gone') expect(lastRecordWritten().expiresAt).toBe(expiryOfGoneNow);
    else expect(lastRecordWritten()).not.toHaveProperty('expiresAt');
  });

  it('an EC2 event for an instance DescribeInstances does not show yet fails, so Lambda retries; nothing is changed or written', async () => {
    ec2.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`));

    await expect(onboard.invoke(runningEvent())).rejects.toMatchObject({ name: 'InstanceNotYetVisibleError' });

    expectInstanceUntouched();
    expect(recordsWritten()).toEqual([]);
  });

  it('an empty DescribeInstances answer to an EC2 event is treated the same way', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });

    await expect(onboard.invoke(runningEvent())).rejects.toMatchObject({ name: 'InstanceNotYetVisibleError' });
    expectInstanceUntouched();
  });

  it('a scheduled retry for an instance EC2 no longer knows records it gone', async () => {
    table.seed(existingRecord({ status: 'waiting-for-ssm', ssmAttempts: 1 }));
    ec2.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`));

    const result = await onboard.invoke(retryInput(2));

    expect(result.status).toBe('gone');
    expectInstanceUntouched();
    expect(lastRecordWritten()).toMatchObject({ status: 'gone', reason: expect.stringContaining('EC2 does not know this instance'), expiresAt: expiryOfGoneNow });
  });

  it('a record gone on a transient answer that EC2 then shows running is onboarded, and no write keeps the expiry', async () => {
    table.seed(existingRecord({ status: 'gone', reason: 'EC2 does not know this instance', expiresAt: expiryOfGoneNow - 86_400 }));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('checking');
    expect(recordsWritten().length).toBeGreaterThan(1);
    for (const record of recordsWritten()) expect(record, record.status).not.toHaveProperty('expiresAt');
  });
});

describe('opt-out and opt-in tags', () => {
  it('an instance tagged cw-autopilot:skip=true is skipped, and the record names the tag', async () => {
    givenInstance(ec2Instance({ tags: { 'cw-autopilot:skip': 'true' } }));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('skipped');
    expectInstanceUntouched();
    expect(lastRecordWritten()).toMatchObject({ status: 'skipped', reason: 'opt-out tag cw-autopilot:skip=true is set' });
  });

  it('the opt-out value is compared without case (TRUE skips too), another value does not skip', async () => {
    givenInstance(ec2Instance({ tags: { 'cw-autopilot:skip': 'TRUE' } }));
    await onboard.invoke(runningEvent());
    expect(lastRecordWritten().status).toBe('skipped');

    resetAws();
    givenInstance(ec2Instance({ tags: { 'cw-autopilot:skip': 'false' } }));
    await onboard.invoke(runningEvent());
    expect(lastRecordWritten().status).toBe('checking');
  });

  it('with OPT_IN_TAG=monitoring=on, an instance without the tag is skipped, and the record names the tag', async () => {
    await onboard.restart({ OPT_IN_TAG: 'monitoring=on' });

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('skipped');
    expectInstanceUntouched();
    expect(lastRecordWritten()).toMatchObject({ status: 'skipped', reason: 'opt-in tag monitoring=on is required and missing' });
  });

  it('with OPT_IN_TAG=monitoring=on, an instance tagged monitoring=on is onboarded', async () => {
    await onboard.restart({ OPT_IN_TAG: 'monitoring=on' });
    givenInstance(ec2Instance({ tags: { monitoring: 'on' } }));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('checking');
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
  });

  it('an opted-in instance that is also opted out is skipped', async () => {
    await onboard.restart({ OPT_IN_TAG: 'monitoring' });
    givenInstance(ec2Instance({ tags: { monitoring: 'yes', 'cw-autopilot:skip': 'true' } }));

    await onboard.invoke(runningEvent());

    expectInstanceUntouched();
    expect(lastRecordWritten()).toMatchObject({ status: 'skipped', reason: expect.stringContaining('opt-out') });
  });
});
