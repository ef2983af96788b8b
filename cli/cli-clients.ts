import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { ClientFactory, memberRoleArn, type AwsConnection } from '../shared/aws/client-factory.js';
import type { Place } from '../shared/aws/place.js';
import { UsageError } from './command-line.js';

/**
 * The region the SDK resolves for these flags when `--region` gives none (AWS_REGION, the
 * profile's region).
 *
 * @throws UsageError when there is none.
 */
export async function defaultRegion(connection: AwsConnection): Promise<string> {
  const sts = new STSClient({ ...connection });
  try {
    return await sts.config.region();
  } catch (error) {
    throw new UsageError('no region: pass --region, or set AWS_REGION or a region in your AWS profile', { cause: error });
  } finally {
    sts.destroy();
  }
}

/** The account the CLI's own credentials belong to (STS GetCallerIdentity, needs no permission). */
export async function callerAccount(region: string, connection: AwsConnection = {}): Promise<string> {
  const sts = new STSClient({ ...connection, region, maxAttempts: 5 });
  try {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    if (!identity.Account) throw new Error('STS GetCallerIdentity returned no account');
    return identity.Account;
  } finally {
    sts.destroy();
  }
}

/** Options of {@link cliClientFactory}. */
export interface CliClientOptions {
  /**
   * Base name of the role assumed in other accounts, `<roleName>-<region>` in each (as the member
   * stack names its roles). None: other accounts are unreachable, and asking for one fails naming
   * the flag.
   */
  roleName?: string;
  connection?: AwsConnection;
}

/**
 * The CLI's client factory: the caller's own credentials in the caller's account (any region), and
 * `<roleName>-<region>` assumed in every other account. `hub` is the caller's account in the
 * region of the stack whose table and functions the CLI uses.
 *
 * @example
 * const factory = cliClientFactory({ account: '123456789012', region: 'eu-west-1' }, { roleName: 'cwap-prod-member-audit' });
 */
export function cliClientFactory(hub: Place, options: CliClientOptions = {}): ClientFactory {
  return new ClientFactory({
    hubPlace: hub,
    roleFor: (place) => {
      if (place.account === hub.account) return undefined;
      if (!options.roleName) throw new UsageError(`account ${place.account} is not the caller's (${hub.account}): pass --role-name, a role to assume there`);
      return memberRoleArn(place, options.roleName);
    },
    sessionName: 'cw-autopilot-cli',
    connection: options.connection,
  });
}
