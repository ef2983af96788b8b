import { EventBridgeClient, DescribeRuleCommand, ListTargetsByRuleCommand } from '@aws-sdk/client-eventbridge';
import { GetRoleCommand, GetRolePolicyCommand, GetInstanceProfileCommand, IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { DescribeDocumentCommand, GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { renderedAgentConfigs } from '../../shared/agent-config.js';
import { isolateFromRealAws } from '../harness/aws-env.js';
import { deployMemberStacks, memberFunctions, placeClientConfig, type MemberPlace } from '../harness/member-stacks.js';
import { resetMoto } from '../harness/moto-server.js';
import { agentManagedPolicies, testAccountId, testRegion } from '../harness/stack.js';

// The member stack as a StackSet deploys it: 3 accounts x 2 regions, the hub's own place among
// them, each stack created by moto's CloudFormation from the committed member/member-stack.json.

const motoUrl = inject('motoUrl');
isolateFromRealAws();
const accounts = [testAccountId, '111111111111', '222222222222'];
const regions = [testRegion, 'eu-west-1'];
const hubBus = `arn:aws:events:${testRegion}:${testAccountId}:event-bus/cwap-test-hub`;
const hubRole = (fn: string) => `arn:aws:iam::${testAccountId}:role/cwap-test-${testRegion}-${fn}`;
const defaultConfigs = renderedAgentConfigs({ namespace: 'CloudWatch/TestMetrics', memory: 'MEMORY_USED', disk: 'DISK_USED', windowsDiskFree: 'DISK_FREE' });

function clients(place: MemberPlace) {
  const config = placeClientConfig(place, motoUrl);
  return { iam: new IAMClient(config), ssm: new SSMClient(config), events: new EventBridgeClient(config) };
}

const trustOf = async (iam: IAMClient, name: string) =>
  JSON.parse(decodeURIComponent((await iam.send(new GetRoleCommand({ RoleName: name }))).Role?.AssumeRolePolicyDocument ?? '{}')) as { Statement: Record<string, unknown>[] };

beforeEach(async () => {
  await resetMoto(motoUrl);
});

describe('the member stack in 3 accounts x 2 regions', () => {
  let places: MemberPlace[];
  beforeEach(async () => {
    places = await deployMemberStacks({ endpoint: motoUrl, accounts, regions });
  });

  it('creates a stack in every place, and in the hub\'s own account and region nothing but the no-op', async () => {
    expect(places.map((p) => `${p.account}/${p.region}`)).toEqual(accounts.flatMap((a) => regions.map((r) => `${a}/${r}`)));
    const hub = places.filter((p) => p.isHubPlace);
    expect(hub.map((p) => [p.account, p.region])).toEqual([[testAccountId, testRegion]]);
    expect(hub[0]!.executionRoleArns).toEqual({});
    expect(hub[0]!.forwardRuleArn).toBeUndefined();
    const { iam, ssm, events } = clients(hub[0]!);
    await expect(iam.send(new GetRoleCommand({ RoleName: `cwap-test-member-onboard-${testRegion}` }))).rejects.toThrow();
    await expect(ssm.send(new GetParameterCommand({ Name: 'AmazonCloudWatch-cwap-test-linux' }))).rejects.toThrow();
    await expect(events.send(new DescribeRuleCommand({ Name: 'cwap-test-forward-to-hub' }))).rejects.toThrow();
  });

  it('gives every other place four execution roles, each trusted only by its hub function\'s role', async () => {
    for (const place of places.filter((p) => !p.isHubPlace)) {
      const { iam } = clients(place);
      for (const fn of memberFunctions) {
        const name = `cwap-test-member-${fn}-${place.region}`;
        expect(place.executionRoleArns[fn], `${place.account} ${place.region} ${fn}`).toBe(`arn:aws:iam::${place.account}:role/${name}`);
        const trust = await trustOf(iam, name);
        expect(trust.Statement, name).toEqual([{ Effect: 'Allow', Principal: { AWS: hubRole(fn) }, Action: 'sts:AssumeRole' }]);
        // moto returns a CloudFormation-made inline policy as Python's repr of it, not JSON: read its ARNs as text.
        const policy = decodeURIComponent((await iam.send(new GetRolePolicyCommand({ RoleName: name, PolicyName: fn }))).PolicyDocument ?? '');
        const arns = [...policy.matchAll(/arn:aws:[^'",\s\]}]+/g)].map((match) => match[0]);
        expect(arns.length, name).toBeGreaterThan(0);
        // Scoped to this account and region (AWS managed policy ARNs aside): an ARN naming any other is a leak.
        for (const arn of arns.filter((a) => !a.startsWith('arn:aws:iam::aws:policy/'))) {
          expect(arn, name).toMatch(new RegExp(`^arn:aws:(iam::${place.account}|[a-z0-9]+:${place.region}:${place.account}):`));
        }
      }
    }
  });

  it('holds the agent role and profile, the install document and the hub\'s rendered agent configs in every other place', async () => {
    for (const place of places.filter((p) => !p.isHubPlace)) {
      const { iam, ssm } = clients(place);
      const where = `${place.account} ${place.region}`;
      const profile = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: `cwap-test-${place.region}-agent` }));
      expect(profile.InstanceProfile?.Roles?.map((r) => r.RoleName), where).toEqual([`cwap-test-${place.region}-agent`]);
      const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: `cwap-test-${place.region}-agent` }));
      expect(attached.AttachedPolicies?.map((policy) => policy.PolicyArn).sort(), where).toEqual([...agentManagedPolicies].sort());
      for (const os of ['linux', 'windows'] as const) {
        const parameter = await ssm.send(new GetParameterCommand({ Name: `AmazonCloudWatch-cwap-test-${os}` }));
        expect(parameter.Parameter?.Value, `${where} ${os}`).toBe(defaultConfigs[os]);
      }
      const document = await ssm.send(new DescribeDocumentCommand({ Name: 'cwap-test-install-and-configure' }));
      expect(document.Document?.DocumentType, where).toBe('Command');
    }
  });

  it('forwards the EC2 state changes of every other place to the hub bus, through a role EventBridge assumes', async () => {
    for (const place of places.filter((p) => !p.isHubPlace)) {
      const { iam, events } = clients(place);
      const where = `${place.account} ${place.region}`;
      const rule = await events.send(new DescribeRuleCommand({ Name: 'cwap-test-forward-to-hub' }));
      expect(rule.Arn, where).toBe(place.forwardRuleArn);
      expect(JSON.parse(rule.EventPattern ?? '{}'), where).toEqual({
        source: ['aws.ec2'],
        'detail-type': ['EC2 Instance State-change Notification'],
        detail: { state: ['running', 'stopped', 'terminated'] },
      });
      const { Targets: targets = [] } = await events.send(new ListTargetsByRuleCommand({ Rule: 'cwap-test-forward-to-hub' }));
      const roleName = `cwap-test-${place.region}-forward-to-hub`;
      expect(targets.map((t) => [t.Arn, t.RoleArn]), where).toEqual([[hubBus, `arn:aws:iam::${place.account}:role/${roleName}`]]);
      expect((await trustOf(iam, roleName)).Statement, where).toEqual([
        { Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'aws:SourceAccount': place.account } } },
      ]);
    }
  });
});

describe('the member stack in an organization', () => {

  it('requires the hub function\'s role to be of the organization', async () => {
    const [place] = await deployMemberStacks({ endpoint: motoUrl, accounts: ['111111111111'], regions: ['eu-west-1'], organizationId: 'o-abcdef0123' });
    const { iam } = clients(place!);
    expect((await trustOf(iam, 'cwap-test-member-audit-eu-west-1')).Statement).toEqual([
      { Effect: 'Allow', Principal: { AWS: hubRole('audit') }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-abcdef0123' } } },
    ]);
  });

  it('names the execution roles after MemberRoleName when it is given', async () => {
    const [place] = await deployMemberStacks({ endpoint: motoUrl, accounts: ['111111111111'], regions: ['eu-west-1'], memberRoleName: 'platform-cwap' });
    expect(place!.executionRoleArns.check).toBe('arn:aws:iam::111111111111:role/platform-cwap-check-eu-west-1');
  });
});
