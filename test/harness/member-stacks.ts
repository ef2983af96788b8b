import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CloudFormationClient, CreateStackCommand, DescribeStacksCommand, type Parameter } from '@aws-sdk/client-cloudformation';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { AttachRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { localClientConfig } from './client-config.js';
import { testAccountId, testRegion } from './stack.js';

// The member stack (member/member-stack.json) in several accounts and regions, created by moto's
// own CloudFormation (CreateStack), as a StackSet would create one stack per account and region.
//
// Accounts: moto 5 serves a request as the account of the access key it carries. STS AssumeRole
// mints a key in the account of the role ARN's account id, and the role need not exist
// (moto/sts/models.py assume_role, "the ARN can point to another account"; moto/iam/models.py
// get_account_id_from maps the key back). So each account's credentials come from one AssumeRole
// of arn:aws:iam::<account>:role/<anything>.
//
// moto's CloudFormation has every resource type the member template uses (AWS::IAM::Role and
// ::InstanceProfile, AWS::SSM::Document and ::Parameter, AWS::Events::Rule with its targets) and
// treats AWS::CloudFormation::WaitConditionHandle as a null model; it evaluates Conditions,
// Fn::If / AWS::NoValue and Fn::Sub with a variable map, so nothing is created through the SDK
// instead. One gap: an AWS::SSM::Document whose Content is a JSON object (as CloudFormation takes
// it, and as the template has it) is stored as the object, and every later DescribeDocument or
// GetDocument fails (moto/ssm/models.py hashes the content as a string). The harness sends that
// Content as its JSON text, which moto parses as CreateDocument would. Another: an AWS::IAM::Role's
// ManagedPolicyArns are ignored (moto/iam/models.py Role.create_from_cloudformation_json reads
// only Policies), so the agent role would have no policy; the harness attaches the ARNs the
// template lists after the stack is created, as CloudFormation would. Nothing else is changed.
// Reading back: moto's GetRolePolicy returns a CloudFormation-made inline policy as Python's repr of
// the document, not JSON. What moto does not check: that a trust policy's principal exists (IAM rejects a hub role that
// does not exist yet), and it never delivers events from one bus to another.

/** The template a StackSet deploys to every member account and region. */
export const memberTemplateFile = fileURLToPath(new URL('../../member/member-stack.json', import.meta.url));

/** The hub functions, each with an execution role in every member place. */
export const memberFunctions = ['onboard', 'check', 'offboard', 'audit'] as const;
export type MemberFunction = (typeof memberFunctions)[number];

/** Options of {@link deployMemberStacks}. */
export interface MemberStacksOptions {
  /** Endpoint of moto (not a proxy that rewrites credentials). Default `process.env.AWS_ENDPOINT_URL`. */
  endpoint?: string;
  /** The hub's stage. Default `test`. */
  stage?: string;
  /** Default moto's account, {@link testAccountId}. */
  hubAccountId?: string;
  /** Default {@link testRegion}. */
  hubRegion?: string;
  /** The accounts to deploy to; the hub's may be one of them. */
  accounts: string[];
  regions: string[];
  /** The template's OrganizationId parameter. Default '' (no aws:PrincipalOrgID condition). */
  organizationId?: string;
  /** The template's MemberRoleName parameter. Default '' (cwap-<stage>-member). */
  memberRoleName?: string;
}

type TemplateResource = { Type: string; Properties?: { Content?: unknown; RoleName?: unknown; ManagedPolicyArns?: unknown } };

/** The text of an Fn::Sub (or a plain string) with the stack's variables, undefined for anything else. */
function substituted(value: unknown, variables: Record<string, string>): string | undefined {
  const text = typeof value === 'string' ? value : typeof value === 'object' && value !== null && 'Fn::Sub' in value ? (value as { 'Fn::Sub': unknown })['Fn::Sub'] : undefined;
  return typeof text === 'string' ? text.replace(/\$\{([^}]+)\}/g, (whole, name: string) => variables[name] ?? whole) : undefined;
}

/** The roles whose ManagedPolicyArns moto's CloudFormation leaves unattached, with those ARNs. */
function managedPolicyAttachments(text: string, variables: Record<string, string>): { roleName: string; policyArns: string[] }[] {
  const template = JSON.parse(text) as { Resources: Record<string, TemplateResource> };
  return Object.values(template.Resources).flatMap((resource) => {
    if (resource.Type !== 'AWS::IAM::Role' || !Array.isArray(resource.Properties?.ManagedPolicyArns)) return [];
    const roleName = substituted(resource.Properties.RoleName, variables);
    const policyArns = resource.Properties.ManagedPolicyArns.map((arn) => substituted(arn, variables)).filter((arn): arn is string => arn !== undefined);
    return roleName ? [{ roleName, policyArns }] : [];
  });
}

/** The member template with the one change moto needs (the header above): the document's Content as JSON text. */
function templateForMoto(text: string): string {
  const template = JSON.parse(text) as { Resources: Record<string, { Type: string; Properties?: { Content?: unknown } }> };
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type === 'AWS::SSM::Document' && resource.Properties && typeof resource.Properties.Content !== 'string') {
      resource.Properties.Content = JSON.stringify(resource.Properties.Content);
    }
  }
  return JSON.stringify(template);
}

/** Credentials moto serves as one account. */
export interface AccountCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

/** One member stack: where it is, how to call AWS as that account, and what it created. */
export interface MemberPlace {
  account: string;
  region: string;
  /** The hub's own account and region: the stack holds only its no-op resource there. */
  isHubPlace: boolean;
  credentials: AccountCredentials;
  stackName: string;
  /** The execution role ARN of each hub function (stack outputs; empty in the hub place). */
  executionRoleArns: Partial<Record<MemberFunction, string>>;
  /** The rule forwarding EC2 state changes to the hub bus (absent in the hub place). */
  forwardRuleArn?: string;
}

/**
 * The credentials moto serves as `account`: STS AssumeRole of a role ARN in that account (the
 * role need not exist in moto).
 *
 * @example
 * const credentials = await accountCredentials('111111111111');
 * const iam = new IAMClient({ ...localClientConfig(), credentials });
 */
export async function accountCredentials(account: string, endpoint?: string): Promise<AccountCredentials> {
  return roleCredentials(`arn:aws:iam::${account}:role/cwap-harness`, endpoint);
}

/**
 * Credentials of a session of `roleArn`, straight from moto (which mints them whether the role
 * exists or not; give it moto's endpoint, not the proxy's, which checks the role's trust): how
 * the simulator gives each hub function its execution role's credentials, as Lambda does.
 *
 * @example
 * const onboard = await roleCredentials('arn:aws:iam::123456789012:role/cwap-test-us-east-1-onboard', motoUrl);
 */
export async function roleCredentials(roleArn: string, endpoint?: string): Promise<AccountCredentials> {
  const sts = new STSClient(localClientConfig(endpoint));
  try {
    const { Credentials: credentials } = await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'cwap-harness' }));
    if (!credentials?.AccessKeyId || !credentials.SecretAccessKey || !credentials.SessionToken) {
      throw new Error(`moto's AssumeRole of ${roleArn} returned no credentials`);
    }
    return { accessKeyId: credentials.AccessKeyId, secretAccessKey: credentials.SecretAccessKey, sessionToken: credentials.SessionToken };
  } finally {
    sts.destroy();
  }
}

/**
 * SDK client settings for one member place: moto's endpoint, the place's region, its account's credentials.
 *
 * @example
 * const ssm = new SSMClient(placeClientConfig(place));
 */
export function placeClientConfig(place: Pick<MemberPlace, 'region' | 'credentials'>, endpoint?: string) {
  return { ...localClientConfig(endpoint), region: place.region, credentials: place.credentials };
}

/**
 * Creates the member stack from member/member-stack.json in every account x region through moto's
 * CloudFormation, and returns each place with its credentials and the stack's outputs.
 *
 * @example
 * const places = await deployMemberStacks({ accounts: [testAccountId, '111111111111'], regions: ['us-east-1', 'eu-west-1'] });
 * const role = places.find((p) => p.account === '111111111111')!.executionRoleArns.check;
 */
export async function deployMemberStacks(options: MemberStacksOptions): Promise<MemberPlace[]> {
  const stage = options.stage ?? 'test';
  const hubAccountId = options.hubAccountId ?? testAccountId;
  const hubRegion = options.hubRegion ?? testRegion;
  const templateText = readFileSync(memberTemplateFile, 'utf8');
  const templateBody = templateForMoto(templateText);
  const parameters: Parameter[] = Object.entries({
    Stage: stage,
    HubAccountId: hubAccountId,
    HubRegion: hubRegion,
    OrganizationId: options.organizationId ?? '',
    MemberRoleName: options.memberRoleName ?? '',
  }).map(([ParameterKey, ParameterValue]) => ({ ParameterKey, ParameterValue }));
  const stackName = `cwap-${stage}-member`;

  const places: MemberPlace[] = [];
  for (const account of options.accounts) {
    const credentials = await accountCredentials(account, options.endpoint);
    for (const region of options.regions) {
      const cloudformation = new CloudFormationClient(placeClientConfig({ region, credentials }, options.endpoint));
      try {
        await cloudformation.send(
          new CreateStackCommand({ StackName: stackName, TemplateBody: templateBody, Parameters: parameters, Capabilities: ['CAPABILITY_NAMED_IAM'] }),
        );
        const { Stacks: [stack] = [] } = await cloudformation.send(new DescribeStacksCommand({ StackName: stackName }));
        if (stack?.StackStatus !== 'CREATE_COMPLETE') {
          throw new Error(`member stack in ${account} ${region}: ${stack?.StackStatus ?? 'not found'} ${stack?.StackStatusReason ?? ''}`);
        }
        const isHubPlace = account === hubAccountId && region === hubRegion;
        if (!isHubPlace) {
          const iam = new IAMClient(placeClientConfig({ region, credentials }, options.endpoint));
          try {
            for (const { roleName, policyArns } of managedPolicyAttachments(templateText, { Stage: stage, 'AWS::Region': region, 'AWS::Partition': 'aws', 'AWS::AccountId': account })) {
              for (const policyArn of policyArns) await iam.send(new AttachRolePolicyCommand({ RoleName: roleName, PolicyArn: policyArn }));
            }
          } finally {
            iam.destroy();
          }
        }
        const outputs = Object.fromEntries((stack.Outputs ?? []).map((output) => [output.OutputKey, output.OutputValue]));
        const executionRoleArns: MemberPlace['executionRoleArns'] = {};
        for (const fn of memberFunctions) {
          const arn = outputs[`${fn[0]!.toUpperCase()}${fn.slice(1)}ExecutionRoleArn`];
          if (arn) executionRoleArns[fn] = arn;
        }
        places.push({
          account,
          region,
          isHubPlace,
          credentials,
          stackName,
          executionRoleArns,
          ...(outputs.ForwardStateChangesRuleArn ? { forwardRuleArn: outputs.ForwardStateChangesRuleArn } : {}),
        });
      } finally {
        cloudformation.destroy();
      }
    }
  }
  return places;
}
