import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateFleet, installFakeAws, type FakeAws } from '../../scripts/simulated-fleet.js';
import { parseOnboardTrigger } from '../../shared/input/triggers.js';
import { decideOnboarding } from '../../shared/onboarding/onboarding-decision.js';
import type { OnboardingRecord } from '../../shared/state/instance-record.js';
import { stackEnvironment } from '../harness/stack.js';
import { healthyFacts, now } from './audit-facts.js';
import { hubRecordKey } from '../harness/test-clients.js';

const env = stackEnvironment('bench');

let handler: (event: unknown, context: Context) => Promise<{ summary: { running: number; remediable: number }; instances: { status: string }[]; remediation: unknown[] | null; publishedMessageId: string | null }>;
let aws: FakeAws | undefined;
const lambda = mockClient(LambdaClient);
const sns = mockClient(SNSClient);

beforeAll(async () => {
  // Quiet: the whole-region audits below write their coverage metric (audit-function-metrics.test.ts reads it).
  Object.assign(process.env, env, { POWERTOOLS_METRICS_DISABLED: 'true' });
  ({ handler } = (await import('../../functions/audit.js')) as never);
});
afterEach(() => {
  aws?.restore();
  lambda.reset();
  sns.reset();
});

const context = { functionName: 'cw-agent-autopilot-bench-audit', awsRequestId: 'r-1' } as Context;

describe('the audit function', () => {
  it('returns the JSON report of the region, healthy rows left out, and publishes the summary when asked', async () => {
    aws = installFakeAws(generateFleet(100));
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    const response = await handler({ publish: true }, context);
    expect(response.summary.running).toBe(100);
    expect(response.instances.some((row) => row.status === 'healthy')).toBe(false);
    expect(response.publishedMessageId).toBe('m-1');
    const published = sns.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(published?.TopicArn).toBe(env.ALERT_TOPIC_ARN);
    expect(published?.Subject).toBe('cw-autopilot audit: 80.0% covered (80/100)');
    expect(published?.MessageStructure).toBe('json');
    const message = JSON.parse(published?.Message ?? '{}');
    expect(message.default).toContain('Needs a person');
    expect(JSON.parse(message.sqs)).toMatchObject({ event: 'audit-summary', severity: 'warning', fleet: { running: 100, healthy: 80 }, stack: env.RESOURCE_PREFIX });
    expect(published?.MessageAttributes).toEqual({
      event: { DataType: 'String', StringValue: 'audit-summary' },
      severity: { DataType: 'String', StringValue: 'warning' },
      diagnosis: { DataType: 'String', StringValue: 'none' },
      account: { DataType: 'String', StringValue: '123456789012' },
      region: { DataType: 'String', StringValue: 'us-east-1' },
      schemaVersion: { DataType: 'String', StringValue: '1' },
    });
  });

  it('remediates by asking the onboard function, once per remediable instance, asynchronously', async () => {
    aws = installFakeAws(generateFleet(100));
    lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
    const response = await handler({ remediate: true }, context);
    const invocations = lambda.commandCalls(InvokeCommand).map((call) => call.args[0].input);
    expect(invocations).toHaveLength(response.summary.remediable);
    expect(invocations[0]).toMatchObject({ FunctionName: env.ONBOARD_FUNCTION_ARN, InvocationType: 'Event' });
    const payload = JSON.parse(new TextDecoder().decode(invocations[0]?.Payload as Uint8Array));
    expect(parseOnboardTrigger(payload)).toMatchObject({ kind: 'remediate', requestedBy: 'audit function' });
  });

  it('a dry run invokes nothing and says what it would start', async () => {
    aws = installFakeAws(generateFleet(100));
    const response = await handler({ remediate: true, dryRun: true }, context);
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(response.remediation?.length).toBe(response.summary.remediable);
  });

  it('rejects an input it does not understand, naming the field', async () => {
    await expect(handler({ instanceIds: ['web-1'] }, context)).rejects.toThrow(/instanceIds\.0: not an EC2 instance id/);
  });
});

describe('the remediate trigger of onboarding', () => {
  const facts = healthyFacts();
  const record = { ...hubRecordKey(facts.instance.instanceId), ...facts.record, version: 3, ssmAttempts: 0, checkAttempts: 1, createdAt: facts.record!.updatedAt, history: [] } as OnboardingRecord;
  const decide = (trigger: ReturnType<typeof parseOnboardTrigger>, status: OnboardingRecord['status']) =>
    decideOnboarding({ trigger, instance: facts.instance, record: { ...record, status }, settings: { optOutTag: undefined, optInTag: undefined }, now });
  const remediation = parseOnboardTrigger({ instanceId: facts.instance.instanceId, remediate: true, requestedBy: 'audit' });

  it('starts over an onboarding that ended healthy, alerted or failed, where an EC2 event would be ignored', () => {
    for (const status of ['healthy', 'alerted'] as const) {
      expect(decide(remediation, status)).toMatchObject({ action: 'onboard', fresh: true, reason: `remediation requested by audit (was ${status})` });
      expect(decide(parseOnboardTrigger({ source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: { 'instance-id': facts.instance.instanceId, state: 'running' } }), status).action).toBe('ignore');
    }
  });

  it('leaves an onboarding that is under way to the invocation that owns it, and resumes one that stalled', () => {
    const recently = new Date(now.getTime() - 10 * 60_000).toISOString();
    for (const status of ['installing', 'waiting-for-ssm'] as const) {
      const underWay = decideOnboarding({ trigger: remediation, instance: facts.instance, record: { ...record, status, updatedAt: recently }, settings: { optOutTag: undefined, optInTag: undefined }, now });
      expect(underWay.action, status).toBe('ignore');
      // The fixture's record was last written almost 10 hours ago: that chain of invocations died.
      expect(decide(remediation, status), status).toMatchObject({ action: 'onboard', fresh: false });
    }
  });

  it('still respects the opt-out tag', () => {
    const excluded = decideOnboarding({
      trigger: remediation,
      instance: { ...facts.instance, tags: { skip: 'true' } },
      record,
      settings: { optOutTag: { key: 'skip', value: 'true' }, optInTag: undefined },
      now,
    });
    expect(excluded.action).toBe('skip');
  });
});
