import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { ClientFactory } from '../shared/aws/client-factory.js';
import { partitionOfRegion } from '../shared/aws/partitions.js';
import type { Place } from '../shared/aws/place.js';

/** The account the CLI's own credentials belong to (STS GetCallerIdentity, needs no permission). */
export async function callerAccount(region: string): Promise<string> {
  const identity = await new STSClient({ region, maxAttempts: 5 }).send(new GetCallerIdentityCommand({}));
  if (!identity.Account) throw new Error('STS GetCallerIdentity returned no account');
  return identity.Account;
}

/**
 * The CLI's client factory: the caller's own credentials in the caller's account (any region), and
 * `roleName` assumed in every other account (none given: other accounts are unreachable, and
 * asking for one fails naming the flag).
 */
export function cliClientFactory(caller: Place, roleName?: string): ClientFactory {
  return new ClientFactory({
    hubPlace: caller,
    roleFor: (place) => {
      if (place.account === caller.account) return undefined;
      if (!roleName) throw new Error(`account ${place.account} is not the caller's (${caller.account}): pass --role-name, a role to assume there`);
      return `arn:${partitionOfRegion(place.region)}:iam::${place.account}:role/${roleName}`;
    },
    sessionName: 'cw-autopilot-cli',
  });
}
