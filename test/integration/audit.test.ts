import { describe, expect, it } from 'vitest';
import { DescribeIamInstanceProfileAssociationsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { runAudit } from '../../shared/audit/audit-run.js';
import { onboardInProcess } from '../../shared/audit/remediation.js';
import { clientFactoryOf } from '../../shared/aws/product-clients.js';
import { readRecord } from '../../shared/state/instance-record.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { deployStack } from '../harness/stack.js';
import { launchMixedFleet } from './audit-fleet.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();

const aws = useAws();
const command = 'npx cw-autopilot audit --stage test --region us-east-1';

describe('auditing a mixed fleet in moto', () => {
  it('gives every instance the status its facts call for, with the fix naming it', async () => {
    const stack = await deployStack();
    const fleet = await launchMixedFleet(aws, stack);
    const report = await runAudit(clients, { region: 'us-east-1', scope: { tags: [], instanceIds: [] }, settings: stack.settings, remediation: { mode: 'off' }, auditCommand: command });

    const statusOf = Object.fromEntries(report.instances.map((row) => [row.instanceId, row.status]));
    expect(statusOf).toEqual({
      [fleet.healthy.instanceId]: 'healthy',
      [fleet.healthyWindows.instanceId]: 'healthy',
      [fleet.missingMetrics.instanceId]: 'missing-metrics',
      [fleet.agentNotInstalled.instanceId]: 'agent-not-installed',
      [fleet.ssmUnreachable.instanceId]: 'ssm-unreachable',
      [fleet.noProfile.instanceId]: 'no-profile',
      [fleet.roleMissingPolicy.instanceId]: 'role-missing-policy',
      [fleet.skippedByTag.instanceId]: 'skipped-by-tag',
    });
    expect(report.summary).toMatchObject({ running: 8, healthy: 2, coverage: 0.25, partial: false, remediable: 4 });
    expect(report.summary.byOs).toEqual({ linux: { running: 6, healthy: 1 }, windows: { running: 2, healthy: 1 } });
    expect(report.summary.needsPerson.map((item) => item.instanceId)).toEqual([fleet.ssmUnreachable.instanceId]);

    const legacy = report.instances.find((row) => row.instanceId === fleet.roleMissingPolicy.instanceId);
    expect(legacy?.profile).toMatchObject({ name: 'legacy-app', role: 'legacy-app', missingPolicies: ['CloudWatchAgentServerPolicy'] });
    const stopped = report.instances.find((row) => row.instanceId === fleet.missingMetrics.instanceId);
    expect(stopped?.onboarding?.status).toBe('alerted');
    expect(stopped?.metrics.every((metric) => metric.lastDatapoint !== null && !metric.recent)).toBe(true);
    expect(stopped?.fix).toContain(`${command} --instance-id ${fleet.missingMetrics.instanceId} --remediate`);
  });

  it('uses the batch APIs: one call per page or chunk, one IAM read per distinct profile and role', async () => {
    const stack = await deployStack();
    await launchMixedFleet(aws, stack);
    const before = aws.calls().length;
    await runAudit(clients, { region: 'us-east-1', scope: { tags: [], instanceIds: [] }, settings: stack.settings, remediation: { mode: 'off' }, auditCommand: command });
    const counts: Record<string, number> = {};
    for (const call of aws.calls().slice(before)) counts[call.operation] = (counts[call.operation] ?? 0) + 1;
    expect(counts).toEqual({
      DescribeInstances: 1,
      DescribeIamInstanceProfileAssociations: 1,
      GetInstanceProfile: 2,
      ListAttachedRolePolicies: 2,
      DescribeInstanceInformation: 1,
      GetMetricData: 1,
      BatchGetItem: 1,
    });
  });

  it('a tag filter narrows the audit to the matching instances', async () => {
    const stack = await deployStack();
    const fleet = await launchMixedFleet(aws, stack);
    const report = await runAudit(clients, { region: 'us-east-1', scope: { tags: [{ key: 'team', value: 'web' }], instanceIds: [] }, settings: stack.settings, remediation: { mode: 'off' }, auditCommand: command });
    expect(report.instances.map((row) => row.instanceId).sort()).toEqual([fleet.healthy, fleet.healthyWindows, fleet.missingMetrics].map((i) => i.instanceId).sort());
  });

  it('remediation starts onboarding through the event code path: the bare instance gets the agent profile', async () => {
    const stack = await deployStack();
    const fleet = await launchMixedFleet(aws, stack);
    const report = await runAudit(clients, {
      region: 'us-east-1',
      scope: { tags: [], instanceIds: [fleet.noProfile.instanceId] },
      settings: stack.settings,
      remediation: { mode: 'apply', remediatorFor: (place) => onboardInProcess(stack.settings, clientFactoryOf(stack.settings), place) },
      auditCommand: command,
    });
    expect(report.remediation).toEqual([expect.objectContaining({ instanceId: fleet.noProfile.instanceId, status: 'no-profile', outcome: 'started' })]);
    const ec2 = new EC2Client(localClientConfig());
    const associations = await ec2.send(new DescribeIamInstanceProfileAssociationsCommand({ Filters: [{ Name: 'instance-id', Values: [fleet.noProfile.instanceId] }] }));
    expect(associations.IamInstanceProfileAssociations?.[0]?.IamInstanceProfile?.Arn).toBe(stack.agentProfile.arn);
    const record = await readRecord(clients, stack.settings.stateTable, fleet.noProfile.instanceId);
    expect(record?.profilePath).toBe('associated-agent-profile');
    // SSM sees it online, so the same run sent the install command and scheduled the check.
    expect(record?.status).toBe('checking');
    expect(record?.commandId).toBeDefined();
    ec2.destroy();
  });

  it('when GetMetricData keeps failing, the report is partial and says so, instead of failing', async () => {
    const stack = await deployStack();
    await launchMixedFleet(aws, stack);
    aws.faults.set((_service, operation) => (operation === 'GetMetricData' ? '503' : undefined));
    const report = await runAudit(clients, { region: 'us-east-1', scope: { tags: [], instanceIds: [] }, settings: stack.settings, remediation: { mode: 'off' }, auditCommand: command });
    expect(report.summary.partial).toBe(true);
    expect(report.summary.failures.map((failure) => failure.api)).toEqual(['GetMetricData']);
    expect(report.summary.byStatus.unknown).toBe(7);
    expect(report.summary.byStatus['skipped-by-tag']).toBe(1);
  });
});
