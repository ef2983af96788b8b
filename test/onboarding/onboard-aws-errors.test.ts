import { describe, expect, it } from 'vitest';
import { AssociateIamInstanceProfileCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand } from '@aws-sdk/client-scheduler';
import { PutCommand, type PutCommandInput } from '@aws-sdk/lib-dynamodb';
import {
  agentProfileArn,
  awsError,
  dynamodb,
  ec2,
  ec2Instance,
  existingRecord,
  expectInstanceUntouched,
  givenInstance,
  instanceId,
  lastRecordWritten,
  recordsWritten,
  retryInput,
  runningEvent,
  scheduler,
  ssm,
  steps,
  table,
  useOnboardScenario,
} from './onboard-harness.js';

// aws-sdk-client-mock replaces `send`, so the SDK's own adaptive retries (5 attempts) do not run
// here: these scenarios are what onboarding does with an error that is still there after them.
const throttled = [
  ['ThrottlingException', 'Rate exceeded'],
  ['RequestLimitExceeded', 'Request limit exceeded.'],
] as const;

const onboard = useOnboardScenario();

describe('EC2 throttles DescribeInstances past the SDK retries', () => {
  it.each(throttled)('%s: the invocation fails with it (Lambda retries the event) and nothing is done to the instance', async (code, message) => {
    ec2.on(DescribeInstancesCommand).rejects(awsError(code, message));

    await expect(onboard.invoke(runningEvent())).rejects.toMatchObject({ name: code, message });

    expectInstanceUntouched();
  });

  // The error happens before the claim: without a record nobody could see why the instance is
  // not onboarded.
  it('the throttling is recorded: status error, lastError naming ThrottlingException', async () => {
    ec2.on(DescribeInstancesCommand).rejects(awsError('ThrottlingException', 'Rate exceeded'));

    await expect(onboard.invoke(runningEvent())).rejects.toThrow('Rate exceeded');

    expect(table.get(instanceId)).toMatchObject({ status: 'error', lastError: expect.stringContaining('ThrottlingException') });
  });
});

describe('a throttling error after the instance was claimed', () => {
  it('on AssociateIamInstanceProfile: recorded as error, the invocation fails, no command is sent', async () => {
    ec2.on(AssociateIamInstanceProfileCommand).rejects(awsError('RequestLimitExceeded', 'Request limit exceeded.'));

    await expect(onboard.invoke(runningEvent())).rejects.toThrow('Request limit exceeded.');

    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 1);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);
    const record = lastRecordWritten();
    expect(record).toMatchObject({ status: 'error', lastError: 'RequestLimitExceeded: Request limit exceeded.' });
    expect(steps(record)).toEqual(['claimed', 'error']);
  });

  // The failure must be written from the version the profile step saved, not the claim's, or
  // DynamoDB refuses it and the record stays 'onboarding' (the re-delivered event would then see
  // a fresh claim and ignore it).
  it('on SendCommand, after the profile step was saved: recorded as error naming the throttling', async () => {
    ssm.on(SendCommandCommand).rejectsOnce(awsError('ThrottlingException', 'Rate exceeded')).resolves({ Command: { CommandId: 'cmd-0001' } });

    await expect(onboard.invoke(runningEvent())).rejects.toThrow('Rate exceeded');
    expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);

    expect(table.get(instanceId)).toMatchObject({
      status: 'error',
      lastError: 'ThrottlingException: Rate exceeded',
      profilePath: 'associated-agent-profile',
    });
  });

  // Same, one step later: a record left 'installing' would never get its check.
  it('on CreateSchedule, after the install command was saved: recorded as error', async () => {
    scheduler.on(CreateScheduleCommand).rejectsOnce(awsError('ThrottlingException', 'Rate exceeded')).resolves({});

    await expect(onboard.invoke(runningEvent())).rejects.toThrow('Rate exceeded');

    expect(table.get(instanceId)).toMatchObject({ status: 'error', commandId: 'cmd-0001', lastError: 'ThrottlingException: Rate exceeded' });
  });

  it('the event re-delivered after an error resumes where it stopped: no second association', async () => {
    table.seed(
      existingRecord({
        status: 'error',
        lastError: 'ThrottlingException: Rate exceeded',
        profilePath: 'associated-agent-profile',
        profileArn: agentProfileArn,
      }),
    );

    const resumed = await onboard.invoke(runningEvent());

    expect(resumed).toMatchObject({ action: 'onboard', status: 'checking', reason: 'resuming after an error' });
    expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    const record = lastRecordWritten();
    expect(record.lastError).toBeUndefined();
    expect(steps(record)).toEqual(['claimed', 'claimed', 'install-command-sent', 'check-scheduled']);
  });

  it('the event re-delivered after an error that followed the install command schedules the check without reinstalling', async () => {
    table.seed(
      existingRecord({
        status: 'error',
        lastError: 'ThrottlingException: Rate exceeded',
        profilePath: 'associated-agent-profile',
        commandId: 'cmd-0001',
        commandSentAt: '2025-03-04T09:59:20.000Z',
      }),
    );

    await onboard.invoke(runningEvent());

    expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(scheduler).toHaveReceivedCommandTimes(CreateScheduleCommand, 1);
    expect(table.get(instanceId)).toMatchObject({ status: 'checking', commandId: 'cmd-0001' });
  });

  it('when recording the error fails too, the invocation still fails with the original error', async () => {
    ssm.on(SendCommandCommand).rejects(awsError('ThrottlingException', 'Rate exceeded'));
    const write = (input: PutCommandInput) => table.write(input);
    dynamodb
      .on(PutCommand)
      .callsFakeOnce(write)
      .callsFakeOnce(write)
      .rejects(awsError('ProvisionedThroughputExceededException', 'The level of configured provisioned throughput for the table was exceeded.'));

    await expect(onboard.invoke(runningEvent())).rejects.toMatchObject({ name: 'ThrottlingException' });

    expect(recordsWritten().at(-1)).toMatchObject({ status: 'error', lastError: 'ThrottlingException: Rate exceeded' });
  });

  // Lambda re-delivers a failed scheduled retry with the same input, and no state-change event
  // comes again for this launch: the retry itself must resume the 'error' record.
  it('during a scheduled retry: the re-delivered retry resumes instead of leaving the instance in error', async () => {
    table.seed(existingRecord({ status: 'waiting-for-ssm', ssmAttempts: 1, profilePath: 'associated-agent-profile', profileArn: agentProfileArn }));
    ssm.on(SendCommandCommand).rejectsOnce(awsError('ThrottlingException', 'Rate exceeded')).resolves({ Command: { CommandId: 'cmd-0001' } });

    await expect(onboard.invoke(retryInput(2))).rejects.toThrow('Rate exceeded');
    expect(table.get(instanceId)).toMatchObject({ status: 'error', ssmAttempts: 1 });

    await onboard.invoke(retryInput(2));

    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 2);
    expect(table.get(instanceId)).toMatchObject({ status: 'checking', commandId: 'cmd-0001' });
  });

  // The restart path saves 'onboarding' before scheduling the check: a failure there must be
  // recorded, or the re-delivered event sees a fresh claim and the instance is never checked.
  it('a restarted instance whose check could not be scheduled gets it when Lambda re-delivers the event', async () => {
    table.seed(existingRecord({ status: 'healthy', launchTime: '2025-03-01T08:00:00.000Z', commandId: 'cmd-0001', profilePath: 'associated-agent-profile' }));
    givenInstance(ec2Instance({ launchedAt: new Date('2025-03-04T09:59:45.000Z'), profileArn: agentProfileArn }));
    scheduler.on(CreateScheduleCommand).rejectsOnce(awsError('ThrottlingException', 'Rate exceeded')).resolves({});

    await expect(onboard.invoke(runningEvent())).rejects.toThrow('Rate exceeded');
    await onboard.invoke(runningEvent());

    expect(scheduler).toHaveReceivedCommandTimes(CreateScheduleCommand, 2);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(table.get(instanceId)).toMatchObject({ status: 'checking' });
  });
});
