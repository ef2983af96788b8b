import { UsageError, type CliIo } from './command-line.js';
import type { CommandName } from './flags.js';

/** The flags that say which AWS a run talks to. */
export interface AwsFlags {
  region: string | undefined;
  profile: string | undefined;
  endpointUrl: string | undefined;
}

/**
 * Points this run's AWS SDK clients where the flags say, through the variables the SDK reads. Call
 * it before the clients are created (shared/aws/clients.ts creates them on import, from the
 * environment). `--endpoint-url` wins over every configured endpoint, as the AWS CLI's does.
 */
export function applyAwsFlags(io: CliIo, flags: AwsFlags): void {
  if (flags.profile) io.env.AWS_PROFILE = flags.profile;
  if (flags.region) io.env.AWS_REGION = flags.region;
  if (flags.endpointUrl) {
    for (const name of Object.keys(io.env)) if (name.startsWith('AWS_ENDPOINT_URL_')) delete io.env[name];
    delete io.env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS;
    io.env.AWS_ENDPOINT_URL = flags.endpointUrl;
  }
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

/**
 * The region a run works in: `--region`'s, else the one the SDK resolves (AWS_REGION, the profile).
 *
 * @throws UsageError when there is none.
 */
export async function regionOf(given: string | undefined, client: { config: { region: () => Promise<string> } }): Promise<string> {
  if (given) return given;
  try {
    return await client.config.region();
  } catch (error) {
    throw new UsageError('no region: pass --region, or set AWS_REGION or a region in your AWS profile', { cause: error });
  }
}
