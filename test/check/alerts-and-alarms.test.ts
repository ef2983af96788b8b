import { describe, expect, it } from 'vitest';
import { diagnose } from '../../shared/checking/check-diagnosis.js';
import { renderAlert, renderRecovery, snsSubject } from '../../shared/checking/alerts.js';
import { instanceAlarms } from '../../shared/checking/instance-alarms.js';
import { parseSettings } from '../../shared/config/settings.js';
import { commandStatusOf, env, factsOf, instanceId, recordOf, settings } from './fixtures.js';

describe('alert text', () => {
  const diagnosis = diagnose(factsOf({ command: commandStatusOf({ state: 'failed', status: 'Failed', step: 'installAgent', errorLines: ['E: Unable to fetch package'] }) }));
  const now = new Date('2026-01-10T10:25:00.000Z');
  const alert = renderAlert({ record: recordOf({ reinstalls: 2 }), diagnosis, checks: 3, scheduleNames: [], settings, now });

  it('the subject names the instance (Name tag and id) and the diagnosis', () => {
    expect(alert.subject).toBe(`[cw-agent-autopilot] web-1 (${instanceId}): metrics missing - command-failed`);
  });

  it('the body says what was tried, the evidence and the next step, with the console link', () => {
    expect(alert.body).toContain('What was tried:\n- instance profile: associated-agent-profile');
    expect(alert.body).toContain('(install command re-sent 2 time(s))');
    expect(alert.body).toContain('- checked the metrics 3 time(s)');
    expect(alert.body).toContain('    | E: Unable to fetch package');
    expect(alert.body).toContain("Next step:\nRead the step's output: aws ssm get-command-invocation");
    expect(alert.body).toContain(`https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#InstanceDetails:instanceId=${instanceId}`);
  });

  it('subscribers can filter on severity, event, diagnosis and instance, and on the account, region and payload version', () => {
    expect(alert.attributes).toEqual({
      severity: 'critical',
      event: 'alert',
      diagnosis: 'command-failed',
      instanceId,
      os: 'linux',
      account: '123456789012',
      region: 'us-east-1',
      schemaVersion: '1',
    });
  });

  it('a Name tag that is not printable ASCII is left out of the subject, never turned into question marks; the body keeps it as written', () => {
    for (const name of ['웹서버-1', 'web 🚀', `Über-${'x'.repeat(120)}`, 'tab\there']) {
      const alert = renderAlert({ record: recordOf({ name }), diagnosis, checks: 1, scheduleNames: [], settings, now });
      expect(alert.subject).toBe(`[cw-agent-autopilot] ${instanceId}: metrics missing - command-failed`);
      expect(alert.body).toContain(`CloudWatch agent metrics are missing for ${name} (${instanceId}).`);
    }
    const recovery = renderRecovery({ record: recordOf({ name: '웹서버-1', alertedAt: '2026-01-10T10:20:00.000Z' }), firstDatapointAt: undefined, alarmNames: [], scheduleNames: [], settings, now });
    expect(recovery.subject).toBe(`[cw-agent-autopilot] ${instanceId}: recovered, metrics arrive`);
    expect(recovery.body).toContain(`CloudWatch agent metrics now arrive for 웹서버-1 (${instanceId}).`);
  });

  it('an ASCII Name tag is trimmed in the subject, and a long one cut below 100 characters', () => {
    expect(renderAlert({ record: recordOf({ name: '  web-1  ' }), diagnosis, checks: 1, scheduleNames: [], settings, now }).subject).toBe(
      `[cw-agent-autopilot] web-1 (${instanceId}): metrics missing - command-failed`,
    );
    const subject = renderAlert({ record: recordOf({ name: `db-${'x'.repeat(120)}` }), diagnosis, checks: 1, scheduleNames: [], settings, now }).subject;
    expect(subject).toHaveLength(99);
    expect(subject).toMatch(/^\[cw-agent-autopilot\] db-x+\.\.\.$/);
    expect(snsSubject('a\nb')).toBe('a b');
    expect(snsSubject('é')).toBe('?');
  });

  it('the recovery message names the diagnosis that was alerted', () => {
    const recovery = renderRecovery({ record: recordOf({ alertedAt: '2026-01-10T10:20:00.000Z', alertedDiagnosis: 'no-datapoints' }), firstDatapointAt: '2026-01-10T10:31:00.000Z', alarmNames: ['a'], scheduleNames: [], settings, now });
    expect(recovery.subject).toBe(`[cw-agent-autopilot] web-1 (${instanceId}): recovered, metrics arrive`);
    expect(recovery.attributes).toMatchObject({ severity: 'info', event: 'recovery', diagnosis: 'no-datapoints' });
  });
});

describe('instance alarms', () => {
  it('a Linux instance gets a missing-data alarm per series and used-% threshold alarms, tagged, on the topic', () => {
    const alarms = instanceAlarms(instanceId, 'linux', settings);
    expect(alarms.map((a) => a.AlarmName)).toEqual([
      `cwap-dev-${instanceId}-MEMORY_USED-missing`,
      `cwap-dev-${instanceId}-MEMORY_USED-high`,
      `cwap-dev-${instanceId}-DISK_USED-missing`,
      `cwap-dev-${instanceId}-DISK_USED-high`,
    ]);
    const missing = alarms[0];
    expect(missing).toMatchObject({
      Namespace: 'CloudWatch/TestMetrics',
      Dimensions: [{ Name: 'InstanceId', Value: instanceId }],
      Statistic: 'SampleCount',
      Period: 60,
      EvaluationPeriods: 15,
      TreatMissingData: 'breaching',
      AlarmActions: [settings.alertTopicArn],
    });
    expect(alarms[1]).toMatchObject({ ComparisonOperator: 'GreaterThanThreshold', Threshold: 90, Period: 300, EvaluationPeriods: 3 });
    for (const alarm of alarms) expect(alarm.Tags).toContainEqual({ Key: 'cw-autopilot:instance-id', Value: instanceId });
    // No OK actions: each new alarm goes INSUFFICIENT_DATA -> OK once, which is nobody's news.
    for (const alarm of alarms) expect(alarm.OKActions).toBeUndefined();
  });

  it('a Windows instance alarms on free space below 100 - DISK_ALARM_THRESHOLD', () => {
    const alarms = instanceAlarms(instanceId, 'windows', parseSettings({ ...env, DISK_ALARM_THRESHOLD: '85', ALARM_PREFIX: 'ops' }));
    expect(alarms.at(-1)).toMatchObject({ AlarmName: `ops-${instanceId}-DISK_FREE-low`, MetricName: 'DISK_FREE', ComparisonOperator: 'LessThanThreshold', Threshold: 15 });
  });
});
