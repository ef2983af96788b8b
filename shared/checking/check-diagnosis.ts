import type { ExpectedMetric, OsFamily } from '../agent-config.js';
import type { CommandStatus } from './command-status.js';
import type { SeriesPresence } from './metric-queries.js';
import type { SsmPresence } from '../onboarding/ssm-presence.js';

/** Why an instance's metrics are missing, most fundamental first (the order they are checked). */
export const diagnosisCodes = [
  'no-instance-profile',
  'role-missing-policies',
  'ssm-offline',
  'command-not-sent',
  'command-failed',
  'command-timed-out',
  'partial-metrics',
  'no-datapoints',
  'command-running',
] as const;
export type DiagnosisCode = (typeof diagnosisCodes)[number];

/** The code a string names (as the state record keeps it), or null when it names none. */
export function diagnosisCodeOf(text: string | undefined): DiagnosisCode | null {
  return diagnosisCodes.find((code) => code === text) ?? null;
}

/** A fact a diagnosis rests on, as an AWS API reported it. {@link explain} words each one. */
export type Evidence = NoProfileEvidence | RolePoliciesEvidence | SsmPresenceEvidence | InstallCommandEvidence | MetricsPresentEvidence | MetricsMissingEvidence;

/** EC2: the instance has no IAM instance profile associated. */
export interface NoProfileEvidence {
  kind: 'no-instance-profile';
}

/** IAM: the profile's role (undefined when the profile holds none) lacks required policies. */
export interface RolePoliciesEvidence {
  kind: 'role-policies';
  profileArn: string;
  roleName: string | undefined;
  missing: string[];
}

/** Systems Manager: how it sees the instance. */
export interface SsmPresenceEvidence extends Pick<SsmPresence, 'pingStatus' | 'agentVersion' | 'lastPing'> {
  kind: 'ssm-presence';
}

/** Systems Manager: where this launch's install command is. */
export interface InstallCommandEvidence extends CommandStatus {
  kind: 'install-command';
}

/** CloudWatch: expected series with recent datapoints. */
export interface MetricsPresentEvidence {
  kind: 'metrics-present';
  metricNames: string[];
}

/** CloudWatch: expected series without recent datapoints, on exactly `{InstanceId}`, in the queried window. */
export interface MetricsMissingEvidence {
  kind: 'metrics-missing';
  namespace: string;
  metricNames: string[];
  instanceId: string;
  window: { start: string; end: string };
}

/** Whom a diagnosis is about, and the stack's resources its next step names. */
export interface DiagnosisSubject {
  instanceId: string;
  os: OsFamily;
  region: string;
  agentProfileName: string;
  agentDocumentName: string;
  /** The AmazonCloudWatch-* parameter of the instance's OS. */
  configParameter: string;
  checkFunctionName: string;
}

/**
 * The checker's finding for an instance whose metrics are missing: which cause, whether a retry can
 * fix it, and the facts it rests on, in a fixed order per code (the explanation reads them from
 * there). Decided by {@link diagnose}; put into words by `explain` (check-explanation.ts).
 */
export type Diagnosis = { subject: DiagnosisSubject } & (
  | { code: 'no-instance-profile'; retryable: false; evidence: [NoProfileEvidence, MetricsMissingEvidence] }
  | { code: 'role-missing-policies'; retryable: false; evidence: [RolePoliciesEvidence, MetricsMissingEvidence] }
  | {
      code: 'ssm-offline';
      retryable: true;
      evidence: [SsmPresenceEvidence, MetricsMissingEvidence] | [SsmPresenceEvidence, InstallCommandEvidence, MetricsMissingEvidence];
    }
  | { code: 'command-not-sent'; retryable: true; evidence: [SsmPresenceEvidence, MetricsMissingEvidence] }
  | { code: 'command-failed' | 'command-timed-out' | 'no-datapoints' | 'command-running'; retryable: true; evidence: [InstallCommandEvidence, MetricsMissingEvidence] }
  | { code: 'partial-metrics'; retryable: false; evidence: [InstallCommandEvidence, MetricsPresentEvidence, MetricsMissingEvidence] }
);

/** What CloudWatch holds for an instance's expected series, reduced to what the checker decides on. */
export interface MetricFindings {
  expected: ExpectedMetric[];
  /** Series with a datapoint inside the lookback window. */
  present: string[];
  missing: string[];
  /** Earliest datapoint of any expected series in the queried window. */
  firstDatapointAt: string | undefined;
  window: { start: string; end: string };
}

/** Everything the diagnosis is decided from; gathered by the flow, one AWS module each. */
export interface DiagnosisFacts {
  instanceId: string;
  os: OsFamily;
  /** From DescribeInstances: the profile associated now. */
  profileArn: string | undefined;
  /** The profile's role and which required policies it lacks (undefined without a profile). */
  role: { roleName: string | undefined; missing: string[] } | undefined;
  ssm: SsmPresence;
  /** Undefined when no install command is recorded for this launch. */
  command: CommandStatus | undefined;
  metrics: MetricFindings;
  region: string;
  agentProfileName: string;
  agentDocumentName: string;
  /** The AmazonCloudWatch-* parameter of the instance's OS. */
  configParameter: string;
  checkFunctionName: string;
}

/**
 * Reduces GetMetricData results to present / missing series: a series is present when it has a
 * datapoint no older than `lookbackSeconds` (the agent interval plus ingestion delay).
 */
export function metricFindings(
  expected: ExpectedMetric[],
  presence: SeriesPresence[],
  window: { start: Date; end: Date },
  lookbackSeconds: number,
): MetricFindings {
  const recentFrom = window.end.getTime() - lookbackSeconds * 1000;
  const present: string[] = [];
  const missing: string[] = [];
  const firsts: number[] = [];
  for (const metric of expected) {
    const series = presence.find((p) => p.metricName === metric.metricName);
    if (series?.firstDatapoint) firsts.push(Date.parse(series.firstDatapoint));
    const recent = series?.lastDatapoint !== undefined && Date.parse(series.lastDatapoint) >= recentFrom;
    (recent ? present : missing).push(metric.metricName);
  }
  const first = firsts.length ? new Date(Math.min(...firsts)).toISOString() : undefined;
  return { expected, present, missing, firstDatapointAt: first, window: { start: window.start.toISOString(), end: window.end.toISOString() } };
}

function missingMetrics(facts: DiagnosisFacts): MetricsMissingEvidence {
  const { metrics } = facts;
  return {
    kind: 'metrics-missing',
    namespace: metrics.expected[0]?.namespace ?? '?',
    metricNames: metrics.missing,
    instanceId: facts.instanceId,
    window: metrics.window,
  };
}

function ssmPresenceOf(ssm: SsmPresence): SsmPresenceEvidence {
  return { kind: 'ssm-presence', pingStatus: ssm.pingStatus, agentVersion: ssm.agentVersion, lastPing: ssm.lastPing };
}

function installCommandOf(command: CommandStatus): InstallCommandEvidence {
  return { kind: 'install-command', ...command };
}

/**
 * Finds out why an instance's expected metrics are missing, from the facts the APIs gave, checking
 * causes in a fixed order: the role, Systems Manager, the install command, then the metrics
 * themselves. Pure: the flow gathers the facts; `explain` words the finding.
 *
 * @example
 * diagnose({ ...facts, profileArn: undefined }).code; // 'no-instance-profile'
 */
export function diagnose(facts: DiagnosisFacts): Diagnosis {
  const subject: DiagnosisSubject = {
    instanceId: facts.instanceId,
    os: facts.os,
    region: facts.region,
    agentProfileName: facts.agentProfileName,
    agentDocumentName: facts.agentDocumentName,
    configParameter: facts.configParameter,
    checkFunctionName: facts.checkFunctionName,
  };
  const missing = missingMetrics(facts);

  if (!facts.profileArn) {
    return { subject, code: 'no-instance-profile', retryable: false, evidence: [{ kind: 'no-instance-profile' }, missing] };
  }
  if (facts.role && facts.role.missing.length > 0) {
    return {
      subject,
      code: 'role-missing-policies',
      retryable: false,
      evidence: [{ kind: 'role-policies', profileArn: facts.profileArn, roleName: facts.role.roleName, missing: facts.role.missing }, missing],
    };
  }
  if (facts.ssm.pingStatus !== 'Online') {
    const ssm = ssmPresenceOf(facts.ssm);
    return {
      subject,
      code: 'ssm-offline',
      retryable: true,
      evidence: facts.command ? [ssm, installCommandOf(facts.command), missing] : [ssm, missing],
    };
  }
  const command = facts.command;
  if (!command) {
    return { subject, code: 'command-not-sent', retryable: true, evidence: [ssmPresenceOf(facts.ssm), missing] };
  }
  const installed = installCommandOf(command);
  if (command.state === 'failed' || command.state === 'cancelled') {
    return { subject, code: 'command-failed', retryable: true, evidence: [installed, missing] };
  }
  if (command.state === 'timed-out') {
    return { subject, code: 'command-timed-out', retryable: true, evidence: [installed, missing] };
  }
  if (command.state === 'success') {
    if (facts.metrics.present.length > 0) {
      return {
        subject,
        code: 'partial-metrics',
        retryable: false,
        evidence: [installed, { kind: 'metrics-present', metricNames: facts.metrics.present }, missing],
      };
    }
    return { subject, code: 'no-datapoints', retryable: true, evidence: [installed, missing] };
  }
  return { subject, code: 'command-running', retryable: true, evidence: [installed, missing] };
}
