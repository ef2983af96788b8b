import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DescribeIamInstanceProfileAssociationsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { deployStack, type DeployedStack } from '../harness/stack.js';
import { launchMixedFleet } from './audit-fleet.js';

const aws = useAws();
const bin = fileURLToPath(new URL('../../bin/cw-autopilot.mjs', import.meta.url));

/** Runs the real command, as `npx cw-autopilot` does, against the proxy in front of moto. */
function cli(args: string[], stack?: DeployedStack): Promise<{ code: number; stdout: string; stderr: string }> {
  // The harness names the stack's IAM resources its own way: tell the CLI, as a user would.
  const names = stack ? ['--agent-profile', stack.agentProfile.name, '--scheduler-role-arn', stack.schedulerRole.arn] : [];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args, ...names],
      { env: { ...process.env, AWS_ENDPOINT_URL: aws.proxy.url }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('cw-autopilot audit against moto', () => {
  it('prints the table with every instance and the coverage, and exits 1 under --min-coverage', async () => {
    const stack = await deployStack();
    const fleet = await launchMixedFleet(aws, stack);
    const result = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--min-coverage', '90'], stack);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('coverage 25.00% is below --min-coverage 90%');
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^INSTANCE\s+NAME\s+OS\s+AZ/);
    expect(lines.find((line) => line.startsWith(fleet.noProfile.instanceId))).toMatch(/bare-1\s+linux .*no-profile$/);
    expect(lines.find((line) => line.startsWith(fleet.healthy.instanceId))).toMatch(/web-1\s+linux .*cwap-test-agent \(cwap-test-agent\)\s+ok\s+Online\s+2\/2 recent.*healthy$/);
    expect(result.stdout).toContain('Coverage: 2/8 running instances healthy (25.00%)');
    expect(result.stdout).toContain(`npx cw-autopilot audit --stage test --region us-east-1 --instance-id ${fleet.noProfile.instanceId} --remediate`);
    // Progress goes to stderr, never into the report.
    expect(result.stderr).toMatch(/us-east-1 metrics: 8\/8/);
  });

  it('prints JSON a pipeline can read, and exits 0 when coverage meets the threshold', async () => {
    const stack = await deployStack();
    await launchMixedFleet(aws, stack);
    const result = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--format', 'json', '--tag', 'team=web', '--min-coverage', '60', '--quiet'], stack);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.summary).toMatchObject({ running: 3, healthy: 2, coverage: 0.6666 });
    expect(report.instances).toHaveLength(3);
  });

  it('--remediate --dry-run changes nothing; --remediate onboards in-process with the caller\'s credentials', async () => {
    const stack = await deployStack();
    const fleet = await launchMixedFleet(aws, stack);
    const target = ['--instance-id', fleet.noProfile.instanceId];
    const dry = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--remediate', '--dry-run', '--format', 'markdown', ...target], stack);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('Remediation (dry run, nothing changed)');
    const ec2 = new EC2Client(localClientConfig());
    const associated = async () =>
      (await ec2.send(new DescribeIamInstanceProfileAssociationsCommand({ Filters: [{ Name: 'instance-id', Values: [fleet.noProfile.instanceId] }] })))
        .IamInstanceProfileAssociations?.length ?? 0;
    expect(await associated()).toBe(0);

    const applied = await cli(['audit', '--stage', 'test', '--region', 'us-east-1', '--remediate', '--format', 'json', '--quiet', ...target], stack);
    expect(applied.code).toBe(0);
    expect(JSON.parse(applied.stdout).remediation).toEqual([expect.objectContaining({ instanceId: fleet.noProfile.instanceId, outcome: 'started' })]);
    expect(await associated()).toBe(1);
    ec2.destroy();
  });

  it('a bad argument gets the usage and exit code 2, before any AWS call', async () => {
    const before = aws.calls().length;
    const result = await cli(['audit', '--format', 'yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--format: expected one of table, json, markdown');
    expect(result.stderr).toContain('Usage: cw-autopilot audit');
    expect(aws.calls().length).toBe(before);
  });
});
