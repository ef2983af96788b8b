import type { ExpectedMetric, OsFamily } from './agent-config.js';
import type { CommandStatus } from './command-status.js';
import type { SeriesPresence } from './metric-queries.js';
import type { SsmPresence } from './ssm-presence.js';

/** Why an instance's metrics are missing, most fundamental first (the order they are checked). */
export type DiagnosisCode =
  | 'no-instance-profile'
  | 'role-missing-policies'
  | 'ssm-offline'
  | 'command-not-sent'
  | 'command-failed'
  | 'command-timed-out'
  | 'partial-metrics'
  | 'no-datapoints'
  | 'command-running';

/** The checker's finding for an instance whose metrics are missing, in words a person can act on. */
export interface Diagnosis {
  code: DiagnosisCode;
  /** Whether waiting or re-running the install command can fix it (else alert at once). */
  retryable: boolean;
  /** One sentence: what is wrong. */
  summary: string;
  /** The facts the finding rests on, as the APIs reported them. */
  evidence: string[];
  /** What a person should do: a command or a console link. */
  nextStep: string;
}

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

function consoleUrl(region: string, path: string): string {
  return `https://${region}.console.aws.amazon.com/${path}`;
}

/** The CLI commands a person runs to re-send the install and to check again, for next steps. */
function commandsFor(facts: DiagnosisFacts): { reinstall: string; recheck: string } {
  const { region, instanceId } = facts;
  return {
    reinstall: `aws ssm send-command --region ${region} --document-name ${facts.agentDocumentName} --instance-ids ${instanceId} --parameters configParameter=${facts.configParameter}`,
    recheck: `aws lambda invoke --region ${region} --function-name ${facts.checkFunctionName} --cli-binary-format raw-in-base64-out --payload '{"instanceId":"${instanceId}"}' /dev/stdout`,
  };
}

function metricEvidence(facts: DiagnosisFacts): string {
  const { metrics } = facts;
  const namespace = metrics.expected[0]?.namespace ?? '?';
  const names = metrics.missing.join(', ');
  return `CloudWatch: no datapoints for ${namespace} ${names} on {InstanceId=${facts.instanceId}} between ${metrics.window.start} and ${metrics.window.end}`;
}

function ssmEvidence(ssm: SsmPresence): string {
  const parts = [`Systems Manager ping status ${ssm.pingStatus}`];
  if (ssm.agentVersion) parts.push(`SSM agent ${ssm.agentVersion}`);
  if (ssm.lastPing) parts.push(`last ping ${ssm.lastPing}`);
  return parts.join(', ');
}

function stepWords(command: CommandStatus): string {
  if (command.step === 'installAgent') return 'install step (installAgent)';
  if (command.step === 'configureAgent') return 'configure step (configureAgent)';
  return 'install command';
}

function commandEvidence(command: CommandStatus): string[] {
  const head = `install command ${command.commandId}: ${command.status ?? 'not yet known to Systems Manager'}${command.step ? ` at step ${command.step}` : ''}${
    command.statusDetails && command.statusDetails !== command.status ? ` (${command.statusDetails})` : ''
  }${command.responseCode !== undefined && command.responseCode >= 0 && command.state !== 'success' ? `, exit code ${command.responseCode}` : ''}`;
  return [head, ...command.errorLines.map((line) => `  | ${line}`)];
}

/**
 * Finds out why an instance's expected metrics are missing, from the facts the APIs gave, checking
 * causes in a fixed order: the role, Systems Manager, the install command, then the metrics
 * themselves. Pure: the flow gathers the facts.
 *
 * @example
 * diagnose({ ...facts, profileArn: undefined }).code; // 'no-instance-profile'
 */
export function diagnose(facts: DiagnosisFacts): Diagnosis {
  const { instanceId, region, metrics } = facts;
  const missingMetrics = metricEvidence(facts);
  const cli = commandsFor(facts);
  const runCommandUrl = (commandId: string) => consoleUrl(region, `systems-manager/run-command/${commandId}?region=${region}`);

  if (!facts.profileArn) {
    return {
      code: 'no-instance-profile',
      retryable: false,
      summary: 'The instance has no IAM instance profile, so the CloudWatch agent cannot publish and Systems Manager cannot reach it.',
      evidence: ['EC2: no IAM instance profile is associated', missingMetrics],
      nextStep: `Associate a profile whose role has CloudWatchAgentServerPolicy and AmazonSSMManagedInstanceCore: aws ec2 associate-iam-instance-profile --region ${region} --instance-id ${instanceId} --iam-instance-profile Name=${facts.agentProfileName}; then re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`,
    };
  }
  if (facts.role && facts.role.missing.length > 0) {
    const role = facts.role.roleName;
    return {
      code: 'role-missing-policies',
      retryable: false,
      summary: role
        ? `The instance role ${role} lacks ${facts.role.missing.join(' and ')}, so the agent cannot be installed or cannot publish.`
        : 'The instance profile contains no role, so the agent cannot be installed or cannot publish.',
      evidence: [`IAM: profile ${facts.profileArn} role ${role ?? '(none)'} lacks ${facts.role.missing.join(', ')}`, missingMetrics],
      nextStep: role
        ? `${facts.role.missing.map((policy) => `aws iam attach-role-policy --role-name ${role} --policy-arn arn:aws:iam::aws:policy/${policy}`).join(' && ')}; then restart the SSM agent (or reboot) so it picks up the role, re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`
        : `Add a role with CloudWatchAgentServerPolicy and AmazonSSMManagedInstanceCore to the instance profile ${facts.profileArn}, then re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`,
    };
  }
  if (facts.ssm.pingStatus !== 'Online') {
    return {
      code: 'ssm-offline',
      retryable: true,
      summary: `Systems Manager does not see the instance online (${facts.ssm.pingStatus}), so the install command cannot run.`,
      evidence: [ssmEvidence(facts.ssm), ...(facts.command ? commandEvidence(facts.command) : []), missingMetrics],
      nextStep: `Make sure the SSM agent runs on the instance and it can reach the ssm, ssmmessages and ec2messages endpoints (NAT gateway or VPC endpoints); a newly attached role is picked up after an SSM agent restart. Fleet Manager: ${consoleUrl(region, `systems-manager/fleet-manager/managed-nodes/${instanceId}/general?region=${region}`)}. Once it is Online: ${cli.reinstall}, then ${cli.recheck}`,
    };
  }
  const command = facts.command;
  if (!command) {
    return {
      code: 'command-not-sent',
      retryable: true,
      summary: 'No install command is recorded for this launch of the instance.',
      evidence: [ssmEvidence(facts.ssm), missingMetrics],
      nextStep: `Send the install command (${cli.reinstall}), then check again (${cli.recheck}).`,
    };
  }
  if (command.state === 'failed' || command.state === 'cancelled') {
    return {
      code: 'command-failed',
      retryable: true,
      summary: `The CloudWatch agent ${stepWords(command)} ${command.state === 'cancelled' ? 'was cancelled' : 'failed'}.`,
      evidence: [...commandEvidence(command), missingMetrics],
      nextStep: `Read the step's output: aws ssm get-command-invocation --region ${region} --command-id ${command.commandId} --instance-id ${instanceId}${
        command.step ? ` --plugin-name ${command.step}` : ''
      } (or ${runCommandUrl(command.commandId)}), fix the cause, re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`,
    };
  }
  if (command.state === 'timed-out') {
    return {
      code: 'command-timed-out',
      retryable: true,
      summary: `The install command timed out${command.step ? ` at step ${command.step}` : ''}: the instance could not finish it in time.`,
      evidence: [...commandEvidence(command), missingMetrics],
      nextStep: `Check the instance can download from the package repository (S3 in ${region}) and is not overloaded (output: ${runCommandUrl(command.commandId)}), then re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`,
    };
  }
  if (command.state === 'success') {
    if (metrics.present.length > 0) {
      return {
        code: 'partial-metrics',
        retryable: false,
        summary: `The agent publishes ${metrics.present.join(', ')} but not ${metrics.missing.join(', ')}: its configuration does not produce every expected series.`,
        evidence: [...commandEvidence(command), `CloudWatch: datapoints for ${metrics.present.join(', ')}`, missingMetrics],
        nextStep: `Compare the agent config on the instance (/opt/aws/amazon-cloudwatch-agent/etc/ or C:\\ProgramData\\Amazon\\AmazonCloudWatchAgent\\) with the deployed parameter: the disk resource must exist, and aggregation_dimensions must include ["InstanceId"]. After fixing: ${cli.reinstall}, then ${cli.recheck}`,
      };
    }
    return {
      code: 'no-datapoints',
      retryable: true,
      summary: 'The agent was installed and configured, but no datapoints arrive: most likely the instance has no route to the CloudWatch endpoint, or the config lacks the {InstanceId} aggregated series.',
      evidence: [...commandEvidence(command), missingMetrics],
      nextStep: `On the instance, read the agent log (${
        facts.os === 'windows' ? 'C:\\ProgramData\\Amazon\\AmazonCloudWatchAgent\\Logs\\amazon-cloudwatch-agent.log' : '/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log'
      }) and check it reaches monitoring.${region}.amazonaws.com (NAT gateway or a com.amazonaws.${region}.monitoring VPC endpoint). Then check again: ${cli.recheck}`,
    };
  }
  return {
    code: 'command-running',
    retryable: true,
    summary: `The install command has not finished${command.step ? ` (step ${command.step} is ${command.status ?? 'pending'})` : ' (not yet known to Systems Manager)'}.`,
    evidence: [...commandEvidence(command), missingMetrics],
    nextStep: `Wait; if it stays pending, look at the command: ${runCommandUrl(command.commandId)}`,
  };
}
