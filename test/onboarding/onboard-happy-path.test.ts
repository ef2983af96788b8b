import { describe, expect, it } from 'vitest';
import { AssociateIamInstanceProfileCommand } from '@aws-sdk/client-ec2';
import { AttachRolePolicyCommand, GetInstanceProfileCommand } from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand } from '@aws-sdk/client-scheduler';
import {
  agentProfileArn,
  atSecondsFromNow,
  awsError,
  ec2,
  ec2Instance,
  givenInstance,
  iam,
  instanceId,
  lastRecordWritten,
  launchTime,
  onlySchedule,
  recordsWritten,
  runningEvent,
  scheduler,
  ssm,
  stackEnv,
  steps,
  table,
  useOnboardScenario,
} from './onboard-harness.js';

const onboard = useOnboardScenario();

describe('onboarding a new instance', () => {
  it('a Linux instance launched without a profile gets the agent profile, the Linux install command and a check', async () => {
    const result = await onboard.invoke(runningEvent());

    expect(result).toEqual({ instanceId, action: 'onboard', status: 'checking', reason: 'first time seen' });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(AssociateIamInstanceProfileCommand, {
      InstanceId: instanceId,
      IamInstanceProfile: { Name: 'cwap-dev-agent' },
    });
    expect(ssm).toHaveReceivedCommandWith(DescribeInstanceInformationCommand, {
      Filters: [{ Key: 'InstanceIds', Values: [instanceId] }],
    });
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, {
      DocumentName: 'cwap-dev-install-and-configure',
      InstanceIds: [instanceId],
      Parameters: { configParameter: ['AmazonCloudWatch-cwap-dev-linux'] },
    });
    expect(scheduler).toHaveReceivedCommandExactlyOnceWith(CreateScheduleCommand, {
      Name: `cwap-dev-check-${instanceId}-1`,
      GroupName: 'cwap-dev',
      ScheduleExpression: atSecondsFromNow(240),
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      Target: expect.objectContaining({ Arn: stackEnv.CHECK_FUNCTION_ARN, RoleArn: stackEnv.SCHEDULER_ROLE_ARN }),
    });
    expect(onlySchedule().input).toEqual({ instanceId, attempt: 1 });
    expect(iam).not.toHaveReceivedCommand(GetInstanceProfileCommand);

    const record = lastRecordWritten();
    expect(record).toMatchObject({
      instanceId,
      status: 'checking',
      os: 'linux',
      name: 'web-1',
      launchTime: launchTime.toISOString(),
      profilePath: 'associated-agent-profile',
      profileArn: agentProfileArn,
      commandId: 'cmd-0001',
      commandSentAt: '2025-03-04T10:00:00.000Z',
      checkAttempts: 0,
    });
    expect(record.lastError).toBeUndefined();
    expect(steps(record)).toEqual(['claimed', 'profile:associated-agent-profile', 'install-command-sent', 'check-scheduled']);
    expect(table.get(instanceId)).toEqual(record);
  });

  it('every write is conditional on the version read, starting with "must not exist yet"', async () => {
    await onboard.invoke(runningEvent());

    const versions = recordsWritten().map((record) => record.version);
    expect(versions).toEqual([1, 2, 3, 4]);
  });

  it('a Windows instance gets the Windows config and its check later by the Windows grace period', async () => {
    givenInstance(ec2Instance({ windows: true }));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('checking');
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, {
      Parameters: { configParameter: ['AmazonCloudWatch-cwap-dev-windows'] },
    });
    expect(onlySchedule()).toMatchObject({
      expression: atSecondsFromNow(240 + 600),
      targetArn: stackEnv.CHECK_FUNCTION_ARN,
      input: { instanceId, attempt: 1 },
    });
    expect(lastRecordWritten()).toMatchObject({ status: 'checking', os: 'windows' });
  });

  it('an instance that already has the agent profile is not associated again and gets the install', async () => {
    givenInstance(ec2Instance({ profileArn: agentProfileArn }));

    await onboard.invoke(runningEvent());

    expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
    expect(iam).not.toHaveReceivedCommand(AttachRolePolicyCommand);
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(lastRecordWritten()).toMatchObject({ status: 'checking', profilePath: 'agent-profile-present', profileArn: agentProfileArn });
  });
});

describe('scheduling the check', () => {
  it('a check that is already scheduled (ConflictException) counts as scheduled', async () => {
    scheduler
      .on(CreateScheduleCommand)
      .rejects(awsError('ConflictException', `Schedule cwap-dev-check-${instanceId}-1 already exists.`));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('checking');
    const record = lastRecordWritten();
    expect(record.status).toBe('checking');
    expect(record.lastError).toBeUndefined();
    expect(record.history.at(-1)).toMatchObject({ step: 'check-scheduled', detail: expect.stringContaining('already-scheduled') });
  });

  it('a check that is newly scheduled says so in the history', async () => {
    await onboard.invoke(runningEvent());

    expect(lastRecordWritten().history.at(-1)).toMatchObject({
      step: 'check-scheduled',
      detail: expect.stringMatching(/^scheduled for 2025-03-04T10:04:00.000Z/),
    });
  });
});
