// The proxy acts in the place of each request: the account of its credentials and the region of its
// signature. And its STS refuses an AssumeRole that real STS would refuse.
import { CreateRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { describe, expect, it } from 'vitest';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { accountCredentials, roleCredentials, type AccountCredentials } from '../harness/member-stacks.js';

const aws = useAws();
const member = { account: '111111111111', region: 'eu-west-1' };
const hubFunctionRole = 'arn:aws:iam::123456789012:role/cwap-test-us-east-1-onboard';
const config = (region: string, credentials?: AccountCredentials) => ({ ...localClientConfig(undefined, { maxAttempts: 1 }), region, ...(credentials ? { credentials } : {}) });

const listed = async (region: string, credentials?: AccountCredentials) => {
  const ssm = new SSMClient(config(region, credentials));
  try {
    return ((await ssm.send(new DescribeInstanceInformationCommand({}))).InstanceInformationList ?? []).map((instance) => instance.InstanceId);
  } finally {
    ssm.destroy();
  }
};

const trustPolicy = (principal: string) =>
  JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: principal }, Action: 'sts:AssumeRole' }] });

describe('the place of a request', () => {
  it('an instance registered in a member account and region is listed there only', async () => {
    aws.proxy.place(member).ssm.register('i-0aaaaaaaaaaaaaaa1', { platformType: 'Linux' });
    aws.ssm.register('i-0bbbbbbbbbbbbbbb2', { platformType: 'Windows' });
    const memberCredentials = await accountCredentials(member.account, aws.motoUrl);
    expect(await listed(member.region, memberCredentials)).toEqual(['i-0aaaaaaaaaaaaaaa1']);
    expect(await listed('us-east-1', memberCredentials)).toEqual([]);
    expect(await listed(member.region)).toEqual([]);
    expect(await listed('us-east-1')).toEqual(['i-0bbbbbbbbbbbbbbb2']);
  });
});

describe('STS AssumeRole through the proxy', () => {
  const assume = async (roleArn: string) => {
    const sts = new STSClient(config('us-east-1', await roleCredentials(hubFunctionRole, aws.motoUrl)));
    try {
      return await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'cwap-test' }));
    } finally {
      sts.destroy();
    }
  };
  const createRole = async (name: string, principal: string) => {
    const iam = new IAMClient(config('us-east-1', await accountCredentials(member.account, aws.motoUrl)));
    await iam.send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: trustPolicy(principal) }));
    iam.destroy();
    return `arn:aws:iam::${member.account}:role/${name}`;
  };

  it('refuses a role that does not exist in its account: AccessDenied naming the caller and the role', async () => {
    const roleArn = `arn:aws:iam::${member.account}:role/cwap-test-member-onboard-eu-west-1`;
    const error = await assume(roleArn).catch((caught: unknown) => caught);
    expect(error).toMatchObject({
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
      message: `User: arn:aws:sts::123456789012:assumed-role/cwap-test-us-east-1-onboard/cwap-harness is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`,
    });
  });

  it('refuses a role whose trust policy names another principal', async () => {
    const roleArn = await createRole('trusts-another-hub', 'arn:aws:iam::999999999999:role/cwap-test-us-east-1-onboard');
    await expect(assume(roleArn)).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  it('gives a role that trusts the caller\'s role credentials of the role\'s account', async () => {
    const roleArn = await createRole('trusts-the-hub', hubFunctionRole);
    const { Credentials: credentials } = await assume(roleArn);
    const sts = new STSClient(
      config('us-east-1', { accessKeyId: credentials?.AccessKeyId ?? '', secretAccessKey: credentials?.SecretAccessKey ?? '', sessionToken: credentials?.SessionToken ?? '' }),
    );
    expect((await sts.send(new GetCallerIdentityCommand({}))).Account).toBe(member.account);
    sts.destroy();
  });
});
