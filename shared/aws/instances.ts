import { DescribeInstancesCommand, type Instance } from '@aws-sdk/client-ec2';
import type { Clients } from './client-factory.js';
import { EC2Client } from '@aws-sdk/client-ec2';
import { awsErrorName } from './errors.js';
import type { OsFamily } from '../agent-config.js';

/** What the product needs to know about one EC2 instance. */
export interface InstanceFacts {
  instanceId: string;
  /** EC2 state name: pending, running, stopping, stopped, shutting-down, terminated. */
  state: string;
  os: OsFamily;
  name: string | undefined;
  tags: Record<string, string>;
  /** ARN of the associated instance profile, if any. */
  profileArn: string | undefined;
  launchTime: string | undefined;
  availabilityZone: string | undefined;
}

/**
 * The OS family, from `Platform` / `PlatformDetails` (never from the AMI description).
 * `Platform` is "windows" for Windows and absent otherwise; `PlatformDetails` names the
 * platform ("Windows", "Windows with SQL Server ...", "Linux/UNIX", "Red Hat ...").
 */
export function osOf(instance: Pick<Instance, 'Platform' | 'PlatformDetails'>): OsFamily {
  if (instance.Platform?.toLowerCase() === 'windows') return 'windows';
  if (instance.PlatformDetails?.toLowerCase().startsWith('windows')) return 'windows';
  return 'linux';
}

/** Converts one DescribeInstances entry to {@link InstanceFacts}. */
export function toInstanceFacts(instance: Instance): InstanceFacts {
  const tags: Record<string, string> = {};
  for (const tag of instance.Tags ?? []) if (tag.Key !== undefined) tags[tag.Key] = tag.Value ?? '';
  return {
    instanceId: instance.InstanceId ?? '',
    state: instance.State?.Name ?? 'unknown',
    os: osOf(instance),
    name: tags.Name,
    tags,
    profileArn: instance.IamInstanceProfile?.Arn,
    launchTime: instance.LaunchTime?.toISOString(),
    availabilityZone: instance.Placement?.AvailabilityZone,
  };
}

/**
 * Describes one instance. Returns undefined when EC2 no longer knows it (terminated long ago,
 * or an id from another account/region), so callers can record it as gone.
 */
export async function describeInstance(clients: Clients, instanceId: string): Promise<InstanceFacts | undefined> {
  try {
    const result = await clients.of(EC2Client).send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const instance = result.Reservations?.flatMap((r) => r.Instances ?? []).find(
      (candidate) => candidate.InstanceId === instanceId,
    );
    return instance ? toInstanceFacts(instance) : undefined;
  } catch (error) {
    if (isUnknownInstanceError(error)) return undefined;
    throw error;
  }
}

/**
 * EC2 refuses a call whose filters carry more than 200 values in all (FilterLimitExceeded, "The
 * maximum number of filter values specified on a single call is 200"; the API reference's Filter
 * page states no figure, the error does).
 */
export const maxInstanceIdsPerDescribe = 200;

/** DescribeInstances returns at most 1,000 instances a page (MaxResults 5 to 1000). */
const maxInstancesPerPage = 1000;

/**
 * Describes many instances of one place: the ids go in an `instance-id` filter, 200 a call, every
 * page read. A filter, not `InstanceIds`: an id EC2 does not know (not yet visible after a launch,
 * terminated long ago) is left out of the answer instead of failing the whole call with
 * InvalidInstanceID.NotFound. Instances EC2 does not know are absent from the map.
 *
 * @example
 * const instances = await describeInstances(clients, ['i-0abc', 'i-0def']);
 * instances.get('i-0abc')?.state; // 'running'
 */
export async function describeInstances(clients: Clients, instanceIds: readonly string[]): Promise<Map<string, InstanceFacts>> {
  const found = new Map<string, InstanceFacts>();
  for (let from = 0; from < instanceIds.length; from += maxInstanceIdsPerDescribe) {
    const chunk = instanceIds.slice(from, from + maxInstanceIdsPerDescribe);
    let nextToken: string | undefined;
    do {
      const page = await clients.of(EC2Client).send(
        new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: chunk }], MaxResults: maxInstancesPerPage, NextToken: nextToken }),
      );
      for (const instance of page.Reservations?.flatMap((reservation) => reservation.Instances ?? []) ?? []) {
        if (instance.InstanceId) found.set(instance.InstanceId, toInstanceFacts(instance));
      }
      nextToken = page.NextToken;
    } while (nextToken);
  }
  return found;
}

/** True for the EC2 errors that mean "this instance does not exist (any more)". */
export function isUnknownInstanceError(error: unknown): boolean {
  const name = awsErrorName(error);
  return name === 'InvalidInstanceID.NotFound' || name === 'InvalidInstanceID.Malformed';
}
