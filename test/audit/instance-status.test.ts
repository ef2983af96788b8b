import { describe, expect, it } from 'vitest';
import { classifyInstance } from '../../shared/audit/instance-status.js';
import { context, healthyFacts, minutesBefore, silentMetrics } from './audit-facts.js';

describe('classifying an instance', () => {
  it('an instance whose memory and disk both arrived minutes ago is healthy and needs nothing', () => {
    const row = classifyInstance(healthyFacts(), context);
    expect(row).toMatchObject({ status: 'healthy', remedy: 'none', name: 'web-1', os: 'linux', availabilityZone: 'eu-west-1a' });
    expect(row.metrics.every((metric) => metric.recent)).toBe(true);
  });

  it('an instance carrying the opt-out tag is skipped-by-tag even when it publishes nothing', () => {
    const base = healthyFacts();
    const facts = { ...base, instance: { ...base.instance, tags: { 'cw-autopilot:skip': 'true' } }, metrics: silentMetrics(base) };
    const row = classifyInstance(facts, context);
    expect(row).toMatchObject({ status: 'skipped-by-tag', remedy: 'none' });
    expect(row.fix).toContain('opt-out tag cw-autopilot:skip=true');
  });

  it('an instance without a profile gets no-profile, fixed by onboarding, with the command naming it', () => {
    const base = healthyFacts();
    const row = classifyInstance(
      { ...base, instance: { ...base.instance, profileArn: undefined }, association: undefined, standing: undefined, record: undefined, metrics: silentMetrics(base) },
      context,
    );
    expect(row.status).toBe('no-profile');
    expect(row.remedy).toBe('onboard');
    expect(row.fix).toContain('`npx cw-autopilot audit --region eu-west-1 --instance-id i-0a1b2c3d4e5f60001 --remediate`');
    expect(row.fix).toContain('cwap-dev-agent');
  });

  it('a workload role without the agent policies is role-missing-policy; onboarding may attach them', () => {
    const base = healthyFacts();
    const profileArn = 'arn:aws:iam::123456789012:instance-profile/web-app';
    const row = classifyInstance(
      {
        ...base,
        association: { profileArn, state: 'associated' },
        standing: { profileArn, roleName: 'web-app', missing: ['CloudWatchAgentServerPolicy'] },
        record: undefined,
        metrics: silentMetrics(base),
      },
      context,
    );
    expect(row).toMatchObject({ status: 'role-missing-policy', remedy: 'onboard' });
    expect(row.fix).toMatch(/role web-app of i-0a1b2c3d4e5f60001 lacks CloudWatchAgentServerPolicy/);
    expect(row.profile).toEqual({ arn: profileArn, name: 'web-app', role: 'web-app', missingPolicies: ['CloudWatchAgentServerPolicy'] });
  });

  it('when the stack may not change workload roles, a person gets the exact attach-role-policy command', () => {
    const base = healthyFacts();
    const profileArn = 'arn:aws:iam::123456789012:instance-profile/web-app';
    const row = classifyInstance(
      { ...base, association: { profileArn, state: 'associated' }, standing: { profileArn, roleName: 'web-app', missing: ['CloudWatchAgentServerPolicy'] }, metrics: silentMetrics(base) },
      { ...context, settings: { ...context.settings, modifyExistingRoles: false } },
    );
    expect(row.remedy).toBe('person');
    expect(row.fix).toContain('aws iam attach-role-policy --role-name web-app --policy-arn arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy');
  });

  it('an instance Systems Manager has lost is ssm-unreachable and needs a person', () => {
    const base = healthyFacts();
    const row = classifyInstance(
      { ...base, ssm: { pingStatus: 'ConnectionLost', agentVersion: '3.3', platformType: 'Linux', lastPing: minutesBefore(300) }, metrics: silentMetrics(base) },
      context,
    );
    expect(row).toMatchObject({ status: 'ssm-unreachable', remedy: 'person', ssm: { pingStatus: 'ConnectionLost' } });
    expect(row.fix).toContain('ssmmessages');
  });

  it('an instance never registered with SSM is ssm-unreachable (NotRegistered)', () => {
    const base = healthyFacts();
    const row = classifyInstance({ ...base, ssm: { pingStatus: 'NotRegistered', agentVersion: undefined, platformType: undefined, lastPing: undefined }, metrics: silentMetrics(base) }, context);
    expect(row.status).toBe('ssm-unreachable');
    expect(row.fix).toContain('NotRegistered');
  });

  it('online in SSM but never given the agent by cw-autopilot: agent-not-installed, fixed by onboarding', () => {
    const base = healthyFacts();
    const row = classifyInstance({ ...base, record: undefined, metrics: silentMetrics(base) }, context);
    expect(row).toMatchObject({ status: 'agent-not-installed', remedy: 'onboard', onboarding: null });
  });

  it('the agent was installed but memory stopped 40 minutes ago: missing-metrics, naming the metric and when it was last seen', () => {
    const base = healthyFacts();
    const metrics = base.metrics?.map((series) => (series.metricName === 'MEMORY_USED' ? { ...series, lastDatapoint: minutesBefore(40) } : series));
    const row = classifyInstance({ ...base, metrics }, context);
    expect(row).toMatchObject({ status: 'missing-metrics', remedy: 'onboard' });
    expect(row.fix).toContain('MEMORY_USED');
    expect(row.fix).not.toContain('DISK_USED had');
    expect(row.fix).toContain('last 40 min ago');
    expect(row.metrics).toEqual([
      { metricName: 'MEMORY_USED', lastDatapoint: minutesBefore(40), recent: false },
      { metricName: 'DISK_USED', lastDatapoint: minutesBefore(2), recent: true },
    ]);
  });

  it('a Windows instance missing metrics is pointed at the Windows agent log', () => {
    const base = healthyFacts();
    const row = classifyInstance({ ...base, instance: { ...base.instance, os: 'windows' }, metrics: silentMetrics(base) }, context);
    expect(row.fix).toContain('C:\\ProgramData\\Amazon\\AmazonCloudWatchAgent\\Logs');
  });

  it('an instance whose onboarding is still checking this launch is left to it (wait), not remediated', () => {
    const base = healthyFacts();
    const record = { ...base.record!, status: 'checking' as const, updatedAt: minutesBefore(3) };
    const row = classifyInstance({ ...base, record, metrics: silentMetrics(base) }, context);
    expect(row).toMatchObject({ status: 'missing-metrics', remedy: 'wait' });
    expect(row.fix).toContain('under way');
  });

  it('a claim abandoned 20 minutes ago is not "under way": the instance is remediable again', () => {
    const base = healthyFacts();
    const record = { ...base.record!, status: 'onboarding' as const, commandId: undefined, updatedAt: minutesBefore(20) };
    expect(classifyInstance({ ...base, record, metrics: silentMetrics(base) }, context).remedy).toBe('onboard');
  });

  it('does not guess when the metrics could not be read: unknown, with the error', () => {
    const row = classifyInstance({ ...healthyFacts(), metrics: undefined, unread: { metrics: 'ThrottlingException: Rate exceeded' } }, context);
    expect(row).toMatchObject({ status: 'unknown', remedy: 'person' });
    expect(row.fix).toContain('ThrottlingException');
  });

  it('metrics prove health even when the SSM answer is missing', () => {
    expect(classifyInstance({ ...healthyFacts(), ssm: undefined, unread: { ssm: 'boom' } }, context).status).toBe('healthy');
  });
});
