import type { Diagnosis, DiagnosisCode, DiagnosisSubject, Evidence, InstallCommandEvidence, SsmPresenceEvidence } from './check-diagnosis.js';

/** A diagnosis in words a person can act on. */
export interface Explanation {
  /** One sentence: what is wrong. */
  summary: string;
  /** The facts the finding rests on, one line each (a failing step's output quoted on `  | ` lines). */
  evidence: string[];
  /** What a person should do: a command or a console link. */
  nextStep: string;
}

/** What the state record keeps of a diagnosis: its code and whether it is retryable, with its words. */
export type RecordedDiagnosis = { code: DiagnosisCode; retryable: boolean } & Explanation;

function consoleUrl(region: string, path: string): string {
  return `https://${region}.console.aws.amazon.com/${path}`;
}

/** The CLI commands a person runs to re-send the install and to check again, for next steps. */
function commandsFor(subject: DiagnosisSubject): { reinstall: string; recheck: string } {
  const { region, instanceId } = subject;
  return {
    reinstall: `aws ssm send-command --region ${region} --document-name ${subject.agentDocumentName} --instance-ids ${instanceId} --parameters configParameter=${subject.configParameter}`,
    recheck: `aws lambda invoke --region ${region} --function-name ${subject.checkFunctionName} --cli-binary-format raw-in-base64-out --payload '{"instanceId":"${instanceId}"}' /dev/stdout`,
  };
}

function ssmLine(ssm: SsmPresenceEvidence): string {
  const parts = [`Systems Manager ping status ${ssm.pingStatus}`];
  if (ssm.agentVersion) parts.push(`SSM agent ${ssm.agentVersion}`);
  if (ssm.lastPing) parts.push(`last ping ${ssm.lastPing}`);
  return parts.join(', ');
}

function stepWords(command: InstallCommandEvidence): string {
  if (command.step === 'installAgent') return 'install step (installAgent)';
  if (command.step === 'configureAgent') return 'configure step (configureAgent)';
  return 'install command';
}

/**
 * One piece of evidence as lines a person reads: the fact first, then (for a failing install step)
 * the first lines of its output, each on a `  | ` line.
 *
 * @example
 * evidenceLines({ kind: 'no-instance-profile' }); // ['EC2: no IAM instance profile is associated']
 */
export function evidenceLines(evidence: Evidence): string[] {
  switch (evidence.kind) {
    case 'no-instance-profile':
      return ['EC2: no IAM instance profile is associated'];
    case 'role-policies':
      return [`IAM: profile ${evidence.profileArn} role ${evidence.roleName ?? '(none)'} lacks ${evidence.missing.join(', ')}`];
    case 'ssm-presence':
      return [ssmLine(evidence)];
    case 'install-command': {
      const head = `install command ${evidence.commandId}: ${evidence.status ?? 'not yet known to Systems Manager'}${evidence.step ? ` at step ${evidence.step}` : ''}${
        evidence.statusDetails && evidence.statusDetails !== evidence.status ? ` (${evidence.statusDetails})` : ''
      }${evidence.responseCode !== undefined && evidence.responseCode >= 0 && evidence.state !== 'success' ? `, exit code ${evidence.responseCode}` : ''}`;
      return [head, ...evidence.errorLines.map((line) => `  | ${line}`)];
    }
    case 'metrics-present':
      return [`CloudWatch: datapoints for ${evidence.metricNames.join(', ')}`];
    case 'metrics-missing':
      return [
        `CloudWatch: no datapoints for ${evidence.namespace} ${evidence.metricNames.join(', ')} on {InstanceId=${evidence.instanceId}} between ${evidence.window.start} and ${evidence.window.end}`,
      ];
  }
}

/** The summary and next step of a diagnosis, from its code and the evidence it carries. */
function words(diagnosis: Diagnosis): { summary: string; nextStep: string } {
  const { region, instanceId } = diagnosis.subject;
  const cli = commandsFor(diagnosis.subject);
  const runCommandUrl = (commandId: string) => consoleUrl(region, `systems-manager/run-command/${commandId}?region=${region}`);

  switch (diagnosis.code) {
    case 'no-instance-profile':
      return {
        summary: 'The instance has no IAM instance profile, so the CloudWatch agent cannot publish and Systems Manager cannot reach it.',
        nextStep: `Associate a profile whose role has CloudWatchAgentServerPolicy and AmazonSSMManagedInstanceCore: aws ec2 associate-iam-instance-profile --region ${region} --instance-id ${instanceId} --iam-instance-profile Name=${diagnosis.subject.agentProfileName}; then re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`,
      };
    case 'role-missing-policies': {
      const [{ roleName: role, missing, profileArn }] = diagnosis.evidence;
      return {
        summary: role
          ? `The instance role ${role} lacks ${missing.join(' and ')}, so the agent cannot be installed or cannot publish.`
          : 'The instance profile contains no role, so the agent cannot be installed or cannot publish.',
        nextStep: role
          ? `${missing.map((policy) => `aws iam attach-role-policy --role-name ${role} --policy-arn arn:aws:iam::aws:policy/${policy}`).join(' && ')}; then restart the SSM agent (or reboot) so it picks up the role, re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`
          : `Add a role with CloudWatchAgentServerPolicy and AmazonSSMManagedInstanceCore to the instance profile ${profileArn}, then re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`,
      };
    }
    case 'ssm-offline':
      return {
        summary: `Systems Manager does not see the instance online (${diagnosis.evidence[0].pingStatus}), so the install command cannot run.`,
        nextStep: `Make sure the SSM agent runs on the instance and it can reach the ssm, ssmmessages and ec2messages endpoints (NAT gateway or VPC endpoints); a newly attached role is picked up after an SSM agent restart. Fleet Manager: ${consoleUrl(region, `systems-manager/fleet-manager/managed-nodes/${instanceId}/general?region=${region}`)}. Once it is Online: ${cli.reinstall}, then ${cli.recheck}`,
      };
    case 'command-not-sent':
      return {
        summary: 'No install command is recorded for this launch of the instance.',
        nextStep: `Send the install command (${cli.reinstall}), then check again (${cli.recheck}).`,
      };
    case 'command-failed': {
      const [command] = diagnosis.evidence;
      return {
        summary: `The CloudWatch agent ${stepWords(command)} ${command.state === 'cancelled' ? 'was cancelled' : 'failed'}.`,
        nextStep: `Read the step's output: aws ssm get-command-invocation --region ${region} --command-id ${command.commandId} --instance-id ${instanceId}${
          command.step ? ` --plugin-name ${command.step}` : ''
        } (or ${runCommandUrl(command.commandId)}), fix the cause, re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`,
      };
    }
    case 'command-timed-out': {
      const [command] = diagnosis.evidence;
      return {
        summary: `The install command timed out${command.step ? ` at step ${command.step}` : ''}: the instance could not finish it in time.`,
        nextStep: `Check the instance can download from the package repository (S3 in ${region}) and is not overloaded (output: ${runCommandUrl(command.commandId)}), then re-send the install (${cli.reinstall}) and check again (${cli.recheck}).`,
      };
    }
    case 'partial-metrics': {
      const [, present, missing] = diagnosis.evidence;
      return {
        summary: `The agent publishes ${present.metricNames.join(', ')} but not ${missing.metricNames.join(', ')}: its configuration does not produce every expected series.`,
        nextStep: `Compare the agent config on the instance (/opt/aws/amazon-cloudwatch-agent/etc/ or C:\\ProgramData\\Amazon\\AmazonCloudWatchAgent\\) with the deployed parameter: the disk resource must exist, and aggregation_dimensions must include ["InstanceId"]. After fixing: ${cli.reinstall}, then ${cli.recheck}`,
      };
    }
    case 'no-datapoints':
      return {
        summary: 'The agent was installed and configured, but no datapoints arrive: most likely the instance has no route to the CloudWatch endpoint, or the config lacks the {InstanceId} aggregated series.',
        nextStep: `On the instance, read the agent log (${
          diagnosis.subject.os === 'windows' ? 'C:\\ProgramData\\Amazon\\AmazonCloudWatchAgent\\Logs\\amazon-cloudwatch-agent.log' : '/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log'
        }) and check it reaches monitoring.${region}.amazonaws.com (NAT gateway or a com.amazonaws.${region}.monitoring VPC endpoint). Then check again: ${cli.recheck}`,
      };
    case 'command-running': {
      const [command] = diagnosis.evidence;
      return {
        summary: `The install command has not finished${command.step ? ` (step ${command.step} is ${command.status ?? 'pending'})` : ' (not yet known to Systems Manager)'}.`,
        nextStep: `Wait; if it stays pending, look at the command: ${runCommandUrl(command.commandId)}`,
      };
    }
  }
}

/**
 * Puts a diagnosis into words: what is wrong, the evidence line by line, and the next step with the
 * commands to run (exact CLI invocations and console links). Pure.
 *
 * @example
 * explain(diagnose(facts)).nextStep; // 'Send the install command (aws ssm send-command ...), then check again (...)'
 */
export function explain(diagnosis: Diagnosis): Explanation {
  return { ...words(diagnosis), evidence: diagnosis.evidence.flatMap(evidenceLines) };
}

/** What the state record keeps of a diagnosis (code, retryable, and its words). */
export function recordedDiagnosis(diagnosis: Diagnosis): RecordedDiagnosis {
  return { code: diagnosis.code, retryable: diagnosis.retryable, ...explain(diagnosis) };
}
