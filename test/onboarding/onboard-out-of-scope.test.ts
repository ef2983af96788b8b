import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AssociateIamInstanceProfileCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { CreateScheduleCommand } from '@aws-sdk/client-scheduler';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import {
  awsError,
  coldStart,
  ec2,
  ec2Instance,
  expectInstanceUntouched,
  expectProfileNeverRemovedOrReplaced,
  givenInstance,
  instanceId,
  lastRecordWritten,
  recordsWritten,
  resetAws,
  restoreWorld,
  runningEvent,
  scheduler,
  ssm,
  steps,
} from './onboard-harness.js';

let onboard: Awaited<ReturnType<typeof coldStart>>;

beforeEach(async () => {
  resetAws();
  onboard = await coldStart();
});

afterEach(() => {
  expectProfileNeverRemovedOrReplaced();
  restoreWorld();
});

describe('the instance is terminated while it is being onboarded', () => {
  it.each([
    ['IncorrectInstanceState', `The instance '${instanceId}' is not in the 'running' or 'stopped' states.`],
    ['InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`],
  ])('associating the profile fails with %s: recorded as gone, no command, the invocation succeeds', async (code, message) => {
    ec2.on(AssociateIamInstanceProfileCommand).rejects(awsError(code, message));

    const result = await onboard.invoke(runningEvent());

    expect(result).toMatchObject({ instanceId, status: 'gone' });
    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 1);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);
    const record = lastRecordWritten();
    expect(record.status).toBe('gone');
    expect(record.reason).toContain(code);
    expect(record.lastError).toBeUndefined();
    expect(steps(record)).toEqual(['claimed', 'gone']);
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
  });

  it('an instance EC2 does not know (InvalidInstanceID.NotFound) is recorded as gone', async () => {
    ec2.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('gone');
    expectInstanceUntouched();
    expect(lastRecordWritten()).toMatchObject({ status: 'gone', reason: expect.stringContaining('EC2 does not know this instance') });
  });

  it('an empty DescribeInstances answer is recorded as gone too', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });

    await onboard.invoke(runningEvent());

    expectInstanceUntouched();
    expect(lastRecordWritten().status).toBe('gone');
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
    onboard = await coldStart({ OPT_IN_TAG: 'monitoring=on' });

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('skipped');
    expectInstanceUntouched();
    expect(lastRecordWritten()).toMatchObject({ status: 'skipped', reason: 'opt-in tag monitoring=on is required and missing' });
  });

  it('with OPT_IN_TAG=monitoring=on, an instance tagged monitoring=on is onboarded', async () => {
    onboard = await coldStart({ OPT_IN_TAG: 'monitoring=on' });
    givenInstance(ec2Instance({ tags: { monitoring: 'on' } }));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('checking');
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
  });

  it('an opted-in instance that is also opted out is skipped', async () => {
    onboard = await coldStart({ OPT_IN_TAG: 'monitoring' });
    givenInstance(ec2Instance({ tags: { monitoring: 'yes', 'cw-autopilot:skip': 'true' } }));

    await onboard.invoke(runningEvent());

    expectInstanceUntouched();
    expect(lastRecordWritten()).toMatchObject({ status: 'skipped', reason: expect.stringContaining('opt-out') });
  });
});
