import { describe, expect, it } from 'vitest';
import { AssociateIamInstanceProfileCommand, DescribeIamInstanceProfileAssociationsCommand } from '@aws-sdk/client-ec2';
import {
  AttachRolePolicyCommand,
  GetInstanceProfileCommand,
  ListAttachedRolePoliciesCommand,
  type InstanceProfile,
} from '@aws-sdk/client-iam';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand } from '@aws-sdk/client-scheduler';
import {
  agentProfileArn,
  awsError,
  ec2,
  ec2Instance,
  givenInstance,
  iam,
  instanceId,
  lastRecordWritten,
  runningEvent,
  scheduler,
  ssm,
  steps,
  useOnboardScenario,
} from './onboard-harness.js';

const cloudWatchAgentPolicy = 'arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy';
const ssmCorePolicy = 'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore';
const workloadProfileArn = 'arn:aws:iam::123456789012:instance-profile/app/web-profile';

const profileNotYetVisible = () =>
  awsError(
    'InvalidParameterValue',
    'Value (cwap-dev-agent) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name',
  );

/** The workload profile `web-profile` holding role `web-role` with these managed policies. */
function givenWorkloadRole(attachedPolicyArns: string[], profileArn = workloadProfileArn): void {
  const profile: InstanceProfile = {
    Path: '/app/',
    InstanceProfileName: 'web-profile',
    InstanceProfileId: 'AIPAWORKLOAD',
    Arn: profileArn,
    CreateDate: new Date('2024-01-01T00:00:00Z'),
    Roles: [
      {
        Path: '/',
        RoleName: 'web-role',
        RoleId: 'AROAWORKLOAD',
        Arn: 'arn:aws:iam::123456789012:role/web-role',
        CreateDate: new Date('2024-01-01T00:00:00Z'),
      },
    ],
  };
  iam.on(GetInstanceProfileCommand, { InstanceProfileName: 'web-profile' }).resolves({ InstanceProfile: profile });
  iam.on(ListAttachedRolePoliciesCommand, { RoleName: 'web-role' }).resolves({
    AttachedPolicies: attachedPolicyArns.map((arn) => ({ PolicyArn: arn, PolicyName: arn.split('/').at(-1) })),
    IsTruncated: false,
  });
  iam.on(AttachRolePolicyCommand).resolves({});
}

/** Someone associated the workload profile between our DescribeInstances and our association. */
function givenProfileAssociatedMeanwhile(): void {
  ec2
    .on(AssociateIamInstanceProfileCommand)
    .rejects(awsError('IncorrectState', `There is an existing association for instance ${instanceId}`));
  ec2.on(DescribeIamInstanceProfileAssociationsCommand).resolves({
    IamInstanceProfileAssociations: [
      {
        AssociationId: 'iip-assoc-0fedcba9876543210',
        InstanceId: instanceId,
        State: 'associated',
        IamInstanceProfile: { Arn: workloadProfileArn, Id: 'AIPAWORKLOAD' },
      },
    ],
  });
}

const onboard = useOnboardScenario();

describe('a freshly created agent profile IAM has not propagated yet', () => {
  it('is associated on the third try after two "Invalid IAM Instance Profile name" answers, and onboarding goes on', async () => {
    ec2
      .on(AssociateIamInstanceProfileCommand)
      .rejectsOnce(profileNotYetVisible())
      .rejectsOnce(profileNotYetVisible())
      .resolvesOnce({ IamInstanceProfileAssociation: { IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent' } } });

    const result = await onboard.invoke(runningEvent());

    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 3);
    for (const call of ec2.commandCalls(AssociateIamInstanceProfileCommand)) {
      expect(call.args[0].input).toEqual({ InstanceId: instanceId, IamInstanceProfile: { Name: 'cwap-dev-agent' } });
    }
    expect(result.status).toBe('checking');
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(lastRecordWritten()).toMatchObject({ status: 'checking', profilePath: 'associated-agent-profile' });
  });

  it('gives up after PROFILE_RETRY_ATTEMPTS tries: the error is recorded and no install command is sent', async () => {
    ec2.on(AssociateIamInstanceProfileCommand).rejects(profileNotYetVisible());

    await expect(onboard.invoke(runningEvent())).rejects.toThrow(/Invalid IAM Instance Profile name/);

    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 3);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(scheduler).not.toHaveReceivedCommand(CreateScheduleCommand);
    const record = lastRecordWritten();
    expect(record.status).toBe('error');
    expect(record.lastError).toMatch(/^InvalidParameterValue: .*Invalid IAM Instance Profile name/);
    expect(record.profilePath).toBeUndefined();
    expect(steps(record)).toEqual(['claimed', 'error']);
  });

  it('tries as many times as PROFILE_RETRY_ATTEMPTS says', async () => {
    await onboard.restart({ PROFILE_RETRY_ATTEMPTS: '5' });
    ec2.on(AssociateIamInstanceProfileCommand).rejects(profileNotYetVisible());

    await expect(onboard.invoke(runningEvent())).rejects.toThrow(/Invalid IAM Instance Profile name/);

    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 5);
  });

  it('an InvalidParameterValue about something else is not retried', async () => {
    ec2.on(AssociateIamInstanceProfileCommand).rejects(awsError('InvalidParameterValue', 'Value () for parameter instanceId is invalid.'));

    await expect(onboard.invoke(runningEvent())).rejects.toThrow(/parameter instanceId is invalid/);

    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 1);
    expect(lastRecordWritten()).toMatchObject({ status: 'error', lastError: expect.stringContaining('InvalidParameterValue') });
  });
});

describe('someone associated a profile while onboarding was associating ours (IncorrectState)', () => {
  it('keeps their profile and adds only the missing managed policy to its role', async () => {
    givenProfileAssociatedMeanwhile();
    givenWorkloadRole([ssmCorePolicy]);

    const result = await onboard.invoke(runningEvent());

    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(DescribeIamInstanceProfileAssociationsCommand, {
      Filters: expect.arrayContaining([{ Name: 'instance-id', Values: [instanceId] }]),
    });
    expect(iam).toHaveReceivedCommandExactlyOnceWith(GetInstanceProfileCommand, { InstanceProfileName: 'web-profile' });
    expect(iam).toHaveReceivedCommandWith(ListAttachedRolePoliciesCommand, { RoleName: 'web-role' });
    expect(iam).toHaveReceivedCommandExactlyOnceWith(AttachRolePolicyCommand, { RoleName: 'web-role', PolicyArn: cloudWatchAgentPolicy });
    expect(result.status).toBe('checking');
    const record = lastRecordWritten();
    expect(record).toMatchObject({
      status: 'checking',
      profilePath: 'existing-role-policies-added',
      profileArn: workloadProfileArn,
      roleName: 'web-role',
    });
    expect(record.missingPolicies).toBeUndefined();
    expect(record.history).toContainEqual(
      expect.objectContaining({ step: 'profile:existing-role-policies-added', detail: expect.stringContaining('attached CloudWatchAgentServerPolicy') }),
    );
  });

  it('attaches both managed policies, by their exact ARNs, to a role that has neither', async () => {
    givenProfileAssociatedMeanwhile();
    givenWorkloadRole([]);

    await onboard.invoke(runningEvent());

    expect(iam).toHaveReceivedCommandTimes(AttachRolePolicyCommand, 2);
    expect(iam).toHaveReceivedCommandWith(AttachRolePolicyCommand, { RoleName: 'web-role', PolicyArn: cloudWatchAgentPolicy });
    expect(iam).toHaveReceivedCommandWith(AttachRolePolicyCommand, { RoleName: 'web-role', PolicyArn: ssmCorePolicy });
    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 1);
  });
});

describe('our own earlier association shows up as the existing one (IncorrectState)', () => {
  it('a resumed onboarding whose profile was associated before it died finds the agent profile present', async () => {
    ec2.on(AssociateIamInstanceProfileCommand).rejects(awsError('IncorrectState', `There is an existing association for instance ${instanceId}`));
    ec2.on(DescribeIamInstanceProfileAssociationsCommand).resolves({
      IamInstanceProfileAssociations: [{ InstanceId: instanceId, State: 'associated', IamInstanceProfile: { Arn: agentProfileArn, Id: 'AIPAAGENT' } }],
    });

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('checking');
    expect(ec2).toHaveReceivedCommandTimes(AssociateIamInstanceProfileCommand, 1);
    expect(iam).not.toHaveReceivedAnyCommand();
    expect(lastRecordWritten()).toMatchObject({ profilePath: 'agent-profile-present', profileArn: agentProfileArn });
  });
});

describe('an instance launched with a workload profile', () => {
  it('whose role already carries both policies is left as it is', async () => {
    givenInstance(ec2Instance({ profileArn: workloadProfileArn }));
    givenWorkloadRole([cloudWatchAgentPolicy, ssmCorePolicy, 'arn:aws:iam::123456789012:policy/app-s3']);

    await onboard.invoke(runningEvent());

    expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
    expect(iam).not.toHaveReceivedCommand(AttachRolePolicyCommand);
    expect(lastRecordWritten()).toMatchObject({ status: 'checking', profilePath: 'existing-role-compliant', roleName: 'web-role' });
  });

  it('with MODIFY_EXISTING_ROLES=false: its role is not touched and the record says which policies it lacks', async () => {
    await onboard.restart({ MODIFY_EXISTING_ROLES: 'false' });
    givenInstance(ec2Instance({ profileArn: workloadProfileArn }));
    givenWorkloadRole([]);

    await onboard.invoke(runningEvent());

    expect(ec2).not.toHaveReceivedCommand(AssociateIamInstanceProfileCommand);
    expect(iam).not.toHaveReceivedCommand(AttachRolePolicyCommand);
    const record = lastRecordWritten();
    expect(record).toMatchObject({
      profilePath: 'existing-role-missing-policies',
      profileArn: workloadProfileArn,
      roleName: 'web-role',
      missingPolicies: ['CloudWatchAgentServerPolicy', 'AmazonSSMManagedInstanceCore'],
    });
    expect(record.history).toContainEqual(
      expect.objectContaining({ step: 'profile:existing-role-missing-policies', detail: expect.stringContaining('MODIFY_EXISTING_ROLES is false') }),
    );
  });

  it('when attaching a policy is denied: the role is reported as lacking it, not an error', async () => {
    givenInstance(ec2Instance({ profileArn: workloadProfileArn }));
    givenWorkloadRole([ssmCorePolicy]);
    iam
      .on(AttachRolePolicyCommand)
      .rejects(awsError('AccessDenied', 'User: cwap-dev-onboard is not authorized to perform: iam:AttachRolePolicy on resource: role web-role'));

    await onboard.invoke(runningEvent());

    const record = lastRecordWritten();
    expect(record).toMatchObject({ profilePath: 'existing-role-missing-policies', missingPolicies: ['CloudWatchAgentServerPolicy'] });
    expect(record.lastError).toBeUndefined();
    expect(record.history).toContainEqual(
      expect.objectContaining({ step: 'profile:existing-role-missing-policies', detail: expect.stringContaining('attaching CloudWatchAgentServerPolicy was refused') }),
    );
  });

  it.each(['LimitExceeded', 'UnmodifiableEntity', 'NoSuchEntity'])('a role that cannot take the policy (%s) is reported, and onboarding goes on to the install', async (code) => {
    givenInstance(ec2Instance({ profileArn: workloadProfileArn }));
    givenWorkloadRole([ssmCorePolicy]);
    iam.on(AttachRolePolicyCommand).rejects(awsError(code, `${code} for role web-role`));

    const result = await onboard.invoke(runningEvent());

    expect(result.status).toBe('checking');
    expect(lastRecordWritten()).toMatchObject({ profilePath: 'existing-role-missing-policies', missingPolicies: ['CloudWatchAgentServerPolicy'] });
    expect(steps(lastRecordWritten())).toContain('install-command-sent');
  });

  it('in GovCloud, the policies are attached with the aws-us-gov partition', async () => {
    const govProfile = 'arn:aws-us-gov:iam::123456789012:instance-profile/app/web-profile';
    givenInstance(ec2Instance({ profileArn: govProfile }));
    givenWorkloadRole(['arn:aws-us-gov:iam::aws:policy/AmazonSSMManagedInstanceCore'], govProfile);

    await onboard.invoke(runningEvent());

    expect(iam).toHaveReceivedCommandExactlyOnceWith(AttachRolePolicyCommand, {
      RoleName: 'web-role',
      PolicyArn: 'arn:aws-us-gov:iam::aws:policy/CloudWatchAgentServerPolicy',
    });
  });
});
