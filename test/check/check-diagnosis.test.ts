import { describe, expect, it } from 'vitest';
import { diagnose, metricFindings } from '../../shared/checking/check-diagnosis.js';
import { explain } from '../../shared/checking/check-explanation.js';
import { commandStatusOf, factsOf, instanceId } from './fixtures.js';

describe('diagnosis of an instance whose metrics are missing', () => {
  it('an instance without an instance profile: not retryable, the next step associates one', () => {
    const diagnosis = diagnose(factsOf({ profileArn: undefined, role: undefined, ssm: { pingStatus: 'NotRegistered', agentVersion: undefined, platformType: undefined, lastPing: undefined } }));
    expect(diagnosis.code).toBe('no-instance-profile');
    expect(diagnosis.retryable).toBe(false);
    expect(explain(diagnosis).nextStep).toContain(`aws ec2 associate-iam-instance-profile --region us-east-1 --instance-id ${instanceId} --iam-instance-profile Name=cwap-dev-agent`);
  });

  it('a workload role without CloudWatchAgentServerPolicy: names the role and the policy to attach', () => {
    const diagnosis = diagnose(factsOf({ role: { roleName: 'app-role', missing: ['CloudWatchAgentServerPolicy'] } }));
    expect(diagnosis.code).toBe('role-missing-policies');
    expect(diagnosis.retryable).toBe(false);
    expect(explain(diagnosis).summary).toContain('app-role lacks CloudWatchAgentServerPolicy');
    expect(explain(diagnosis).nextStep).toMatch(/^aws iam attach-role-policy --role-name app-role --policy-arn arn:aws:iam::aws:policy\/CloudWatchAgentServerPolicy; /);
  });

  it('the role is checked before Systems Manager: a role fault explains an offline agent too', () => {
    const diagnosis = diagnose(factsOf({ role: { roleName: 'app-role', missing: ['AmazonSSMManagedInstanceCore'] }, ssm: { pingStatus: 'NotRegistered', agentVersion: undefined, platformType: undefined, lastPing: undefined } }));
    expect(diagnosis.code).toBe('role-missing-policies');
  });

  it('not online in Systems Manager: retryable, with the ping status and agent version as evidence', () => {
    const diagnosis = diagnose(factsOf({ ssm: { pingStatus: 'ConnectionLost', agentVersion: '3.2.1.0', platformType: 'Linux', lastPing: '2026-01-10T09:00:00.000Z' }, command: commandStatusOf({ state: 'running', status: 'Pending' }) }));
    expect(diagnosis.code).toBe('ssm-offline');
    expect(diagnosis.retryable).toBe(true);
    expect(explain(diagnosis).evidence[0]).toBe('Systems Manager ping status ConnectionLost, SSM agent 3.2.1.0, last ping 2026-01-10T09:00:00.000Z');
  });

  it('an install step that failed: names the step and quotes the first lines of its error output', () => {
    const diagnosis = diagnose(
      factsOf({ command: commandStatusOf({ state: 'failed', status: 'Failed', step: 'installAgent', errorLines: ['Failed to download package', 'exit status 1'], responseCode: 1 }) }),
    );
    expect(diagnosis.code).toBe('command-failed');
    expect(diagnosis.retryable).toBe(true);
    expect(explain(diagnosis).summary).toBe('The CloudWatch agent install step (installAgent) failed.');
    expect(explain(diagnosis).evidence).toContain('install command cmd-1: Failed at step installAgent, exit code 1');
    expect(explain(diagnosis).evidence).toContain('  | Failed to download package');
    expect(explain(diagnosis).nextStep).toContain(`aws ssm get-command-invocation --region us-east-1 --command-id cmd-1 --instance-id ${instanceId} --plugin-name installAgent`);
  });

  it('a configure step that failed is told apart from the install', () => {
    const diagnosis = diagnose(factsOf({ command: commandStatusOf({ state: 'failed', status: 'Failed', step: 'configureAgent', errorLines: ['parameter not found'] }) }));
    expect(explain(diagnosis).summary).toBe('The CloudWatch agent configure step (configureAgent) failed.');
  });

  it('an install command that timed out', () => {
    const diagnosis = diagnose(factsOf({ command: commandStatusOf({ state: 'timed-out', status: 'TimedOut', step: 'installAgent' }) }));
    expect(diagnosis.code).toBe('command-timed-out');
    expect(diagnosis.retryable).toBe(true);
  });

  it('the command succeeded but no datapoints arrive: points at the route to CloudWatch and the aggregated series', () => {
    const diagnosis = diagnose(factsOf());
    expect(diagnosis.code).toBe('no-datapoints');
    expect(diagnosis.retryable).toBe(true);
    expect(explain(diagnosis).nextStep).toContain('monitoring.us-east-1.amazonaws.com');
    expect(explain(diagnosis).evidence.at(-1)).toBe(
      `CloudWatch: no datapoints for CloudWatch/TestMetrics MEMORY_USED, DISK_USED on {InstanceId=${instanceId}} between 2026-01-10T10:00:00.000Z and 2026-01-10T10:10:00.000Z`,
    );
  });

  it('some series arrive and others not: a config fault that no retry fixes', () => {
    const facts = factsOf();
    const diagnosis = diagnose({ ...facts, metrics: { ...facts.metrics, present: ['MEMORY_USED'], missing: ['DISK_USED'] } });
    expect(diagnosis.code).toBe('partial-metrics');
    expect(diagnosis.retryable).toBe(false);
  });

  it('the command still running, or not yet known right after SendCommand', () => {
    expect(diagnose(factsOf({ command: commandStatusOf({ state: 'running', status: 'InProgress', step: 'installAgent' }) })).code).toBe('command-running');
    const unknown = diagnose(factsOf({ command: commandStatusOf({ state: 'not-yet-known', status: undefined }) }));
    expect(unknown.code).toBe('command-running');
    expect(explain(unknown).summary).toContain('not yet known to Systems Manager');
  });

  it('no install command recorded for the launch: re-sending it is the fix, with the exact CLI commands', () => {
    const diagnosis = diagnose(factsOf({ command: undefined }));
    expect(diagnosis.code).toBe('command-not-sent');
    expect(diagnosis.retryable).toBe(true);
    expect(explain(diagnosis).nextStep).toBe(
      `Send the install command (aws ssm send-command --region us-east-1 --document-name cwap-dev-install-agent --instance-ids ${instanceId} --parameters configParameter=AmazonCloudWatch-cwap-dev-linux), then check again (aws lambda invoke --region us-east-1 --function-name cwap-dev-check --cli-binary-format raw-in-base64-out --payload '{"instanceId":"${instanceId}"}' /dev/stdout).`,
    );
  });
});

describe('deciding is separate from wording', () => {
  it('diagnose keeps the facts as the APIs gave them: a failed install step is its command status, not a sentence', () => {
    const command = commandStatusOf({ state: 'failed', status: 'Failed', step: 'installAgent', errorLines: ['Failed to download package'], responseCode: 1 });
    const diagnosis = diagnose(factsOf({ command }));
    expect(diagnosis.evidence).toEqual([
      { kind: 'install-command', ...command },
      {
        kind: 'metrics-missing',
        namespace: 'CloudWatch/TestMetrics',
        metricNames: ['MEMORY_USED', 'DISK_USED'],
        instanceId,
        window: { start: '2026-01-10T10:00:00.000Z', end: '2026-01-10T10:10:00.000Z' },
      },
    ]);
    expect(diagnosis.subject).toMatchObject({ instanceId, os: 'linux', region: 'us-east-1', checkFunctionName: 'cwap-dev-check' });
  });

  it('explain words each piece of evidence, in the order diagnose found it', () => {
    const diagnosis = diagnose(factsOf({ role: { roleName: undefined, missing: ['CloudWatchAgentServerPolicy', 'AmazonSSMManagedInstanceCore'] } }));
    expect(diagnosis.evidence[0]).toEqual({
      kind: 'role-policies',
      profileArn: 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent',
      roleName: undefined,
      missing: ['CloudWatchAgentServerPolicy', 'AmazonSSMManagedInstanceCore'],
    });
    const words = explain(diagnosis);
    expect(words.summary).toBe('The instance profile contains no role, so the agent cannot be installed or cannot publish.');
    expect(words.evidence[0]).toBe('IAM: profile arn:aws:iam::123456789012:instance-profile/cwap-dev-agent role (none) lacks CloudWatchAgentServerPolicy, AmazonSSMManagedInstanceCore');
    expect(words.evidence).toHaveLength(2);
  });
});

describe('metric findings', () => {
  const expected = factsOf().metrics.expected;
  const window = { start: new Date('2026-01-10T10:00:00Z'), end: new Date('2026-01-10T11:00:00Z') };
  it('a series whose last datapoint is older than the lookback is missing; the first datapoint is the earliest', () => {
    const findings = metricFindings(
      expected,
      [
        { instanceId, metricName: 'MEMORY_USED', datapoints: 50, firstDatapoint: '2026-01-10T10:03:00.000Z', lastDatapoint: '2026-01-10T10:58:00.000Z' },
        { instanceId, metricName: 'DISK_USED', datapoints: 20, firstDatapoint: '2026-01-10T10:02:00.000Z', lastDatapoint: '2026-01-10T10:30:00.000Z' },
      ],
      window,
      900,
    );
    expect(findings.present).toEqual(['MEMORY_USED']);
    expect(findings.missing).toEqual(['DISK_USED']);
    expect(findings.firstDatapointAt).toBe('2026-01-10T10:02:00.000Z');
  });
});
