import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeImagesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { GetRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { runOrganizationAudit } from '../../shared/audit/organization-audit.js';
import { ClientFactory, memberRoleArn } from '../../shared/aws/client-factory.js';
import type { Place } from '../../shared/aws/place.js';
import { advance, newRecord, saveRecord } from '../../shared/state/instance-record.js';
import { useAws } from '../harness/aws-env.js';
import { accountCredentials, deployMemberStacks, placeClientConfig, type AccountCredentials } from '../harness/member-stacks.js';
import { deployStack, testAccountId, testRegion } from '../harness/stack.js';

// The hub audits 3 accounts x 2 regions whose member stacks moto's CloudFormation created, and a
// fourth account that has no member stack. moto's STS AssumeRole never fails (the role need not
// exist), so STS is the one thing faked here: AssumeRole answers with moto's own credentials of
// the role's account when moto's IAM has that role, and refuses (AccessDenied, as AWS does for a
// role that is missing or does not trust the caller) when it has not. Every other call reaches
// moto through the test proxy (which serves DescribeInstanceInformation, moto lacks it).

const aws = useAws();
const members = ['111111111111', '222222222222'];
const withoutStack = '333333333333';
const accounts = [testAccountId, ...members];
const regions = [testRegion, 'eu-west-1'];
const auditRole = 'cwap-test-member-audit';

// Installed once the harness has minted each account's credentials (through moto's own STS).
let sts: { restore(): void } | undefined;
afterEach(() => {
  sts?.restore();
  sts = undefined;
});

/** STS as AWS answers it: credentials of the role's account when the role exists there, else AccessDenied. */
function stsOverMoto(credentials: Map<string, AccountCredentials>): void {
  const stub = mockClient(STSClient);
  sts = stub;
  stub.on(AssumeRoleCommand).callsFake(async (input: { RoleArn?: string }) => {
    const roleArn = String(input.RoleArn);
    const account = roleArn.split(':')[4] ?? '';
    const accountKeys = credentials.get(account);
    const iam = new IAMClient(placeClientConfig({ region: testRegion, credentials: accountKeys ?? { accessKeyId: 'x', secretAccessKey: 'x', sessionToken: 'x' } }, aws.motoUrl));
    try {
      await iam.send(new GetRoleCommand({ RoleName: roleArn.split('/').at(-1) }));
    } catch {
      throw Object.assign(new Error(`User: arn:aws:sts::${testAccountId}:assumed-role/cwap-test-us-east-1-audit is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`), { name: 'AccessDenied' });
    } finally {
      iam.destroy();
    }
    return { Credentials: { AccessKeyId: accountKeys?.accessKeyId, SecretAccessKey: accountKeys?.secretAccessKey, SessionToken: accountKeys?.sessionToken, Expiration: new Date(Date.now() + 3600_000) } };
  });
}

async function launchIn(place: Place, keys: AccountCredentials, count: number): Promise<string[]> {
  const ec2 = new EC2Client(placeClientConfig({ region: place.region, credentials: keys }, aws.motoUrl));
  try {
    const images = await ec2.send(new DescribeImagesCommand({ Filters: [{ Name: 'name', Values: ['al2023-ami-2023*-x86_64'] }] }));
    const imageId = images.Images?.find((image) => image.Platform === undefined)?.ImageId;
    const result = await ec2.send(new RunInstancesCommand({ ImageId: imageId, InstanceType: 't3.micro', MinCount: count, MaxCount: count }));
    return (result.Instances ?? []).map((instance) => instance.InstanceId as string);
  } finally {
    ec2.destroy();
  }
}

describe('the organization audit in moto: 3 accounts x 2 regions with the member stack, one account without', () => {
  it('lists every place\'s instances with their account and region, reads member metrics there and records in the hub, and names the account it could not read', async () => {
    const stack = await deployStack();
    await deployMemberStacks({ endpoint: aws.motoUrl, accounts, regions });
    const credentials = new Map<string, AccountCredentials>();
    for (const account of [...accounts, withoutStack]) credentials.set(account, await accountCredentials(account, aws.motoUrl));

    const launched = new Map<string, string[]>();
    for (const account of [...accounts, withoutStack]) {
      for (const region of regions) {
        const ids = await launchIn({ account, region }, credentials.get(account) as AccountCredentials, 2);
        for (const id of ids) aws.ssm.register(id, { platformType: 'Linux' });
        launched.set(`${account}/${region}`, ids);
      }
    }
    // One member instance got the agent: its metrics arrive in its own account and region, its record is the hub's.
    const [installed = ''] = launched.get(`${members[0]}/eu-west-1`) ?? [];
    const memberPlace = { account: members[0] as string, region: 'eu-west-1' };
    const cloudwatch = new CloudWatchClient(placeClientConfig({ region: 'eu-west-1', credentials: credentials.get(memberPlace.account) as AccountCredentials }, aws.motoUrl));
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: stack.settings.metrics.namespace,
        MetricData: [stack.settings.metrics.memory, stack.settings.metrics.disk].map((MetricName) => ({ MetricName, Dimensions: [{ Name: 'InstanceId', Value: installed }], Timestamp: new Date(Date.now() - 120_000), Value: 42, Unit: 'Percent' })),
      }),
    );
    cloudwatch.destroy();
    const factory = new ClientFactory({ hubPlace: { account: testAccountId, region: testRegion }, roleFor: (place) => memberRoleArn(place, auditRole) });
    const now = new Date();
    await saveRecord(factory.clients(memberPlace), stack.settings.stateTable, advance(newRecord(memberPlace, installed, now), { status: 'healthy', os: 'linux', commandId: 'cmd-1' }, 'healthy', now));

    stsOverMoto(credentials);
    const report = await runOrganizationAudit(factory, {
      accounts: { kind: 'list', ids: [...accounts, withoutStack] },
      regions,
      scope: { tags: [], instanceIds: [] },
      settings: stack.settings,
      remediation: { mode: 'off' },
      auditCommand: (place) => `npx cw-autopilot audit --stage test --region ${place.region} --accounts ${place.account}`,
    });

    // 3 accounts x 2 regions x 2 instances; the fourth account's 4 are not in the report.
    expect(report.summary.running).toBe(12);
    for (const account of accounts) {
      for (const region of regions) {
        const rows = report.instances.filter((row) => row.account === account && row.region === region);
        expect(rows.map((row) => row.instanceId).sort()).toEqual([...(launched.get(`${account}/${region}`) ?? [])].sort());
      }
    }
    const healthy = report.instances.find((row) => row.instanceId === installed);
    expect(healthy).toMatchObject({ account: memberPlace.account, region: 'eu-west-1', status: 'healthy', onboarding: { status: 'healthy' } });
    expect(report.organization.byAccount[memberPlace.account]).toMatchObject({ running: 4, healthy: 1, unreadablePlaces: 0 });
    expect(report.organization.unreadable).toEqual(
      regions.map((region) => ({
        account: withoutStack,
        region,
        roleArn: `arn:aws:iam::${withoutStack}:role/${auditRole}-${region}`,
        reason: expect.stringContaining('AccessDenied'),
      })),
    );
    expect(report.organization.byAccount[withoutStack]).toMatchObject({ running: 0, unreadablePlaces: 2 });
    expect(report.summary.partial).toBe(true);
    // The member roles were assumed once per member place: 2 members x 2 regions, the hub's other region, and the 2 refused.
    expect(factory.assumeRoleCalls).toBe(7);
  });
});
