import type { AwsConnection } from '../shared/aws/client-factory.js';
import { UsageError } from './command-line.js';
import type { CommandName } from './flags.js';

/** The flags that say which AWS a run talks to. */
export interface AwsFlags {
  profile: string | undefined;
  endpointUrl: string | undefined;
}

/**
 * How this run's SDK clients reach AWS, from the flags: given to every client the run builds (no
 * environment variable is set, so nothing depends on when a module is imported). `--endpoint-url`
 * wins over every configured endpoint, as the AWS CLI's does.
 */
export function awsConnection(flags: AwsFlags, retryMode?: AwsConnection['retryMode']): AwsConnection {
  return {
    ...(flags.profile ? { profile: flags.profile } : {}),
    ...(flags.endpointUrl ? { endpoint: flags.endpointUrl } : {}),
    ...(retryMode ? { retryMode } : {}),
  };
}

/**
 * The region of a command that works in one region: the one `--region` gave, if any.
 *
 * @throws UsageError when several were given.
 */
export function singleRegion(command: CommandName, regions: string[]): string | undefined {
  if (regions.length > 1) throw new UsageError(`--region: ${command} works in one region, got ${regions.join(', ')}`);
  return regions[0];
}
