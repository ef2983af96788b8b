import type { InstanceAuditFacts } from '../../shared/audit/fleet-inventory.js';
import type { ClassifyContext } from '../../shared/audit/instance-status.js';

/** The clock every audit scenario runs at. */
export const now = new Date('2026-11-24T12:00:00.000Z');
export const minutesBefore = (minutes: number) => new Date(now.getTime() - minutes * 60_000).toISOString();

export const context: ClassifyContext = {
  now,
  settings: {
    optOutTag: { key: 'cw-autopilot:skip', value: 'true' },
    optInTag: undefined,
    modifyExistingRoles: true,
    agentProfileName: 'cwap-dev-agent',
  },
  recentSeconds: 900,
  auditCommand: 'npx cw-autopilot audit --region eu-west-1',
};

const agentProfileArn = 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent';

/**
 * A healthy Linux instance with the stack's profile, online in SSM, publishing both metrics, and
 * onboarded; scenarios change what they are about.
 */
export function healthyFacts(overrides: Partial<InstanceAuditFacts> & { instanceId?: string } = {}): InstanceAuditFacts {
  const instanceId = overrides.instanceId ?? 'i-0a1b2c3d4e5f60001';
  const launchTime = minutesBefore(600);
  const { instanceId: _ignored, ...rest } = overrides;
  return {
    account: '123456789012',
    region: 'eu-west-1',
    instance: {
      instanceId,
      state: 'running',
      os: 'linux',
      name: 'web-1',
      tags: { Name: 'web-1' },
      profileArn: agentProfileArn,
      launchTime,
      availabilityZone: 'eu-west-1a',
    },
    association: { profileArn: agentProfileArn, state: 'associated' },
    standing: { profileArn: agentProfileArn, roleName: 'cwap-dev-agent', missing: [] },
    ssm: { pingStatus: 'Online', agentVersion: '3.3.1', platformType: 'Linux', lastPing: minutesBefore(1) },
    metrics: [
      { instanceId, metricName: 'MEMORY_USED', datapoints: 30, firstDatapoint: minutesBefore(150), lastDatapoint: minutesBefore(2) },
      { instanceId, metricName: 'DISK_USED', datapoints: 30, firstDatapoint: minutesBefore(150), lastDatapoint: minutesBefore(2) },
    ],
    record: {
      instanceId,
      status: 'healthy',
      launchTime,
      updatedAt: minutesBefore(590),
      commandId: 'cmd-1',
    },
    unread: {},
    ...rest,
  };
}

/** The same instance with no datapoint at all in the audit's window. */
export function silentMetrics(facts: InstanceAuditFacts): InstanceAuditFacts['metrics'] {
  return (facts.metrics ?? []).map((series) => ({ ...series, datapoints: 0, firstDatapoint: undefined, lastDatapoint: undefined }));
}
