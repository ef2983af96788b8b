import { readFileSync } from 'node:fs';
import 'aws-sdk-client-mock-vitest/extend';
import { mockClient } from 'aws-sdk-client-mock';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { afterEach, describe, expect, it } from 'vitest';
import type { TopicAttributes } from '../../shared/checking/alert-payload.js';
import { maxPublishBytes, publish, publishedBytes, renderAlert, renderMemberUnreachable, renderRecovery, structuredMessage, type TopicMessage } from '../../shared/checking/alerts.js';
import { MemberAccessError } from '../../shared/errors.js';
import { renderAuditSummary } from '../../shared/audit/audit-publication.js';
import { summarizeAudit, type AuditReport } from '../../shared/audit/audit-summary.js';
import { classifyInstance } from '../../shared/audit/instance-status.js';
import { diagnose, diagnosisCodes, type DiagnosisCode } from '../../shared/checking/check-diagnosis.js';
import type { DiagnosisFacts } from '../../shared/checking/check-diagnosis.js';
import { context as auditContext, healthyFacts, now as auditNow, silentMetrics } from '../audit/audit-facts.js';
import { commandStatusOf, factsOf, instanceId, recordOf, settings } from '../check/fixtures.js';
import { payloadViolations } from '../harness/payload-schema.js';
import { acceptsMessage, UnsupportedPolicyError, type FilterPolicy } from '../harness/sns-filter-policy.js';
import { readmePolicies } from './readme-policies.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();

const now = new Date('2026-01-10T10:25:00.000Z');
const offline = { pingStatus: 'ConnectionLost', agentVersion: '3.2.1.0', platformType: 'Linux', lastPing: '2026-01-10T09:00:00.000Z' };

/** Facts that lead to each diagnosis code, so every alert the checker can send is rendered. */
const factsFor: Record<DiagnosisCode, Partial<DiagnosisFacts>> = {
  'no-instance-profile': { profileArn: undefined, role: undefined },
  'role-missing-policies': { role: { roleName: 'app-role', missing: ['CloudWatchAgentServerPolicy'] } },
  'ssm-offline': { ssm: offline, command: commandStatusOf({ state: 'running', status: 'Pending' }) },
  'command-not-sent': { command: undefined },
  'command-failed': { command: commandStatusOf({ state: 'failed', status: 'Failed', step: 'installAgent', errorLines: ['E: Unable to fetch package'], responseCode: 1 }) },
  'command-timed-out': { command: commandStatusOf({ state: 'timed-out', status: 'TimedOut', step: 'installAgent' }) },
  'partial-metrics': { metrics: { ...factsOf().metrics, present: ['MEMORY_USED'], missing: ['DISK_USED'] } },
  'no-datapoints': {},
  'command-running': { command: commandStatusOf({ state: 'not-yet-known', status: undefined, statusDetails: undefined, responseCode: undefined }) },
};

function alertFor(code: DiagnosisCode, name = 'web-1'): TopicMessage {
  const diagnosis = diagnose(factsOf(factsFor[code]));
  expect(diagnosis.code).toBe(code);
  return renderAlert({ record: recordOf({ name }), diagnosis, checks: 3, scheduleNames: [`cwap-dev-check-${instanceId}-3`], settings, now });
}

const recovery = renderRecovery({
  record: recordOf({ status: 'healthy', alertedAt: '2026-01-10T10:05:00.000Z', alertedDiagnosis: 'no-datapoints' }),
  firstDatapointAt: '2026-01-10T10:21:00.000Z',
  alarmNames: [`cwap-dev-${instanceId}-MEMORY_USED-missing`],
  scheduleNames: [],
  settings,
  now,
});

function auditReport(extraNeedingPerson = 0): AuditReport {
  const lost = (id: string) => {
    const facts = healthyFacts({ instanceId: id });
    return classifyInstance({ ...facts, ssm: { pingStatus: 'ConnectionLost', agentVersion: undefined, platformType: 'Linux', lastPing: undefined }, metrics: silentMetrics(facts) }, auditContext);
  };
  const rows = [
    classifyInstance(healthyFacts({ instanceId: 'i-0000000000000000a' }), auditContext),
    lost('i-0000000000000000d'),
    ...Array.from({ length: extraNeedingPerson }, (_, index) => lost(`i-${index.toString(16).padStart(17, '0')}`)),
  ];
  return { summary: summarizeAudit(rows, { regions: ['us-east-1'], failures: [], now: auditNow }), instances: rows, remediation: null };
}

const audit = renderAuditSummary(auditReport(), settings, now);

/** An instance of a member account and region, alerted from the hub (123456789012, us-east-1). */
const member = { account: '111111111111', region: 'eu-west-1' };
const memberRecord = recordOf({ ...member, recordKey: `${member.account}:${member.region}:${instanceId}` });
const memberAlert = renderAlert({ record: memberRecord, diagnosis: diagnose(factsOf()), checks: 3, scheduleNames: [], settings, now, accountName: 'payments-prod' });
const memberRecovery = renderRecovery({ record: { ...memberRecord, status: 'healthy', alertedAt: '2026-01-10T10:05:00.000Z' }, firstDatapointAt: undefined, alarmNames: [], scheduleNames: [], settings, now });
const roleArn = 'arn:aws:iam::111111111111:role/cwap-dev-member-check-eu-west-1';
const denied = Object.assign(new Error('User: arn:aws:sts::123456789012:assumed-role/cwap-dev-us-east-1-check/x is not authorized to perform: sts:AssumeRole on resource: ' + roleArn), { name: 'AccessDenied' });
const unreachable = renderMemberUnreachable({ error: new MemberAccessError('cannot assume', { cause: denied, place: member, roleArn }), instanceId, settings, now });

const everyKind: [string, TopicMessage][] = [
  ...diagnosisCodes.map((code): [string, TopicMessage] => [`alert ${code}`, alertFor(code)]),
  ['recovery', recovery],
  ['audit summary', audit],
  ['member alert', memberAlert],
  ['member recovery', memberRecovery],
  ['member unreachable', unreachable],
];

describe('messages about a member account and region', () => {
  it('name the account (with its name when known) and region, and link the console of that region', () => {
    expect(memberAlert.subject).toBe(`[cw-agent-autopilot] 111111111111/eu-west-1 ${instanceId}: metrics missing - no-datapoints`);
    expect(memberAlert.body).toContain('Where: account 111111111111 (payments-prod), eu-west-1');
    expect(memberAlert.payload).toMatchObject({ account: '111111111111', accountName: 'payments-prod', region: 'eu-west-1' });
    expect((memberAlert.payload as { consoleUrl: string }).consoleUrl).toBe(`https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#InstanceDetails:instanceId=${instanceId}`);
    expect(memberAlert.body).toContain('(signed in to account 111111111111)');
    expect(memberAlert.attributes).toMatchObject({ account: '111111111111', region: 'eu-west-1' });
    expect(memberRecovery.subject).toBe(`[cw-agent-autopilot] 111111111111/eu-west-1 web-1 (${instanceId}): recovered, metrics arrive`);
    expect(memberRecovery.payload).toMatchObject({ account: '111111111111', accountName: null, region: 'eu-west-1' });
  });

  it("of the stack's own place stay as they were: no place in the subject, the stack's account and region", () => {
    const own = alertFor('no-datapoints');
    expect(own.subject).toBe(`[cw-agent-autopilot] web-1 (${instanceId}): metrics missing - no-datapoints`);
    expect(own.payload).toMatchObject({ account: '123456789012', region: 'us-east-1' });
    expect(own.body).toContain('Where: account 123456789012, us-east-1');
  });

  it('when the member role cannot be assumed: one message naming the account, region, role and what STS said, and the fix', () => {
    expect(unreachable.subject).toBe('[cw-agent-autopilot] account 111111111111 eu-west-1: member role not assumable');
    expect(unreachable.body).toContain(`Role: ${roleArn}`);
    expect(unreachable.body).toContain('STS said: AccessDenied: User: ');
    expect(unreachable.payload).toMatchObject({ event: 'member-unreachable', severity: 'critical', account: '111111111111', region: 'eu-west-1', member: { roleArn }, instanceId });
    expect(unreachable.payload.nextStep).toContain('npx cw-autopilot audit --accounts 111111111111 --regions eu-west-1 --remediate');
    expect(unreachable.attributes).toMatchObject({ event: 'member-unreachable', diagnosis: 'member-unreachable', account: '111111111111', instanceId });
  });
});

describe('one message, for people and machines', () => {
  it('is published with MessageStructure json: the text for default and e-mail, the JSON payload for http, https, sqs, lambda and firehose', async () => {
    const sns = mockClient(SNSClient);
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    const alert = alertFor('command-failed');
    expect(await publish(clients, alert, settings)).toBe('m-1');

    const input = sns.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(input).toMatchObject({ TopicArn: settings.alertTopicArn, Subject: alert.subject, MessageStructure: 'json' });
    const protocols = JSON.parse(input?.Message ?? '{}');
    expect(Object.keys(protocols).sort()).toEqual(['default', 'email', 'firehose', 'http', 'https', 'lambda', 'sqs']);
    expect(protocols.default).toBe(alert.body);
    expect(protocols.email).toBe(alert.body);
    for (const protocol of ['http', 'https', 'sqs', 'lambda', 'firehose']) expect(JSON.parse(protocols[protocol])).toEqual(alert.payload);
    sns.restore();
  });

  it.each(everyKind)('the %s payload conforms to the published schema (schemas/alert-payload.v1.json)', (_kind, message) => {
    expect(payloadViolations(JSON.parse(JSON.parse(structuredMessage(message)).sqs))).toEqual([]);
  });

  it('the schema refuses what a consumer could not rely on: a missing field, an unknown one, an undefined left out', () => {
    const payload = JSON.parse(JSON.stringify(alertFor('no-datapoints').payload));
    expect(payloadViolations(payload)).toEqual([]);
    expect(payloadViolations({ ...payload, nextStep: undefined }).join('\n')).toContain("must have required property 'nextStep'");
    expect(payloadViolations({ ...payload, colour: 'red' }).join('\n')).toContain('must NOT have unevaluated properties');
    expect(payloadViolations({ ...payload, instance: { id: instanceId, os: 'linux', launchTime: null } }).join('\n')).toContain("must have required property 'name'");
    expect(payloadViolations({ ...payload, diagnosis: 'flux-capacitor' }).length).toBeGreaterThan(0);
    expect(payloadViolations({ ...payload, time: 'yesterday' }).join('\n')).toContain('must match format "date-time"');
  });

  it('an alert payload carries the diagnosis, the instance, the evidence as facts with their lines, the next step, the command and the schedule', () => {
    const { payload } = alertFor('command-failed');
    expect(payload).toMatchObject({
      schemaVersion: '1',
      event: 'alert',
      severity: 'critical',
      time: '2026-01-10T10:25:00.000Z',
      account: '123456789012',
      region: 'us-east-1',
      stack: 'cwap-dev',
      instance: { id: instanceId, name: 'web-1', os: 'linux', launchTime: '2026-01-10T10:00:00.000Z' },
      diagnosis: 'command-failed',
      retryable: true,
      summary: 'The CloudWatch agent install step (installAgent) failed.',
      checks: 3,
      commandId: 'cmd-1',
      scheduleNames: [`cwap-dev-check-${instanceId}-3`],
    });
    expect(payload).toHaveProperty('evidence.0', {
      kind: 'install-command',
      commandId: 'cmd-1',
      state: 'failed',
      status: 'Failed',
      statusDetails: 'Failed',
      step: 'installAgent',
      responseCode: 1,
      errorLines: ['E: Unable to fetch package'],
      text: 'install command cmd-1: Failed at step installAgent, exit code 1\n  | E: Unable to fetch package',
    });
    expect(payload).toHaveProperty('nextStep', expect.stringContaining(`aws ssm get-command-invocation --region us-east-1 --command-id cmd-1 --instance-id ${instanceId} --plugin-name installAgent`));
  });

  it('a Hangul or emoji Name tag stays out of the ASCII subject, but the payload and the text carry it as written', () => {
    for (const name of ['웹서버-1', 'web 🚀']) {
      const alert = alertFor('no-datapoints', name);
      expect(alert.subject).toBe(`[cw-agent-autopilot] ${instanceId}: metrics missing - no-datapoints`);
      expect(alert.payload).toHaveProperty('instance.name', name);
      expect(JSON.parse(JSON.parse(structuredMessage(alert)).lambda)).toHaveProperty('instance.name', name);
      expect(alert.body).toContain(`${name} (${instanceId})`);
    }
  });

  it('a recovery names the diagnosis that was alerted and what arrives, with nothing to do', () => {
    expect(recovery.payload).toMatchObject({
      event: 'recovery',
      severity: 'info',
      diagnosis: 'no-datapoints',
      alertedAt: '2026-01-10T10:05:00.000Z',
      nextStep: null,
      evidence: [{ kind: 'metrics-arrive', firstDatapointAt: '2026-01-10T10:21:00.000Z', alarmNames: [`cwap-dev-${instanceId}-MEMORY_USED-missing`] }],
    });
  });

  it('an audit summary carries the fleet numbers instead of an instance', () => {
    expect(audit.payload).toMatchObject({
      event: 'audit-summary',
      severity: 'warning',
      fleet: { running: 2, healthy: 1, coverage: 0.5, needsPerson: 1, partial: false, byOs: { linux: { running: 2, healthy: 1 } } },
      needsPerson: [{ instanceId: 'i-0000000000000000d', status: 'ssm-unreachable' }],
      needsPersonOmitted: 0,
      remediation: null,
    });
    expect(audit.payload).not.toHaveProperty('instance');
    expect(audit.body).toContain('Needs a person (1):');
  });

  it('a fleet where everyone needs a person still fits in one SNS publish: the lists are cut and say so', () => {
    const big = renderAuditSummary(auditReport(4000), settings, now);
    expect(publishedBytes(big)).toBeLessThanOrEqual(maxPublishBytes);
    expect(big.payload.fleet.needsPerson).toBe(4001);
    expect(big.payload.needsPerson.length + big.payload.needsPersonOmitted).toBe(4001);
    expect(big.payload.needsPersonOmitted).toBeGreaterThan(0);
    expect(payloadViolations(big.payload)).toEqual([]);
  });
});

describe('one attribute scheme on every message', () => {
  const instanceAttributes = { instanceId, os: 'linux', account: '123456789012', region: 'us-east-1', schemaVersion: '1' };

  it('alerts, recoveries and audit summaries carry the same attribute names; audit summaries have no instance', () => {
    expect(alertFor('ssm-offline').attributes).toEqual({ event: 'alert', severity: 'critical', diagnosis: 'ssm-offline', ...instanceAttributes });
    expect(recovery.attributes).toEqual({ event: 'recovery', severity: 'info', diagnosis: 'no-datapoints', ...instanceAttributes });
    expect(audit.attributes).toEqual({ event: 'audit-summary', severity: 'warning', diagnosis: 'none', account: '123456789012', region: 'us-east-1', schemaVersion: '1' });
  });

  it('an instance whose OS is not recorded says unknown, and a recovery without a recorded diagnosis says none', () => {
    const bare = renderRecovery({ record: recordOf({ os: undefined, alertedDiagnosis: undefined }), firstDatapointAt: undefined, alarmNames: [], scheduleNames: [], settings, now });
    expect(bare.attributes).toMatchObject({ os: 'unknown', diagnosis: 'none' });
    expect(bare.payload).toMatchObject({ instance: { os: null }, diagnosis: null });
    expect(payloadViolations(bare.payload)).toEqual([]);
  });
});

describe('subscription filter policies (SNS semantics, test/harness/sns-filter-policy.ts)', () => {
  const kinds: [string, TopicAttributes][] = [
    ['alert', alertFor('no-datapoints').attributes],
    ['recovery', recovery.attributes],
    ['audit summary', audit.attributes],
  ];
  const receives = (policy: FilterPolicy) => kinds.filter(([, attributes]) => acceptsMessage(policy, { ...attributes })).map(([kind]) => kind);

  it('{"event":["alert"],"severity":["critical","warning"]} receives the alerts only; {"schemaVersion":[{"exists":true}]} every kind', () => {
    expect(receives(readmePolicies['alerts for the on-call'])).toEqual(['alert']);
    expect(receives(readmePolicies['everything the product publishes'])).toEqual(['alert', 'recovery', 'audit summary']);
    expect(receives(readmePolicies['audit summaries'])).toEqual(['audit summary']);
  });

  it('CloudWatch alarm notifications and Lambda failure records, which carry no attributes, reach no filtered subscription', () => {
    for (const policy of Object.values(readmePolicies)) expect(acceptsMessage(policy, {})).toBe(false);
  });

  it('anything-but and exists follow the SNS rules: a missing attribute matches neither anything-but nor exists:true', () => {
    const windowsAlert = { ...alertFor('no-datapoints').attributes, os: 'windows' };
    expect(acceptsMessage(readmePolicies['Windows alerts but ssm-offline'], windowsAlert)).toBe(true);
    expect(acceptsMessage(readmePolicies['Windows alerts but ssm-offline'], { ...windowsAlert, diagnosis: 'ssm-offline' })).toBe(false);
    expect(acceptsMessage(readmePolicies['Windows alerts but ssm-offline'], { ...windowsAlert, os: 'linux' })).toBe(false);
    expect(acceptsMessage({ instanceId: [{ 'anything-but': 'i-1' }] }, { ...audit.attributes })).toBe(false);
    expect(acceptsMessage({ instanceId: [{ exists: false }] }, { ...audit.attributes })).toBe(true);
    expect(acceptsMessage({ instanceId: [{ exists: false }] }, {})).toBe(false);
    expect(acceptsMessage({ event: ['Alert'] }, { ...alertFor('no-datapoints').attributes })).toBe(false);
  });

  it('refuses what it does not implement or SNS would refuse, instead of guessing', () => {
    expect(() => acceptsMessage({ a: ['1'], b: ['1'], c: ['1'], d: ['1'], e: ['1'], f: ['1'] }, {})).toThrow(UnsupportedPolicyError);
    expect(() => acceptsMessage({ event: [{ prefix: 'al' } as never] }, { event: 'alert' })).toThrow(UnsupportedPolicyError);
  });

  it('the README shows these policies as they are tested', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const policy of Object.values(readmePolicies)) expect(readme).toContain(JSON.stringify(policy));
  });
});
