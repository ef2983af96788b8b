import { describe, expect, it } from 'vitest';
import { renderMarkdown, renderTable, renderSummaryText } from '../../shared/audit/audit-render.js';
import { summarizeAudit, type AuditReport } from '../../shared/audit/audit-summary.js';
import { classifyInstance } from '../../shared/audit/instance-status.js';
import { dryRunRemediation, remediate } from '../../shared/audit/remediation.js';
import { context, healthyFacts, now, silentMetrics } from './audit-facts.js';

function rows() {
  const healthy = healthyFacts({ instanceId: 'i-0000000000000000a' });
  const windows = healthyFacts({ instanceId: 'i-0000000000000000b' });
  const noProfile = healthyFacts({ instanceId: 'i-0000000000000000c' });
  const lost = healthyFacts({ instanceId: 'i-0000000000000000d' });
  return [
    classifyInstance(healthy, context),
    classifyInstance({ ...windows, instance: { ...windows.instance, os: 'windows', availabilityZone: 'eu-west-1b' } }, context),
    classifyInstance({ ...noProfile, association: undefined, standing: undefined, record: undefined, metrics: silentMetrics(noProfile) }, context),
    classifyInstance({ ...lost, ssm: { pingStatus: 'ConnectionLost', agentVersion: undefined, platformType: 'Linux', lastPing: undefined }, metrics: silentMetrics(lost) }, context),
  ];
}

function report(): AuditReport {
  const instances = rows();
  return { summary: summarizeAudit(instances, { regions: ['eu-west-1'], failures: [], now }), instances, remediation: null };
}

describe('the audit summary', () => {
  it('counts coverage, statuses, OS and AZ, and lists the instances that need a person', () => {
    const { summary } = report();
    expect(summary).toMatchObject({ running: 4, healthy: 2, coverage: 0.5, remediable: 1, partial: false });
    expect(summary.byStatus).toMatchObject({ healthy: 2, 'no-profile': 1, 'ssm-unreachable': 1, 'missing-metrics': 0 });
    expect(summary.byOs).toEqual({ linux: { running: 3, healthy: 1 }, windows: { running: 1, healthy: 1 } });
    expect(summary.byAvailabilityZone).toEqual({ 'eu-west-1a': { running: 3, healthy: 1 }, 'eu-west-1b': { running: 1, healthy: 1 } });
    expect(summary.needsPerson.map((item) => item.instanceId)).toEqual(['i-0000000000000000d']);
  });

  it('never rounds coverage up past a threshold: 1999 of 2000 is 99.95%, not 100%', () => {
    const healthy = classifyInstance(healthyFacts(), context);
    const missing = { ...healthy, status: 'missing-metrics' as const };
    const summary = summarizeAudit([...Array(1999).fill(healthy), missing], { regions: [], failures: [], now });
    expect(summary.coverage).toBe(0.9995);
  });

  it('an empty fleet is fully covered (nothing runs that could be unmonitored)', () => {
    expect(summarizeAudit([], { regions: ['eu-west-1'], failures: [], now }).coverage).toBe(1);
  });
});

describe('rendering the report', () => {
  it('the table has one line per instance, the fixes, and the coverage line', () => {
    const text = renderTable(report());
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^INSTANCE\s+NAME\s+OS\s+AZ\s+LAUNCHED\s+PROFILE\s+POLICIES\s+SSM\s+METRICS\s+ONBOARDING\s+STATUS$/);
    expect(lines.filter((line) => line.startsWith('i-'))).toHaveLength(4);
    expect(text).toContain('Coverage: 2/4 running instances healthy (50.00%)');
    expect(text).toContain('By OS: linux 1/3, windows 1/1');
    expect(text).toMatch(/i-0000000000000000c no-profile \[onboard\]: .*--remediate/);
    expect(text).toMatch(/i-0000000000000000a .* 2\/2 recent, last 2 min ago .* healthy/);
  });

  it('Markdown escapes pipes and shows a partial report as a warning', () => {
    const base = report();
    const partial: AuditReport = {
      ...base,
      summary: { ...base.summary, partial: true, failures: [{ region: 'eu-west-1', api: 'GetMetricData', instances: 4, error: 'Throttling | slow down' }] },
    };
    const markdown = renderMarkdown(partial);
    expect(markdown).toContain('**Coverage: 2/4 running instances healthy (50.00%)**');
    expect(markdown).toContain('> **Partial report**');
    expect(markdown).toContain('Throttling \\| slow down');
    expect(markdown).toContain('## Needs a person (1)');
  });

  it('the SNS summary stays short and names the instances that need a person', () => {
    const text = renderSummaryText(report());
    expect(text).toContain('Needs a person (1):');
    expect(text).not.toContain('INSTANCE');
  });
});

describe('remediation', () => {
  it('a dry run lists what would start, for the remediable instances only', () => {
    const outcomes = dryRunRemediation(rows());
    expect(outcomes).toEqual([expect.objectContaining({ instanceId: 'i-0000000000000000c', status: 'no-profile', outcome: 'would-start' })]);
  });

  it('one failed remediation is reported and does not stop the others', async () => {
    const instances = rows().map((row) => ({ ...row, remedy: 'onboard' as const }));
    const outcomes = await remediate(
      instances,
      async (instanceId) => {
        if (instanceId.endsWith('b')) throw Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
        return { outcome: 'started', detail: 'onboard' };
      },
      2,
    );
    expect(outcomes.map((outcome) => outcome.outcome)).toEqual(['started', 'failed', 'started', 'started']);
    expect(outcomes[1]?.detail).toContain('AccessDeniedException: denied');
  });
});
