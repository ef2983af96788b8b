import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DescribeIamInstanceProfileAssociationsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { deployOnboardFunction, deployStack } from '../harness/stack.js';
import { launchMixedFleet } from './audit-fleet.js';

const aws = useAws();
const bin = fileURLToPath(new URL('../../bin/cw-autopilot.mjs', import.meta.url));

/** Runs the real command, as `npx cw-autopilot` does, against the proxy in front of moto. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { env: { ...process.env, AWS_ENDPOINT_URL: aws.proxy.url }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('cw-autopilot audit against moto', () => {
  it('prints the table with every instance and the coverage, and exits 1 under --min-coverage', async () => {
    const stack = await deployStack();
    await deployOnboardFunction(stack);
    const fleet = await launchMixedFleet(aws, stack);
    const result = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--min-coverage', '90']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('coverage 25.00% is below --min-coverage 90%');
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^INSTANCE\s+NAME\s+OS\s+AZ/);
    expect(lines.find((line) => line.startsWith(fleet.noProfile.instanceId))).toMatch(/bare-1\s+linux .*no-profile$/);
    expect(lines.find((line) => line.startsWith(fleet.healthy.instanceId))).toMatch(/web-1\s+linux .*cwap-test-agent \(cwap-test-agent\)\s+ok\s+Online\s+2\/2 recent.*healthy$/);
    expect(result.stdout).toContain('Coverage: 2/8 running instances healthy (25.00%)');
    expect(result.stdout).toContain(`npx cw-autopilot audit --stage test --region us-east-1 --instance-id ${fleet.noProfile.instanceId} --remediate`);
    // Progress and the settings' source go to stderr, never into the report.
    expect(result.stderr).toMatch(/us-east-1 metrics: 8\/8/);
    expect(result.stderr).toContain('us-east-1 settings: from function cw-agent-autopilot-test-onboard\n');
  });

  it('prints JSON a pipeline can read, and exits 0 when coverage meets the threshold', async () => {
    const stack = await deployStack();
    await deployOnboardFunction(stack);
    await launchMixedFleet(aws, stack);
    const result = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--format', 'json', '--tag', 'team=web', '--min-coverage', '60', '--quiet']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.summary).toMatchObject({ running: 3, healthy: 2, coverage: 0.6666 });
    expect(report.instances).toHaveLength(3);
  });

  it('--remediate --dry-run changes nothing; --remediate onboards in-process with the caller\'s credentials', async () => {
    const stack = await deployStack();
    await deployOnboardFunction(stack);
    const fleet = await launchMixedFleet(aws, stack);
    const target = ['--instance-id', fleet.noProfile.instanceId];
    const dry = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--remediate', '--dry-run', '--format', 'markdown', ...target]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('Remediation (dry run, nothing changed)');
    const ec2 = new EC2Client(localClientConfig());
    const associated = async () =>
      (await ec2.send(new DescribeIamInstanceProfileAssociationsCommand({ Filters: [{ Name: 'instance-id', Values: [fleet.noProfile.instanceId] }] })))
        .IamInstanceProfileAssociations?.length ?? 0;
    expect(await associated()).toBe(0);

    const applied = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--remediate', '--format', 'json', '--quiet', ...target]);
    expect(applied.code).toBe(0);
    expect(JSON.parse(applied.stdout).remediation).toEqual([expect.objectContaining({ instanceId: fleet.noProfile.instanceId, outcome: 'started' })]);
    expect(await associated()).toBe(1);
    ec2.destroy();
  });

  it("a stack deployed with an opt-in tag is audited and remediated with it: an untagged instance is skipped, not onboarded", async () => {
    const stack = await deployStack({ env: { OPT_IN_TAG: 'monitoring=on', MODIFY_EXISTING_ROLES: 'false' } });
    await deployOnboardFunction(stack);
    const fleet = await launchMixedFleet(aws, stack);
    const result = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--remediate', '--format', 'json', '--quiet', '--instance-id', fleet.noProfile.instanceId]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.instances).toEqual([expect.objectContaining({ instanceId: fleet.noProfile.instanceId, status: 'skipped-by-tag' })]);
    expect(report.remediation).toEqual([]);
    expect(aws.calls().some((call) => call.operation === 'AssociateIamInstanceProfile')).toBe(false);
  });

  it('--remediate without a readable onboard function stops with exit 2 and changes nothing; --settings-from-flags remediates with the flags', async () => {
    const stack = await deployStack();
    const fleet = await launchMixedFleet(aws, stack);
    const target = ['--stage', 'test', '--region', 'us-east-1', '--remediate', '--format', 'json', '--quiet', '--instance-id', fleet.noProfile.instanceId];
    const refused = await cli(['audit', ...target]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("cannot read the stack's settings from function cw-agent-autopilot-test-onboard in us-east-1 (ResourceNotFoundException");
    expect(refused.stdout).toBe('');

    const readOnly = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--format', 'json', '--quiet']);
    expect(readOnly.code).toBe(0);
    expect(readOnly.stderr).toContain('warning: cannot read the stack\'s settings from function cw-agent-autopilot-test-onboard');
    expect(aws.calls().some((call) => call.operation === 'AssociateIamInstanceProfile')).toBe(false);

    // The harness names the stack's IAM resources without the region serverless.yml adds: say so, as a user would.
    const names = ['--agent-profile', stack.agentProfile.name, '--scheduler-role-arn', stack.schedulerRole.arn];
    const applied = await cli(['audit', ...target, '--settings-from-flags', ...names]);
    expect(applied.code).toBe(0);
    expect(JSON.parse(applied.stdout).remediation).toEqual([expect.objectContaining({ instanceId: fleet.noProfile.instanceId, outcome: 'started' })]);
  });

  it('a bad argument gets one line naming it, a pointer to the help, and exit code 2, before any AWS call', async () => {
    const before = aws.calls().length;
    const result = await cli(['audit', '--format', 'yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('cw-autopilot audit: --format: expected one of table, json, markdown\nRun "cw-autopilot audit --help" for usage.\n');
    expect(result.stdout).toBe('');
    expect(aws.calls().length).toBe(before);
  });
});
