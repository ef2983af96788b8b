import { DescribeInstanceInformationCommand } from '@aws-sdk/client-ssm';
import type { Clients } from '../aws/client-factory.js';
import { SSMClient } from '@aws-sdk/client-ssm';
import { awsErrorName } from '../aws/errors.js';

/** What Systems Manager knows of an instance's SSM agent. */
export interface SsmPresence {
  /** Online, ConnectionLost, Inactive; `NotRegistered` when SSM has never heard of it. */
  pingStatus: string;
  agentVersion: string | undefined;
  platformType: string | undefined;
  lastPing: string | undefined;
}

/** True when SendCommand can reach the instance now. */
export function isOnline(presence: SsmPresence): boolean {
  return presence.pingStatus === 'Online';
}

const notRegistered: SsmPresence = { pingStatus: 'NotRegistered', agentVersion: undefined, platformType: undefined, lastPing: undefined };

/**
 * The API reference says an id "that isn't valid or a node that you don't own" gets an error
 * (InvalidInstanceId), while a filter that matches nothing answers an empty list: an instance SSM
 * has never heard of may come back either way, and both mean "not registered".
 */
function isUnknownInstance(error: unknown): boolean {
  return awsErrorName(error) === 'InvalidInstanceId';
}

/** Asks Systems Manager whether one instance is registered and online. */
export async function ssmPresence(clients: Clients, instanceId: string): Promise<SsmPresence> {
  let result;
  try {
    result = await clients.of(SSMClient).send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: 'InstanceIds', Values: [instanceId] }],
        MaxResults: 5,
      }),
    );
  } catch (error) {
    if (isUnknownInstance(error)) return { ...notRegistered };
    throw error;
  }
  const info = result.InstanceInformationList?.find((item) => item.InstanceId === instanceId);
  if (!info) return { ...notRegistered };
  return {
    pingStatus: info.PingStatus ?? 'Unknown',
    agentVersion: info.AgentVersion,
    platformType: info.PlatformType,
    lastPing: info.LastPingDateTime?.toISOString(),
  };
}

/** DescribeInstanceInformation returns at most 50 instances a page. */
export const maxInstanceInformationPerCall = 50;

/**
 * Asks Systems Manager about many instances at once: one DescribeInstanceInformation call per 50
 * ids (the `InstanceIds` filter with `MaxResults` 50, so each chunk fits one page). Instances SSM
 * has never heard of are `NotRegistered`. Callers that want concurrency pass chunks of
 * {@link maxInstanceInformationPerCall} ids and run them side by side.
 *
 * @example
 * const presence = await describeInstanceInformation(['i-0abc', 'i-0def']);
 * presence.get('i-0abc')?.pingStatus; // 'Online'
 */
export async function describeInstanceInformation(clients: Clients, instanceIds: string[]): Promise<Map<string, SsmPresence>> {
  const found = new Map<string, SsmPresence>();
  for (let from = 0; from < instanceIds.length; from += maxInstanceInformationPerCall) {
    await describeChunk(clients, instanceIds.slice(from, from + maxInstanceInformationPerCall), found);
  }
  for (const instanceId of instanceIds) {
    if (!found.has(instanceId)) found.set(instanceId, { ...notRegistered });
  }
  return found;
}

/**
 * One chunk's pages. Where SSM refuses the chunk because one id is unknown to it (InvalidInstanceId),
 * the chunk is halved until the unknown ids stand alone: a few more calls for a rare case, and the
 * rest of the chunk is still read.
 */
async function describeChunk(clients: Clients, chunk: string[], found: Map<string, SsmPresence>): Promise<void> {
  let nextToken: string | undefined;
  do {
    let page;
    try {
      page = await clients.of(SSMClient).send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: 'InstanceIds', Values: chunk }],
          MaxResults: maxInstanceInformationPerCall,
          NextToken: nextToken,
        }),
      );
    } catch (error) {
      if (!isUnknownInstance(error) || nextToken !== undefined) throw error;
      if (chunk.length === 1) return; // left NotRegistered by the caller
      const half = Math.ceil(chunk.length / 2);
      await describeChunk(clients, chunk.slice(0, half), found);
      await describeChunk(clients, chunk.slice(half), found);
      return;
    }
    for (const info of page.InstanceInformationList ?? []) {
      if (!info.InstanceId) continue;
      found.set(info.InstanceId, {
        pingStatus: info.PingStatus ?? 'Unknown',
        agentVersion: info.AgentVersion,
        platformType: info.PlatformType,
        lastPing: info.LastPingDateTime?.toISOString(),
      });
    }
    nextToken = page.NextToken;
  } while (nextToken);
}
