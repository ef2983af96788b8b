import { GetFunctionConfigurationCommand, LambdaClient, ResourceNotFoundException } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuditOptions } from '../../shared/audit/audit-run.js';
import { summarizeAudit } from '../../shared/audit/audit-summary.js';
import type { Settings } from '../../shared/config/settings.js';
import { stackEnvironment } from '../harness/stack.js';
import { runCli } from '../harness/cli-run.js';

// The CLI is run in-process; the audit itself is replaced by one that records the settings it is
// given (and those its remediator is built with) and finds no instance.
const audits = vi.hoisted(() => [] as { options: unknown; remediatorSettings?: unknown }[]);
vi.mock('../../shared/audit/audit-run.js', () => ({
  runAudit: async (_clients: unknown, options: AuditOptions) => {
    const audit: (typeof audits)[number] = { options };
    audits.push(audit);
    if (options.remediation.mode === 'apply') audit.remediatorSettings = (options.remediation.remediatorFor({ account: '210987654321', region: options.region }) as unknown as { settings: Settings }).settings;
    return { summary: summarizeAudit([], { regions: [options.region], failures: [], now: new Date() }), instances: [], remediation: options.remediation.mode === 'off' ? null : [] };
  },
}));
vi.mock('../../shared/audit/remediation.js', () => ({
  onboardInProcess: (settings: Settings) => Object.assign(async () => ({ outcome: 'started', detail: '' }), { settings }),
}));

const lambda = mockClient(LambdaClient);
const sts = mockClient(STSClient);
beforeEach(() => {
  sts.on(GetCallerIdentityCommand).resolves({ Account: '210987654321' });
});
afterEach(() => {
  lambda.reset();
  sts.reset();
  audits.length = 0;
});

/** The onboard function of a stack deployed with `--param modifyExistingRoles=false --param optInTag=monitoring=on`. */
const deployed = (() => {
  const { AWS_REGION: _region, ...env } = stackEnvironment('prod');
  return { ...env, AGENT_PROFILE_NAME: 'cwap-prod-eu-west-1-agent', MODIFY_EXISTING_ROLES: 'false', OPT_IN_TAG: 'monitoring=on' };
})();

async function run(...argv: string[]) {
  const { code, stderr } = await runCli(['audit', '--region', 'eu-west-1', '--format', 'json', ...argv]);
  const audit = audits[0];
  return {
    code,
    stderr,
    settings: (audit?.options as AuditOptions | undefined)?.settings as Settings | undefined,
    remediatorSettings: audit?.remediatorSettings as Settings | undefined,
  };
}

describe('the settings cw-autopilot audit runs with', () => {
  it("are the deployed onboard function's: a stack deployed with modifyExistingRoles=false and an opt-in tag is audited and remediated with them", async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: deployed } });
    const result = await run('--stage', 'prod', '--remediate');
    expect(result.code).toBe(0);
    expect(lambda.commandCalls(GetFunctionConfigurationCommand).map((call) => call.args[0].input)).toEqual([{ FunctionName: 'cw-agent-autopilot-prod-onboard' }]);
    expect(result.settings).toMatchObject({ modifyExistingRoles: false, optInTag: { key: 'monitoring', value: 'on' }, agentProfileName: 'cwap-prod-eu-west-1-agent', region: 'eu-west-1' });
    expect(result.remediatorSettings).toBe(result.settings);
    expect(result.stderr).toContain('eu-west-1 settings: from function cw-agent-autopilot-prod-onboard\n');
  });

  it('an explicit flag overrides the deployed value, and the source line says which', async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: { ...deployed, MODIFY_EXISTING_ROLES: 'true' } } });
    const result = await run('--stage', 'prod', '--opt-in-tag', 'team=web', '--no-modify-existing-roles', '--table', 'other-state');
    expect(result.settings).toMatchObject({ modifyExistingRoles: false, optInTag: { key: 'team', value: 'web' }, stateTable: 'other-state', optOutTag: { key: 'cw-autopilot:skip', value: 'true' } });
    expect(result.stderr).toContain('settings: from function cw-agent-autopilot-prod-onboard, with --table, --opt-in-tag, --no-modify-existing-roles from flags');
  });

  it('--onboard-function names the function to read', async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: deployed } });
    const arn = 'arn:aws:lambda:eu-west-1:210987654321:function:my-onboard';
    await run('--onboard-function', arn);
    expect(lambda.commandCalls(GetFunctionConfigurationCommand)[0]?.args[0].input).toEqual({ FunctionName: arn });
  });

  it('--remediate stops with exit 2 when the function cannot be read, naming it, the error and the way out', async () => {
    lambda.on(GetFunctionConfigurationCommand).rejects(new ResourceNotFoundException({ message: 'Function not found: cw-agent-autopilot-prod-onboard', $metadata: {} }));
    const result = await run('--stage', 'prod', '--remediate');
    expect(result.code).toBe(2);
    expect(audits).toHaveLength(0);
    expect(result.stderr).toContain('cannot read the stack\'s settings from function cw-agent-autopilot-prod-onboard in eu-west-1 (ResourceNotFoundException: Function not found');
    expect(result.stderr).toContain('--onboard-function');
    expect(result.stderr).toContain('--settings-from-flags');
    expect(result.stderr).not.toContain('Usage:');
  });

  it.each([[[] as string[]], [['--remediate', '--dry-run']]])('a read-only audit (%j) goes on with flags and defaults when the function cannot be read, and warns', async (flags) => {
    const denied = Object.assign(new Error('not authorized to perform: lambda:GetFunctionConfiguration'), { name: 'AccessDeniedException' });
    lambda.on(GetFunctionConfigurationCommand).rejects(denied);
    const result = await run('--stage', 'prod', ...flags);
    expect(result.code).toBe(0);
    expect(result.settings).toMatchObject({ modifyExistingRoles: true, optInTag: undefined, stateTable: 'cwap-prod-records' });
    expect(result.stderr).toContain(
      "warning: cannot read the stack's settings from function cw-agent-autopilot-prod-onboard in eu-west-1 (AccessDeniedException: not authorized to perform: lambda:GetFunctionConfiguration): using flags and defaults, so the opt-in/opt-out tags and role settings may differ",
    );
  });

  it('--settings-from-flags reads no function, even for --remediate, and says so', async () => {
    const result = await run('--stage', 'prod', '--remediate', '--settings-from-flags', '--opt-in-tag', 'monitoring=on');
    expect(result.code).toBe(0);
    expect(lambda.commandCalls(GetFunctionConfigurationCommand)).toHaveLength(0);
    expect(result.settings).toMatchObject({ optInTag: { key: 'monitoring', value: 'on' }, modifyExistingRoles: true });
    // The remediator's ARNs are the instances' account's.
    expect(result.remediatorSettings?.schedulerRoleArn).toBe('arn:aws:iam::210987654321:role/cwap-prod-eu-west-1-scheduler');
    expect(result.stderr).toContain('settings: from flags and defaults (--settings-from-flags)');
  });

  it('--quiet leaves out the source line but never the warning', async () => {
    lambda.on(GetFunctionConfigurationCommand).rejects(new Error('boom'));
    const result = await run('--quiet');
    expect(result.stderr).toMatch(/^warning: cannot read the stack's settings from function cw-agent-autopilot-dev-onboard in eu-west-1 \(Error: boom\)/);
    expect(result.stderr).not.toContain('settings: from');
  });

  it('a hub whose regions cover the audited ones is read once, and every region is audited with its settings', async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: { ...deployed, REGIONS: 'eu-west-1,us-east-1' } } });
    const result = await run('--stage', 'prod', '--region', 'us-east-1');
    expect(result.code).toBe(0);
    expect(lambda.commandCalls(GetFunctionConfigurationCommand)).toHaveLength(1);
    expect(audits.map((audit) => (audit.options as AuditOptions).region).sort()).toEqual(['eu-west-1', 'us-east-1']);
    expect(audits.every((audit) => (audit.options as AuditOptions).settings === result.settings)).toBe(true);
  });

  it('a region the first stack does not cover is audited with the stack deployed there (one stack per region)', async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: deployed } });
    const result = await run('--stage', 'prod', '--region', 'us-east-1');
    expect(result.code).toBe(0);
    expect(lambda.commandCalls(GetFunctionConfigurationCommand)).toHaveLength(2);
    expect(result.stderr).toContain('eu-west-1 settings: from function cw-agent-autopilot-prod-onboard\n');
    expect(result.stderr).toContain('us-east-1 settings: from function cw-agent-autopilot-prod-onboard\n');
    const byRegion = Object.fromEntries(audits.map((audit) => [(audit.options as AuditOptions).region, (audit.options as AuditOptions).settings as Settings]));
    expect(byRegion['eu-west-1']?.region).toBe('eu-west-1');
    expect(byRegion['us-east-1']?.region).toBe('us-east-1');
  });

  it('--onboard-function of one region, with a region its stack does not cover, stops with exit 2 naming both', async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: deployed } });
    const { code, stderr } = await runCli(['audit', '--onboard-function', 'arn:aws:lambda:eu-west-1:210987654321:function:x', '--region', 'us-east-1']);
    expect(code).toBe(2);
    expect(stderr).toContain('--onboard-function: the function is in eu-west-1, but the audit covers us-east-1');
    expect(audits).toHaveLength(0);
  });

  it('a deployed environment this CLI cannot parse fails the audit naming the function', async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: { ...deployed, MODIFY_EXISTING_ROLES: 'maybe' } } });
    const result = await run('--stage', 'prod');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the settings of function cw-agent-autopilot-prod-onboard (with the flags given) are not ones this CLI reads');
    expect(result.stderr).toContain('MODIFY_EXISTING_ROLES: expected true or false (got "maybe")');
  });
});
