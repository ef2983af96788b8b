import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import type { SimulatedSsm } from '../harness/aws-proxy.js';
import { localClientConfig } from '../harness/client-config.js';
import { createWorkloadProfile, launchInstance, type LaunchedInstance } from '../harness/fleet.js';
import type { DeployedStack } from '../harness/stack.js';
import { advance, newRecord, saveRecord } from '../../shared/state/instance-record.js';
import { testClients, hubPlace } from '../harness/test-clients.js';

const clients = testClients();

/** A fleet in moto with one instance per audit status, by the status it should get. */
export type MixedFleet = Record<
  'healthy' | 'healthyWindows' | 'missingMetrics' | 'agentNotInstalled' | 'ssmUnreachable' | 'noProfile' | 'roleMissingPolicy' | 'skippedByTag',
  LaunchedInstance
>;

async function publishMetrics(instance: LaunchedInstance, stack: DeployedStack, minutesAgo: number): Promise<void> {
  const cloudwatch = new CloudWatchClient(localClientConfig());
  const { metrics } = stack.settings;
  const names = [metrics.memory, instance.os === 'windows' ? metrics.windowsDiskFree : metrics.disk];
  try {
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: metrics.namespace,
        MetricData: names.map((MetricName) => ({
          MetricName,
          Dimensions: [{ Name: 'InstanceId', Value: instance.instanceId }],
          Timestamp: new Date(Date.now() - minutesAgo * 60_000),
          Value: 42,
          Unit: 'Percent',
        })),
      }),
    );
  } finally {
    cloudwatch.destroy();
  }
}

async function recordInstalled(instance: LaunchedInstance, stack: DeployedStack, status: 'healthy' | 'alerted'): Promise<void> {
  const now = new Date();
  await saveRecord(
    clients,
    stack.settings.stateTable,
    advance(newRecord(hubPlace, instance.instanceId, now), { status, os: instance.os, launchTime: instance.instance.LaunchTime?.toISOString(), commandId: `cmd-${instance.instanceId}` }, status, now),
  );
}

/**
 * Launches the mixed fleet: every audit status at least once, each for its real reason (no
 * profile, a workload role without the agent policy, SSM connection lost, no install recorded,
 * an install whose metrics stopped, an opt-out tag).
 */
export async function launchMixedFleet(aws: { ssm: SimulatedSsm }, stack: DeployedStack): Promise<MixedFleet> {
  const agent = stack.agentProfile.name;
  const workload = await createWorkloadProfile('legacy-app', { policies: ['arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore'] });
  const fleet: MixedFleet = {
    healthy: await launchInstance({ os: 'linux', profileName: agent, tags: { Name: 'web-1', team: 'web' } }),
    healthyWindows: await launchInstance({ os: 'windows', profileName: agent, tags: { Name: 'win-1', team: 'web' } }),
    missingMetrics: await launchInstance({ os: 'linux', profileName: agent, tags: { Name: 'web-2', team: 'web' } }),
    agentNotInstalled: await launchInstance({ os: 'linux', profileName: agent, tags: { Name: 'inherited-1', team: 'data' } }),
    ssmUnreachable: await launchInstance({ os: 'linux', profileName: agent, tags: { Name: 'lost-1', team: 'data' } }),
    noProfile: await launchInstance({ os: 'linux', tags: { Name: 'bare-1', team: 'data' } }),
    roleMissingPolicy: await launchInstance({ os: 'windows', profileName: workload.profileName, tags: { Name: 'legacy-1', team: 'data' } }),
    skippedByTag: await launchInstance({ os: 'linux', tags: { Name: 'bastion', 'cw-autopilot:skip': 'true' } }),
  };
  for (const key of ['healthy', 'healthyWindows', 'missingMetrics', 'agentNotInstalled', 'roleMissingPolicy', 'noProfile'] as const) {
    aws.ssm.register(fleet[key].instanceId, { platformType: fleet[key].os === 'windows' ? 'Windows' : 'Linux' });
  }
  aws.ssm.register(fleet.ssmUnreachable.instanceId, { platformType: 'Linux', pingStatus: 'ConnectionLost', lastPing: new Date(Date.now() - 3 * 3600_000) });
  await publishMetrics(fleet.healthy, stack, 2);
  await publishMetrics(fleet.healthyWindows, stack, 3);
  await publishMetrics(fleet.missingMetrics, stack, 45);
  await recordInstalled(fleet.healthy, stack, 'healthy');
  await recordInstalled(fleet.healthyWindows, stack, 'healthy');
  await recordInstalled(fleet.missingMetrics, stack, 'alerted');
  return fleet;
}
