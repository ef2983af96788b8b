import { DescribeInstanceInformationCommand } from '@aws-sdk/client-ssm';
import { ssm } from './aws-clients.js';

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

/** Asks Systems Manager whether one instance is registered and online. */
export async function ssmPresence(instanceId: string): Promise<SsmPresence> {
  const result = await ssm.send(
    new DescribeInstanceInformationCommand({
      Filters: [{ Key: 'InstanceIds', Values: [instanceId] }],
      MaxResults: 5,
    }),
  );
  const info = result.InstanceInformationList?.find((item) => item.InstanceId === instanceId);
  if (!info) return { pingStatus: 'NotRegistered', agentVersion: undefined, platformType: undefined, lastPing: undefined };
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
export async function describeInstanceInformation(instanceIds: string[]): Promise<Map<string, SsmPresence>> {
  const found = new Map<string, SsmPresence>();
  for (let from = 0; from < instanceIds.length; from += maxInstanceInformationPerCall) {
    const chunk = instanceIds.slice(from, from + maxInstanceInformationPerCall);
    let nextToken: string | undefined;
    do {
      const page = await ssm.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: 'InstanceIds', Values: chunk }],
          MaxResults: maxInstanceInformationPerCall,
          NextToken: nextToken,
        }),
      );
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
  for (const instanceId of instanceIds) {
    if (!found.has(instanceId)) {
      found.set(instanceId, { pingStatus: 'NotRegistered', agentVersion: undefined, platformType: undefined, lastPing: undefined });
    }
  }
  return found;
}
