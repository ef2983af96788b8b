import { afterEach, describe, expect, it } from 'vitest';
import { runAudit } from '../../shared/audit/audit-run.js';
import { generateFleet, installFakeAws, minimumCalls, type FakeAws } from '../../scripts/simulated-fleet.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();

const settings = {
  stateTable: 'cwap-bench-records',
  metrics: { namespace: 'CloudWatch/TestMetrics', memory: 'MEMORY_USED', disk: 'DISK_USED', windowsDiskFree: 'DISK_FREE' },
  agentProfileName: 'cwap-bench-agent',
  optOutTag: { key: 'cw-autopilot:skip', value: 'true' },
  optInTag: undefined,
  modifyExistingRoles: true,
};

let aws: FakeAws | undefined;
afterEach(() => aws?.restore());

function audit(now: Date, scope = { tags: [], instanceIds: [] as string[] }) {
  return runAudit(clients, { region: 'us-east-1', scope, settings, remediation: { mode: 'off' }, auditCommand: 'npx cw-autopilot audit', now });
}

describe('auditing a fleet in bulk', () => {
  it('2,500 instances cost exactly the calls the page sizes allow, and every status shows up', async () => {
    const now = new Date();
    const fleet = generateFleet(2_500, { now });
    aws = installFakeAws(fleet, now);
    const report = await audit(now);
    expect(aws.calls).toEqual(minimumCalls(fleet));
    expect(report.summary.running).toBe(2_500);
    for (const status of ['healthy', 'missing-metrics', 'agent-not-installed', 'ssm-unreachable', 'no-profile', 'role-missing-policy', 'skipped-by-tag'] as const) {
      expect(report.summary.byStatus[status], status).toBeGreaterThan(0);
    }
    expect(report.summary.partial).toBe(false);
  });

  it('when Systems Manager keeps throttling, the report is still produced, partial, naming the API', async () => {
    const now = new Date();
    const fleet = generateFleet(200, { now });
    aws = installFakeAws(fleet, now);
    aws.failApi('DescribeInstanceInformation');
    const report = await audit(now);
    expect(report.summary.running).toBe(200);
    expect(report.summary.partial).toBe(true);
    expect(report.summary.failures).toEqual([
      expect.objectContaining({ api: 'DescribeInstanceInformation', instances: 200, error: expect.stringContaining('ThrottlingException') }),
    ]);
    // Metrics still prove the healthy ones; the others are unknown rather than guessed.
    expect(report.summary.byStatus.healthy).toBe(160);
    expect(report.summary.byStatus['ssm-unreachable']).toBe(0);
    expect(report.instances.find((row) => row.status === 'unknown')?.fix).toContain('could not ask Systems Manager');
  });

  it('a missing state table makes the records unknown, not the whole audit fail', async () => {
    const now = new Date();
    const fleet = { ...generateFleet(100, { now }), table: 'another-table' };
    aws = installFakeAws(fleet, now);
    const report = await audit(now);
    expect(report.summary.failures.map((failure) => failure.api)).toEqual(['BatchGetItem']);
    expect(report.summary.failures[0]?.error).toContain('cwap-bench-records');
  });

  it('a tag scope is passed to DescribeInstances as a filter', async () => {
    const now = new Date();
    aws = installFakeAws(generateFleet(100, { now }), now);
    const report = await audit(now, { tags: [{ key: 'team', value: 'web' }] as never[], instanceIds: [] });
    expect(report.summary.running).toBe(50);
  });
});
