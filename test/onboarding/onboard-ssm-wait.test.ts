import { describe, expect, it } from 'vitest';
import { AssociateIamInstanceProfileCommand } from '@aws-sdk/client-ec2';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand } from '@aws-sdk/client-scheduler';
import {
  agentProfileArn,
  atSecondsFromNow,
  awsError,
  ec2,
  ec2Instance,
  existingRecord,
  givenInstance,
  givenSsmPing,
  instanceId,
  lastRecordWritten,
  onlySchedule,
  recordsWritten,
  retryInput,
  runningEvent,
  scheduler,
  ssm,
  stackEnv,
  steps,
  table,
  useOnboardScenario,
} from './onboard-harness.js';

  // SSM_MAX_ATTEMPTS is 3 and SSM_RETRY_DELAY_SECONDS 120 in these scenarios.
const onboard = useOnboardScenario();

/** A record left by attempts that found the instance not online yet, its profile done. */
function waitingForSsm(ssmAttempts: number) {
  return existingRecord({
    status: 'waiting-for-ssm',
    ssmAttempts,
    profilePath: 'associated-agent-profile',
    profileArn: agentProfileArn,
  });
}

describe('Systems Manager does not see the instance yet', () => {
  it('SendCommand answers InvalidInstanceId although SSM said Online: a retry of onboarding is scheduled', async () => {
    ssm.on(SendCommandCommand).rejects(awsError('InvalidInstanceId', 'Instances [[i-0abc1234def567890]] not in a valid state for account 123456789012'));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('waiting-for-ssm');
    expect(scheduler).toHaveReceivedCommandExactlyOnceWith(CreateScheduleCommand, {
      Name: `cwap-dev-onboard-${instanceId}-2`,
      ScheduleExpression: atSecondsFromNow(120),
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      Target: expect.objectContaining({ Arn: stackEnv.ONBOARD_FUNCTION_ARN, RoleArn: stackEnv.SCHEDULER_ROLE_ARN }),
    });
    expect(onlySchedule().input).toEqual({ instanceId, attempt: 2 });
    const record = lastRecordWritten();
    expect(record).toMatchObject({ status: 'waiting-for-ssm', ssmAttempts: 1, profilePath: 'associated-agent-profile' });
    expect(record.commandId).toBeUndefined();
    expect(record.lastError).toBeUndefined();
    expect(record.history.at(-1)).toMatchObject({ step: 'waiting-for-ssm', detail: expect.stringContaining('InvalidInstanceId') });
  });

  it.each([
    ['has never registered', undefined],
    ['lost its connection', 'ConnectionLost'],
  ] as const)('an instance whose SSM agent %s gets no command, and a retry of onboarding', async (_, pingStatus) => {
    givenSsmPing(pingStatus);

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('waiting-for-ssm');
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(onlySchedule()).toEqual({
      name: `cwap-dev-onboard-${instanceId}-2`,
      expression: atSecondsFromNow(120),
      targetArn: stackEnv.ONBOARD_FUNCTION_ARN,
      input: { instanceId, attempt: 2 },
    });
    expect(lastRecordWritten()).toMatchObject({ status: 'waiting-for-ssm', ssmAttempts: 1 });
    expect(lastRecordWritten().history.at(-1)?.detail).toContain(`ping status ${pingStatus ?? 'NotRegistered'}`);
  });

  it('the scheduled retry finds the instance online: installs without associating the profile again', async () => {
    table.seed(waitingForSsm(1));

    const result = await onboard.invoke(retryInput(2));

    expect(result).toMatchObject({ action: 'onboard', status: 'checking' });
    expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(onlySchedule()).toMatchObject({ targetArn: stackEnv.CHECK_FUNCTION_ARN, input: { instanceId, attempt: 1 } });
    expect(lastRecordWritten()).toMatchObject({ status: 'checking', commandId: 'cmd-0001', ssmAttempts: 1 });
  });

  it('the scheduled retry still finds it offline: the next retry is scheduled', async () => {
    table.seed(waitingForSsm(1));
    givenSsmPing(undefined);

    await onboard.invoke(retryInput(2));

    expect(onlySchedule()).toMatchObject({ name: `cwap-dev-onboard-${instanceId}-3`, input: { instanceId, attempt: 3 } });
    expect(lastRecordWritten()).toMatchObject({ status: 'waiting-for-ssm', ssmAttempts: 2 });
  });

  it('after SSM_MAX_ATTEMPTS looks it stops waiting and hands the instance to the checker a minute later', async () => {
    table.seed(waitingForSsm(2));
    givenSsmPing('ConnectionLost');

    const result = await onboard.invoke(retryInput(3));

    expect(result.status).toBe('checking');
    expect(onlySchedule()).toEqual({
      name: `cwap-dev-check-${instanceId}-1`,
      expression: atSecondsFromNow(60),
      targetArn: stackEnv.CHECK_FUNCTION_ARN,
      input: { instanceId, attempt: 1 },
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    const record = lastRecordWritten();
    expect(record).toMatchObject({ status: 'checking', reason: 'ssm-unreachable', ssmAttempts: 3 });
    expect(record.history.slice(-2)).toMatchObject([
      {
        step: 'ssm-unreachable',
        detail: 'not online in Systems Manager after 3 looks (last ping status ConnectionLost); handed over to the checker',
      },
      { step: 'check-scheduled' },
    ]);
  });

  it('an instance that never comes online: the event and two retries, then the checker (the whole chain)', async () => {
    givenSsmPing(undefined);

    await onboard.invoke(runningEvent());
    await onboard.invoke(retryInput(2));
    await onboard.invoke(retryInput(3));

    expect(scheduler.commandCalls(CreateScheduleCommand).map((call) => call.args[0].input.Name)).toEqual([
      `cwap-dev-onboard-${instanceId}-2`,
      `cwap-dev-onboard-${instanceId}-3`,
      `cwap-dev-check-${instanceId}-1`,
    ]);
    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 1);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(table.get(instanceId)).toMatchObject({ status: 'checking', reason: 'ssm-unreachable', ssmAttempts: 3 });
    expect(steps(lastRecordWritten()).filter((step) => step === 'waiting-for-ssm')).toHaveLength(2);
  });

  it('a retry that is not the current one (already made, or for an older attempt) changes nothing', async () => {
    table.seed(waitingForSsm(2));

    const result = await onboard.invoke(retryInput(2));

    expect(result.action).toBe('ignore');
    expect(recordsWritten()).toEqual([]);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);
  });

  it('a retry for an instance that was restarted since continues with the new launch', async () => {
    table.seed(waitingForSsm(1));
    givenInstance(ec2Instance({ launchedAt: new Date('2025-03-04T09:59:40.000Z'), profileArn: agentProfileArn }));

    const result = await onboard.invoke(retryInput(2));

    expect(result).toMatchObject({ action: 'onboard', status: 'checking' });
    expect(lastRecordWritten()).toMatchObject({ launchTime: '2025-03-04T09:59:40.000Z', ssmAttempts: 0, profilePath: 'agent-profile-present' });
  });
});
