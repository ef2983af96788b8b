import { exclusionReason, isUnderWay } from '../onboarding/onboarding-decision.js';
import type { OnboardingStatus } from '../state/instance-record.js';
import { profileNameOf } from '../onboarding/instance-profiles.js';
import { partitionOfArn } from '../aws/partitions.js';
import type { Settings } from '../config/settings.js';
import type { InstanceAuditFacts } from './fleet-inventory.js';

/**
 * One overall monitoring status per instance. `unknown` is for a partial report: a fact it
 * depends on could not be read, and the audit does not guess.
 */
export const auditStatuses = [
  'healthy',
  'missing-metrics',
  'agent-not-installed',
  'ssm-unreachable',
  'no-profile',
  'role-missing-policy',
  'skipped-by-tag',
  'unknown',
] as const;
export type AuditStatus = (typeof auditStatuses)[number];

/**
 * Who fixes it: nobody (`none`), onboarding started by `--remediate` (`onboard`), onboarding
 * already under way (`wait`), or a person (`person`) because onboarding cannot.
 */
export type Remedy = 'none' | 'onboard' | 'wait' | 'person';

/** One expected series of an instance, as the report shows it. */
export interface MetricFinding {
  metricName: string;
  lastDatapoint: string | null;
  recent: boolean;
}

/** One line of the report: what is known about an instance, its status, and the fix. */
export interface AuditRow {
  account: string;
  region: string;
  instanceId: string;
  name: string | null;
  os: string;
  availabilityZone: string | null;
  launchTime: string | null;
  profile: { arn: string; name: string; role: string | null; missingPolicies: string[] } | null;
  ssm: { pingStatus: string; lastPing: string | null } | null;
  metrics: MetricFinding[];
  onboarding: { status: OnboardingStatus; updatedAt: string; reason: string | null } | null;
  status: AuditStatus;
  remedy: Remedy;
  /** What to do, naming the instance and the command to run. */
  fix: string;
}

/** What the classification needs besides the facts. */
export interface ClassifyContext {
  now: Date;
  settings: Pick<Settings, 'optOutTag' | 'optInTag' | 'modifyExistingRoles' | 'agentProfileName'>;
  /** A datapoint younger than this counts as "recent". */
  recentSeconds: number;
  /** The audit command for this fleet, e.g. `npx cw-autopilot audit --stage dev --region eu-west-1`. */
  auditCommand: string;
}

/** An onboarding under way for the instance's current launch; a stalled one is not (it needs remediation). */
function onboardingUnderWay(facts: InstanceAuditFacts, now: Date): boolean {
  const record = facts.record;
  if (!record || record.launchTime !== facts.instance.launchTime) return false;
  return isUnderWay(record, now);
}

function minutesAgo(iso: string, now: Date): string {
  const minutes = Math.round((now.getTime() - Date.parse(iso)) / 60_000);
  if (minutes < 120) return `${minutes} min ago`;
  return `${Math.round(minutes / 60)} h ago`;
}

/**
 * Judges one instance from its facts: its overall status, who can fix it, and the fix text.
 * Pure: the same facts always give the same row.
 *
 * @example
 * classifyInstance(facts, { now, settings, recentSeconds: 900, auditCommand: 'npx cw-autopilot audit --stage dev' }).status; // 'no-profile'
 */
export function classifyInstance(facts: InstanceAuditFacts, context: ClassifyContext): AuditRow {
  const { instance, association, standing, ssm, record, unread } = facts;
  const { now, settings } = context;
  const id = instance.instanceId;
  const remediateCommand = `\`${context.auditCommand} --instance-id ${id} --remediate\``;
  const recentSince = now.getTime() - context.recentSeconds * 1000;
  const metrics: MetricFinding[] = (facts.metrics ?? []).map((series) => ({
    metricName: series.metricName,
    lastDatapoint: series.lastDatapoint ?? null,
    recent: series.lastDatapoint !== undefined && Date.parse(series.lastDatapoint) >= recentSince,
  }));

  const row = (status: AuditStatus, remedy: Remedy, fix: string): AuditRow => ({
    account: facts.account,
    region: facts.region,
    instanceId: id,
    name: instance.name ?? null,
    os: instance.os,
    availabilityZone: instance.availabilityZone ?? null,
    launchTime: instance.launchTime ?? null,
    profile: association
      ? {
          arn: association.profileArn,
          name: profileNameOf(association.profileArn),
          role: standing?.roleName ?? null,
          missingPolicies: standing?.missing ?? [],
        }
      : null,
    ssm: ssm ? { pingStatus: ssm.pingStatus, lastPing: ssm.lastPing ?? null } : null,
    metrics,
    onboarding: record ? { status: record.status, updatedAt: record.updatedAt, reason: record.reason ?? record.lastError ?? null } : null,
    status,
    remedy,
    fix,
  });
  // Onboarding that is still working on this launch will fix it, or alert: nothing to start.
  const orWait = (status: AuditStatus, remedy: Remedy, fix: string): AuditRow =>
    onboardingUnderWay(facts, now) && record
      ? row(status, 'wait', `onboarding of ${id} is under way (${record.status} since ${record.updatedAt}): run the audit again once it has finished`)
      : row(status, remedy, fix);

  const excluded = exclusionReason(instance, settings);
  if (excluded) return row('skipped-by-tag', 'none', `nothing to do: ${excluded}; cw-autopilot leaves ${id} alone until that changes`);

  if (unread.metrics) return row('unknown', 'person', `could not read the metrics of ${id} (${unread.metrics}): run the audit again`);
  const stale = metrics.filter((metric) => !metric.recent);
  if (metrics.length > 0 && stale.length === 0) return row('healthy', 'none', 'nothing to do');

  if (!association) {
    return orWait(
      'no-profile',
      'onboard',
      `${id} has no instance profile: run ${remediateCommand} (associates ${settings.agentProfileName}, then installs the agent), or attach a profile whose role has CloudWatchAgentServerPolicy and AmazonSSMManagedInstanceCore`,
    );
  }
  if (unread.profile) return row('unknown', 'person', `could not read the role of ${association.profileArn} (${unread.profile}): run the audit again`);
  if (standing && standing.missing.length > 0) {
    const role = standing.roleName;
    const alreadyTried = record?.profilePath === 'existing-role-missing-policies' && record.launchTime === instance.launchTime;
    if (!role) {
      return row('role-missing-policy', 'person', `profile ${profileNameOf(association.profileArn)} of ${id} has no role (${standing.note ?? 'no role'}): add a role with ${standing.missing.join(' and ')} to it, or replace the profile`);
    }
    if (settings.modifyExistingRoles && !alreadyTried) {
      return orWait('role-missing-policy', 'onboard', `role ${role} of ${id} lacks ${standing.missing.join(' and ')}: run ${remediateCommand} (onboarding attaches them to the role)`);
    }
    const partition = partitionOfArn(association.profileArn);
    const attach = standing.missing.map((name) => `\`aws iam attach-role-policy --role-name ${role} --policy-arn arn:${partition}:iam::aws:policy/${name}\``).join(' and ');
    const why = alreadyTried ? `onboarding could not attach them (${record?.reason ?? 'not allowed'})` : 'cw-autopilot may not change workload roles (modifyExistingRoles is false)';
    return row('role-missing-policy', 'person', `role ${role} of ${id} lacks ${standing.missing.join(' and ')} and ${why}: run ${attach}, then ${remediateCommand}`);
  }

  if (unread.ssm) return row('unknown', 'person', `could not ask Systems Manager about ${id} (${unread.ssm}): run the audit again`);
  if (!ssm || ssm.pingStatus !== 'Online') {
    const ping = ssm?.pingStatus ?? 'NotRegistered';
    return orWait(
      'ssm-unreachable',
      'person',
      `${id} is not online in Systems Manager (${ping}${ssm?.lastPing ? `, last ping ${ssm.lastPing}` : ''}): make sure its SSM agent runs and can reach the ssm, ssmmessages and ec2messages endpoints (a role attached minutes ago is picked up within ~30 min, or at once after an agent restart), then run ${remediateCommand}`,
    );
  }

  if (unread.record) return row('unknown', 'person', `could not read the onboarding record of ${id} (${unread.record}): run the audit again`);
  // When the missing series were last seen (not the ones still arriving).
  const lastSeen = (stale.length ? stale : metrics)
    .map((metric) => metric.lastDatapoint)
    .filter((at): at is string => at !== null)
    .sort()
    .at(-1);
  if (record?.commandId) {
    const names = (stale.length ? stale : metrics).map((metric) => metric.metricName).join(' and ') || 'the expected metrics';
    const logPath = instance.os === 'windows'
      ? 'C:\\ProgramData\\Amazon\\AmazonCloudWatchAgent\\Logs\\amazon-cloudwatch-agent.log'
      : '/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log';
    return orWait(
      'missing-metrics',
      'onboard',
      `${id} got the agent (command ${record.commandId}) but ${names} had no datapoint in the last ${Math.round(context.recentSeconds / 60)} min (${lastSeen ? `last ${minutesAgo(lastSeen, now)}` : 'none in the last 3 h'}): run ${remediateCommand} to reinstall and reconfigure it; if it stays missing, read ${logPath} on the instance`,
    );
  }
  return orWait(
    'agent-not-installed',
    'onboard',
    `cw-autopilot never installed the agent on ${id}${record ? ` (onboarding ${record.status}${record.reason ? `: ${record.reason}` : ''})` : ''}${lastSeen ? `; its last datapoint was ${minutesAgo(lastSeen, now)}` : ''}: run ${remediateCommand} to install and configure it`,
  );
}
