import { describe, expect, it } from 'vitest';
import { AssociateIamInstanceProfileCommand } from '@aws-sdk/client-ec2';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import { GetCommand, type GetCommandInput } from '@aws-sdk/lib-dynamodb';
import type { OnboardingStatus } from '../../shared/state/instance-record.js';
import {
  agentProfileArn,
  atSecondsFromNow,
  dynamodb,
  ec2,
  ec2Instance,
  existingRecord,
  expectInstanceUntouched,
  givenInstance,
  instanceId,
  lastRecordWritten,
  launchTime,
  onlySchedule,
  recordsWritten,
  runningEvent,
  ssm,
  stackEnv,
  steps,
  table,
  useOnboardScenario,
} from './onboard-harness.js';

const onboard = useOnboardScenario();

const restartedAt = new Date('2025-03-04T09:59:45.000Z');
const earlierLaunch = '2025-03-01T08:00:00.000Z';

describe('two invocations race for the same instance', () => {
  it('the one that loses the claim (ConditionalCheckFailedException) changes nothing on the instance and ends quietly', async () => {
    const theirClaim = existingRecord({ status: 'onboarding', version: 1, updatedAt: '2025-03-04T09:59:59.000Z' });
    // The other invocation claims the instance between this one's read and its claim.
    dynamodb.on(GetCommand).callsFake((input: GetCommandInput) => {
      const seen = table.read(input);
      table.seed(theirClaim);
      return seen;
    });

    const result = await onboard.invoke(runningEvent());

    expect(result).toEqual({ instanceId, action: 'ignore', status: undefined, reason: 'another invocation claimed this instance first' });
    expect(recordsWritten()).toHaveLength(1);
    expectInstanceUntouched();
    expect(table.get(instanceId)).toEqual(theirClaim);
  });

  it('one that loses a later write (StaleRecordError) stops before sending the install command', async () => {
    ec2.on(AssociateIamInstanceProfileCommand).callsFake(() => {
      // Another invocation writes the record while this one associates the profile.
      const current = table.get(instanceId);
      if (current) table.seed({ ...current, version: current.version + 1 });
      return { IamInstanceProfileAssociation: { IamInstanceProfile: { Arn: agentProfileArn } } };
    });

    await expect(onboard.invoke(runningEvent())).rejects.toBeInstanceOf(onboard.StaleRecordError);

    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(table.get(instanceId)).toMatchObject({ status: 'onboarding', version: 2 });
  });
});

describe('the same launch seen again (duplicate or late event)', () => {
  it.each<OnboardingStatus>(['checking', 'installing', 'waiting-for-ssm', 'healthy', 'alerting', 'alerted'])(
    'an instance already %s for this LaunchTime: nothing is sent and nothing is written',
    async (status) => {
      table.seed(existingRecord({ status, profilePath: 'associated-agent-profile', commandId: status === 'waiting-for-ssm' ? undefined : 'cmd-0001' }));

      const result = await onboard.invoke(runningEvent());

      expect(result).toMatchObject({ action: 'ignore', status });
      expectInstanceUntouched();
      expect(recordsWritten()).toEqual([]);
    },
  );

  it('an instance another invocation claimed a minute ago is left to it', async () => {
    table.seed(existingRecord({ status: 'onboarding', updatedAt: '2025-03-04T09:59:00.000Z' }));

    const result = await onboard.invoke(runningEvent());

    expect(result).toMatchObject({ action: 'ignore', reason: 'another invocation is onboarding this instance' });
    expectInstanceUntouched();
    expect(recordsWritten()).toEqual([]);
  });

  it('a claim abandoned more than 15 minutes ago (the invocation died) is resumed from its last step', async () => {
    table.seed(
      existingRecord({ status: 'onboarding', updatedAt: '2025-03-04T09:40:00.000Z', profilePath: 'associated-agent-profile', profileArn: agentProfileArn }),
    );

    const result = await onboard.invoke(runningEvent());

    expect(result).toMatchObject({ action: 'onboard', status: 'checking', reason: 'resuming a stalled onboarding (onboarding, untouched since 2025-03-04T09:40:00.000Z)' });
    expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
  });
});

describe('an onboarded instance is started again (new LaunchTime)', () => {
  it.each<OnboardingStatus>(['healthy', 'checking', 'alerted', 'stopped'])(
    'was %s with the agent installed: a metric check is scheduled, nothing is reinstalled',
    async (status) => {
      table.seed(
        existingRecord({
          status,
          launchTime: earlierLaunch,
          profilePath: 'associated-agent-profile',
          commandId: 'cmd-0001',
          commandSentAt: '2025-03-01T08:01:00.000Z',
          checkAttempts: 2,
        }),
      );
      givenInstance(ec2Instance({ launchedAt: restartedAt, profileArn: agentProfileArn }));

      const result = await onboard.invoke(runningEvent());

      expect(result).toMatchObject({ action: 'recheck', status: 'checking' });
      expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
      expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
      expect(onlySchedule()).toEqual({
        name: `cwap-dev-check-${instanceId}-1`,
        expression: atSecondsFromNow(240),
        targetArn: stackEnv.CHECK_FUNCTION_ARN,
        input: { instanceId, attempt: 1 },
      });
      const record = lastRecordWritten();
      expect(record).toMatchObject({ status: 'checking', launchTime: restartedAt.toISOString(), commandId: 'cmd-0001', checkAttempts: 0 });
      expect(steps(record).slice(-2)).toEqual(['restarted', 'check-scheduled']);
    },
  );

  it('was never sent the install command (waiting for SSM): it is onboarded afresh', async () => {
    table.seed(existingRecord({ status: 'waiting-for-ssm', launchTime: earlierLaunch, ssmAttempts: 2, profilePath: 'associated-agent-profile' }));
    givenInstance(ec2Instance({ launchedAt: restartedAt, profileArn: agentProfileArn }));

    const result = await onboard.invoke(runningEvent());

    expect(result).toMatchObject({ action: 'onboard', status: 'checking' });
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(lastRecordWritten()).toMatchObject({ launchTime: restartedAt.toISOString(), ssmAttempts: 0, profilePath: 'agent-profile-present' });
  });
});

describe('the record is what the table holds for that instance', () => {
  it('reads it strongly consistent by instance id from STATE_TABLE', async () => {
    await onboard.invoke(runningEvent());

    expect(dynamodb).toHaveReceivedCommandWith(GetCommand, { TableName: 'cwap-dev-records', Key: { recordKey: `123456789012:us-east-1:${instanceId}` }, ConsistentRead: true });
    expect(lastRecordWritten().launchTime).toBe(launchTime.toISOString());
  });
});
