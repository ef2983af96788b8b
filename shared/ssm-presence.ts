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
