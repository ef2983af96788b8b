import {
  DescribeIamInstanceProfileAssociationsCommand,
  DescribeInstancesCommand,
  type Filter,
} from '@aws-sdk/client-ec2';
import type { Clients } from '../aws/client-factory.js';
import { EC2Client } from '@aws-sdk/client-ec2';
import { describeError } from '../aws/errors.js';
import { toInstanceFacts, type InstanceFacts } from '../aws/instances.js';
import type { TagMatch } from '../config/settings.js';

/** DescribeInstances and DescribeIamInstanceProfileAssociations return at most 1,000 a page. */
export const maxEc2ResultsPerCall = 1000;

/** Which instances an audit looks at: every running one, narrowed by tags and/or ids. */
export interface FleetScope {
  /** All must match (`key=value`, or `key` for any value). */
  tags: TagMatch[];
  /** Only these instances, when not empty. */
  instanceIds: string[];
}

/** The running instances in scope, read page by page; `failure` says why the list may be short. */
export interface RunningInstances {
  instances: InstanceFacts[];
  /** The account that owns them (Reservation.OwnerId), for the ARNs remediation needs. */
  accountId: string | undefined;
  failure: string | undefined;
}

/** The DescribeInstances filters for a scope: running, every tag, the ids. */
export function scopeFilters(scope: FleetScope): Filter[] {
  const filters: Filter[] = [{ Name: 'instance-state-name', Values: ['running'] }];
  for (const tag of scope.tags) {
    filters.push(tag.value === undefined ? { Name: 'tag-key', Values: [tag.key] } : { Name: `tag:${tag.key}`, Values: [tag.value] });
  }
  // Ids go in a filter, not InstanceIds: EC2 refuses MaxResults together with InstanceIds.
  if (scope.instanceIds.length) filters.push({ Name: 'instance-id', Values: scope.instanceIds });
  return filters;
}

/**
 * Lists the running instances in scope, 1,000 a page. When a page keeps failing (after the SDK's
 * own retries), returns what was read so far with the failure, so the audit can report the rest.
 */
export async function listRunningInstances(clients: Clients, scope: FleetScope, onPage?: (count: number) => void): Promise<RunningInstances> {
  const instances: InstanceFacts[] = [];
  let accountId: string | undefined;
  let nextToken: string | undefined;
  try {
    do {
      const page = await clients.of(EC2Client).send(
        new DescribeInstancesCommand({ Filters: scopeFilters(scope), MaxResults: maxEc2ResultsPerCall, NextToken: nextToken }),
      );
      for (const reservation of page.Reservations ?? []) {
        accountId ??= reservation.OwnerId;
        for (const instance of reservation.Instances ?? []) {
          if (instance.InstanceId) instances.push(toInstanceFacts(instance));
        }
      }
      onPage?.(instances.length);
      nextToken = page.NextToken;
    } while (nextToken);
  } catch (error) {
    return { instances, accountId, failure: `after ${instances.length} instances: ${describeError(error)}` };
  }
  return { instances, accountId, failure: undefined };
}

/** An instance's profile association as EC2 reports it (state `associating` or `associated`). */
export interface ProfileAssociation {
  profileArn: string;
  state: string;
}

/**
 * Reads the current profile associations of the region in bulk (1,000 a page), or of the given
 * instances only. Returns a map by instance id.
 */
export async function listProfileAssociations(clients: Clients, instanceIds: string[] = []): Promise<Map<string, ProfileAssociation>> {
  const associations = new Map<string, ProfileAssociation>();
  const filters: Filter[] = [{ Name: 'state', Values: ['associating', 'associated'] }];
  if (instanceIds.length) filters.push({ Name: 'instance-id', Values: instanceIds });
  let nextToken: string | undefined;
  do {
    const page = await clients.of(EC2Client).send(
      new DescribeIamInstanceProfileAssociationsCommand({ Filters: filters, MaxResults: maxEc2ResultsPerCall, NextToken: nextToken }),
    );
    for (const association of page.IamInstanceProfileAssociations ?? []) {
      const arn = association.IamInstanceProfile?.Arn;
      if (association.InstanceId && arn) associations.set(association.InstanceId, { profileArn: arn, state: association.State ?? 'associated' });
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return associations;
}
