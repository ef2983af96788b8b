import { samePlace } from '../aws/place.js';
import { InstanceGoneError } from '../errors.js';
import {
  AssociateIamInstanceProfileCommand,
  DescribeIamInstanceProfileAssociationsCommand,
} from '@aws-sdk/client-ec2';
import {
  AttachRolePolicyCommand,
  GetInstanceProfileCommand,
  paginateListAttachedRolePolicies,
} from '@aws-sdk/client-iam';
import type { Clients } from '../aws/client-factory.js';
import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { awsErrorName, describeError, sleep } from '../aws/errors.js';
import { isUnknownInstanceError, type InstanceFacts } from '../aws/instances.js';
import { partitionOfArn } from '../aws/partitions.js';
import type { Settings } from '../config/settings.js';

/** The managed policies an instance role needs for the agent to be installed and to publish. */
export const requiredPolicyNames = ['CloudWatchAgentServerPolicy', 'AmazonSSMManagedInstanceCore'] as const;

/** Which way onboarding made sure the instance may publish metrics. */
export type ProfilePath =
  /** It had no profile; the stack's agent profile was associated. */
  | 'associated-agent-profile'
  /** It already had the stack's agent profile. */
  | 'agent-profile-present'
  /** It had a workload profile whose role already carried both policies. */
  | 'existing-role-compliant'
  /** It had a workload profile; the missing policies were attached to that role. */
  | 'existing-role-policies-added'
  /** It had a workload profile whose role lacks policies, and the product may not (or could not) add them. */
  | 'existing-role-missing-policies';

export interface ProfileOutcome {
  path: ProfilePath;
  profileArn: string | undefined;
  roleName: string | undefined;
  /** Policies attached by this call. */
  attached: string[];
  /** Policies the role still lacks (only for `existing-role-missing-policies`). */
  missing: string[];
  /** Why the role could not be fixed, when it could not. */
  note?: string;
}

function policyArn(partition: string, name: string): string {
  return `arn:${partition}:iam::aws:policy/${name}`;
}

/** The profile's name: the last segment of its ARN (profiles can have a path). */
export function profileNameOf(profileArn: string): string {
  return profileArn.slice(profileArn.lastIndexOf('/') + 1);
}

function isProfileNotYetVisible(error: unknown): boolean {
  const name = awsErrorName(error);
  if (name !== 'InvalidParameterValue' && name !== 'InvalidParameterCombination') return false;
  return /instance profile/i.test(error instanceof Error ? error.message : '');
}

async function currentAssociationArn(clients: Clients, instanceId: string): Promise<string | undefined> {
  const result = await clients.of(EC2Client).send(
    new DescribeIamInstanceProfileAssociationsCommand({
      Filters: [
        { Name: 'instance-id', Values: [instanceId] },
        { Name: 'state', Values: ['associating', 'associated'] },
      ],
    }),
  );
  return result.IamInstanceProfileAssociations?.[0]?.IamInstanceProfile?.Arn;
}

/**
 * The agent instance profile of a place: the hub stack's (AGENT_PROFILE_NAME) in the hub's own
 * place, else the member stack's of that region, `<resourcePrefix>-<region>-agent` (IAM names are
 * global to an account, so the member stack puts its region in them: deploy/agent-resources.cjs).
 *
 * @example
 * agentProfileNameIn({ place: { account: '2222...', region: 'eu-west-1' }, hubPlace }, settings); // 'cwap-dev-eu-west-1-agent'
 */
export function agentProfileNameIn(where: Pick<Clients, 'place' | 'hubPlace'>, settings: Pick<Settings, 'agentProfileName' | 'resourcePrefix'>): string {
  return samePlace(where.place, where.hubPlace) ? settings.agentProfileName : `${settings.resourcePrefix}-${where.place.region}-agent`;
}

/**
 * Associates the stack's agent profile, retrying while IAM has not propagated it yet
 * ("Invalid IAM Instance Profile name"). Returns the ARN of whatever profile the instance ends up
 * with: if another actor associated one first (IncorrectState), that one is kept, never replaced.
 */
async function associateAgentProfile(clients: Clients, instanceId: string, settings: Settings): Promise<{ arn: string | undefined; ours: boolean }> {
  const { attempts, baseDelayMs } = settings.profileRetry;
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await clients.of(EC2Client).send(
        new AssociateIamInstanceProfileCommand({
          InstanceId: instanceId,
          IamInstanceProfile: { Name: agentProfileNameIn(clients, settings) },
        }),
      );
      return { arn: result.IamInstanceProfileAssociation?.IamInstanceProfile?.Arn, ours: true };
    } catch (error) {
      if (isUnknownInstanceError(error)) {
        throw new InstanceGoneError(`${instanceId} disappeared while its profile was associated: ${describeError(error)}`);
      }
      // IncorrectInstanceState (pending, stopping, shutting down) is not "gone": the error is
      // recorded and Lambda's retry looks at the instance again (running, stopped or terminated).
      if (awsErrorName(error) === 'IncorrectState') {
        return { arn: await currentAssociationArn(clients, instanceId), ours: false };
      }
      if (isProfileNotYetVisible(error) && attempt < attempts) {
        await sleep(baseDelayMs * 2 ** (attempt - 1));
        continue;
      }
      throw error;
    }
  }
}

const attachRefusals: ReadonlySet<string> = new Set(['AccessDenied', 'AccessDeniedException', 'LimitExceeded', 'UnmodifiableEntity', 'NoSuchEntity']);

/** The role in an instance profile (a profile holds at most one), or undefined when it holds none. */
export async function roleOfProfile(clients: Clients, profileArn: string): Promise<string | undefined> {
  const profile = await clients.of(IAMClient).send(new GetInstanceProfileCommand({ InstanceProfileName: profileNameOf(profileArn) }));
  return profile.InstanceProfile?.Roles?.[0]?.RoleName;
}

/** The ARNs of the managed policies attached to a role, every page read. */
export async function attachedPolicyArns(clients: Clients, roleName: string): Promise<Set<string>> {
  const arns = new Set<string>();
  for await (const page of paginateListAttachedRolePolicies({ client: clients.of(IAMClient) }, { RoleName: roleName })) {
    for (const policy of page.AttachedPolicies ?? []) if (policy.PolicyArn) arns.add(policy.PolicyArn);
  }
  return arns;
}

/**
 * Which of the {@link requiredPolicyNames} are not among a role's attached policy ARNs, in the
 * partition of the instance profile the role is in.
 */
export function missingPolicyNames(profileArn: string, attachedArns: ReadonlySet<string>): string[] {
  const partition = partitionOfArn(profileArn);
  return requiredPolicyNames.filter((name) => !attachedArns.has(policyArn(partition, name)));
}

/**
 * Makes sure a workload's existing profile lets the agent run: attaches the missing managed
 * policies to its role when allowed, otherwise reports what is missing. Never replaces or removes
 * the profile.
 */
async function reconcileExistingProfile(clients: Clients, profileArn: string, settings: Settings, beforeAttach?: () => Promise<void>): Promise<ProfileOutcome> {
  const partition = partitionOfArn(profileArn);
  const roleName = await roleOfProfile(clients, profileArn);
  if (!roleName) {
    return {
      path: 'existing-role-missing-policies',
      profileArn,
      roleName: undefined,
      attached: [],
      missing: [...requiredPolicyNames],
      note: 'the instance profile contains no role',
    };
  }
  const missing = missingPolicyNames(profileArn, await attachedPolicyArns(clients, roleName));
  if (missing.length === 0) return { path: 'existing-role-compliant', profileArn, roleName, attached: [], missing: [] };
  if (!settings.modifyExistingRoles) {
    return {
      path: 'existing-role-missing-policies',
      profileArn,
      roleName,
      attached: [],
      missing,
      note: 'MODIFY_EXISTING_ROLES is false',
    };
  }
  const attached: string[] = [];
  for (const name of missing) {
    // Outside the try: a pacing refusal is no refusal of IAM's.
    await beforeAttach?.();
    try {
      await clients.of(IAMClient).send(new AttachRolePolicyCommand({ RoleName: roleName, PolicyArn: policyArn(partition, name) }));
      attached.push(name);
    } catch (error) {
      // Refusals a retry cannot change (denied, the role's 10-policy quota, a service-linked role,
      // a role deleted meanwhile) are reported, and onboarding carries on to the install and check.
      if (!attachRefusals.has(awsErrorName(error) ?? '')) throw error;
      return {
        path: 'existing-role-missing-policies',
        profileArn,
        roleName,
        attached,
        missing: missing.filter((m) => !attached.includes(m)),
        note: `attaching ${name} was refused: ${describeError(error)}`,
      };
    }
  }
  return { path: 'existing-role-policies-added', profileArn, roleName, attached, missing: [] };
}

/**
 * Makes sure the instance has a profile whose role may run the CloudWatch agent. `beforeAttach`
 * runs before each AttachRolePolicy (the batch takes a token of the account's bucket there).
 *
 * @example
 * const outcome = await ensureAgentProfile(instance, settings);
 * // outcome.path === 'associated-agent-profile' for an instance launched without a profile
 */
export async function ensureAgentProfile(clients: Clients, instance: InstanceFacts, settings: Settings, beforeAttach?: () => Promise<void>): Promise<ProfileOutcome> {
  let profileArn = instance.profileArn;
  if (!profileArn) {
    const association = await associateAgentProfile(clients, instance.instanceId, settings);
    if (association.ours) {
      return { path: 'associated-agent-profile', profileArn: association.arn, roleName: undefined, attached: [], missing: [] };
    }
    profileArn = association.arn;
    if (!profileArn) throw new Error(`${instance.instanceId}: EC2 reported an existing association but returned no profile`);
  }
  if (profileNameOf(profileArn) === agentProfileNameIn(clients, settings)) {
    return { path: 'agent-profile-present', profileArn, roleName: undefined, attached: [], missing: [] };
  }
  return reconcileExistingProfile(clients, profileArn, settings, beforeAttach);
}

/** What a profile's role lacks for the agent, read without changing anything. */
export interface RolePolicyFacts {
  roleName: string | undefined;
  missing: string[];
}

/**
 * Reads which of the {@link requiredPolicyNames} the role of an instance profile lacks. Read-only:
 * the checker uses it to explain missing metrics, onboarding's {@link ensureAgentProfile} fixes.
 */
export async function missingRolePolicies(clients: Clients, profileArn: string): Promise<RolePolicyFacts> {
  const roleName = await roleOfProfile(clients, profileArn);
  if (!roleName) return { roleName: undefined, missing: [...requiredPolicyNames] };
  return { roleName, missing: missingPolicyNames(profileArn, await attachedPolicyArns(clients, roleName)) };
}
