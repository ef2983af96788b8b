import type { Clients } from '../aws/client-factory.js';
import { awsErrorName, describeError } from '../aws/errors.js';
import { attachedPolicyArns, missingPolicyNames, requiredPolicyNames, roleOfProfile } from '../onboarding/instance-profiles.js';
import { mapBounded } from './concurrency.js';

/** Whether a profile's role may run the agent: which of the required policies it lacks. */
export interface ProfileStanding {
  profileArn: string;
  roleName: string | undefined;
  /** Names from {@link requiredPolicyNames} the role does not have attached. */
  missing: string[];
  /** Why the role could not be judged from its policies (no role, profile deleted). */
  note?: string;
}

/** A profile whose role could not be read; its instances are reported as unknown. */
export interface ProfileReadFailure {
  profileArn: string;
  api: 'GetInstanceProfile' | 'ListAttachedRolePolicies';
  error: string;
}

/**
 * Judges many instance profiles with the fewest IAM calls: one GetInstanceProfile per distinct
 * profile, one ListAttachedRolePolicies (all pages) per distinct role, at most `concurrency` at a
 * time. A profile that cannot be read is a failure, not a guess.
 *
 * @example
 * const { standings } = await profileStandings(['arn:aws:iam::123456789012:instance-profile/web'], 4);
 * standings.get(arn)?.missing; // ['CloudWatchAgentServerPolicy']
 */
export async function profileStandings(
  clients: Clients,
  profileArns: Iterable<string>,
  concurrency: number,
): Promise<{ standings: Map<string, ProfileStanding>; failures: ProfileReadFailure[] }> {
  const distinct = [...new Set(profileArns)];
  const failures: ProfileReadFailure[] = [];
  const roles = new Map<string, string | undefined>();
  const notes = new Map<string, string>();

  await mapBounded(distinct, concurrency, async (profileArn) => {
    try {
      const roleName = await roleOfProfile(clients, profileArn);
      roles.set(profileArn, roleName);
      if (!roleName) notes.set(profileArn, 'the instance profile contains no role');
    } catch (error) {
      if (awsErrorName(error) === 'NoSuchEntity' || awsErrorName(error) === 'NoSuchEntityException') {
        roles.set(profileArn, undefined);
        notes.set(profileArn, 'the instance profile no longer exists in IAM');
      } else {
        failures.push({ profileArn, api: 'GetInstanceProfile', error: describeError(error) });
      }
    }
  });

  const roleNames = [...new Set([...roles.values()].filter((name): name is string => name !== undefined))];
  const attached = new Map<string, Set<string>>();
  const roleErrors = new Map<string, string>();
  await mapBounded(roleNames, concurrency, async (roleName) => {
    try {
      attached.set(roleName, await attachedPolicyArns(clients, roleName));
    } catch (error) {
      roleErrors.set(roleName, describeError(error));
    }
  });

  const standings = new Map<string, ProfileStanding>();
  for (const [profileArn, roleName] of roles) {
    if (roleName === undefined) {
      standings.set(profileArn, { profileArn, roleName, missing: [...requiredPolicyNames], note: notes.get(profileArn) });
      continue;
    }
    const error = roleErrors.get(roleName);
    if (error) {
      failures.push({ profileArn, api: 'ListAttachedRolePolicies', error: `role ${roleName}: ${error}` });
      continue;
    }
    const present = attached.get(roleName) ?? new Set();
    const missing = missingPolicyNames(profileArn, present);
    standings.set(profileArn, { profileArn, roleName, missing });
  }
  return { standings, failures };
}
