// `cw-autopilot status` and `check` against moto: the real onboard and check handlers write the
// record, the CLI reads it back through the real SDK (and, for --endpoint-url, the real command).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Context } from 'aws-lambda';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DetachRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { advance, newRecord, readRecord, saveRecord, type OnboardingRecord } from '../../shared/state/instance-record.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { launchInstance, stateChangeEvent } from '../harness/fleet.js';
import { deployOnboardFunction, deployStack, stackEnvironment, type DeployedStack } from '../harness/stack.js';
import { runCli } from '../harness/cli-run.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();

const aws = useAws();
const bin = fileURLToPath(new URL('../../bin/cw-autopilot.mjs', import.meta.url));

// The handlers parse their settings at cold start: the environment is the stack's before import.
Object.assign(process.env, stackEnvironment(), { POWERTOOLS_METRICS_DISABLED: 'true' });
type Handler = (event: unknown, context: Context) => Promise<Record<string, unknown>>;
let onboard: Handler;
let check: Handler;
let stack: DeployedStack;
const context = { functionName: 'test', awsRequestId: 'req', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;

beforeAll(async () => {
  onboard = (await import('../../functions/onboard.js')).handler as unknown as Handler;
  check = (await import('../../functions/check.js')).handler as unknown as Handler;
});

beforeEach(async () => {
  stack = await deployStack();
});


/** Runs the CLI in this process (its AWS clients are this process's, pointed at moto). */
const cli = (...argv: string[]) => runCli(argv);

/** An instance the real onboard handler onboarded: its install command is sent, its check scheduled. */
async function onboarded(name = 'web-1'): Promise<OnboardingRecord> {
  const { instanceId } = await launchInstance({ os: 'linux', tags: { Name: name } });
  aws.ssm.register(instanceId, { platformType: 'Linux' });
  expect(await onboard(stateChangeEvent(instanceId, 'running'), context)).toMatchObject({ action: 'onboard', status: 'checking' });
  const record = await readRecord(clients, stack.settings.stateTable, instanceId);
  if (!record) throw new Error(`no record for ${instanceId}`);
  return record;
}

const functionReads = () => aws.calls().filter((call) => call.service === 'lambda' && call.operation.includes('/configuration'));

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('cw-autopilot status against moto', () => {
  it('prints the record of an instance the onboard handler onboarded, and a timeline of its steps with the command id', async () => {
    const record = await onboarded();
    await deployOnboardFunction(stack);

    const result = await cli('status', record.instanceId, '--stage', 'test', '--region', 'us-east-1');

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    // The table's name came from the deployed onboard function's environment.
    expect(functionReads()).toHaveLength(1);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe(`${record.instanceId} (web-1)`);
    expect(result.stdout).toMatch(/^ {2}status +checking$/m);
    expect(result.stdout).toMatch(/^ {2}table +cwap-test-records in us-east-1$/m);
    expect(record.commandId).toMatch(/.+/);
    expect(result.stdout).toMatch(new RegExp(`^ {2}command +${escaped(record.commandId ?? '')}, sent ${escaped(record.commandSentAt ?? '')}$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^ {2}profile +associated-agent-profile: ${escaped(stack.agentProfile.arn)}$`, 'm'));

    // The whole history, oldest first, one line per step: time, step, detail.
    const header = lines.indexOf('History (4 steps, oldest first)');
    expect(header).toBeGreaterThan(0);
    expect(lines[header + 1]).toMatch(/^TIME +STEP +DETAIL$/);
    const timeline = lines.slice(header + 2, header + 2 + record.history.length);
    expect(timeline.map((line) => line.split(/\s{2,}/)[1])).toEqual(['claimed', 'profile:associated-agent-profile', 'install-command-sent', 'check-scheduled']);
    record.history.forEach((entry, index) => {
      expect(timeline[index]).toMatch(new RegExp(`^${escaped(entry.at)} +${escaped(entry.step)} +${escaped(entry.detail ?? '')}$`));
    });
    expect(timeline[2]).toContain(`(command ${record.commandId})`);
    expect(timeline[3]).toMatch(/scheduled for \S+ \(check 1\)$/);
  });

  it('after an alert, shows the diagnosis, its next step, the alert and the check\'s steps', async () => {
    const { instanceId } = await onboarded('legacy');
    // Someone takes CloudWatchAgentServerPolicy off the agent role: the first check alerts at once.
    const iam = new IAMClient(localClientConfig());
    await iam.send(new DetachRolePolicyCommand({ RoleName: stack.agentRole.name, PolicyArn: 'arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy' }));
    iam.destroy();
    expect(await check({ instanceId, attempt: 1 }, context)).toMatchObject({ action: 'alerted', diagnosis: 'role-missing-policies' });
    const record = await readRecord(clients, stack.settings.stateTable, instanceId);

    const result = await cli('status', instanceId, '--stage', 'test', '--table', stack.settings.stateTable);

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^ {2}status +alerted$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^ {2}diagnosis +role-missing-policies: ${escaped(record?.diagnosis?.summary ?? '?')}$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^ {2}next step +${escaped(record?.diagnosis?.nextStep ?? '?')}$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^ {2}alert +sent ${escaped(record?.alertedAt ?? '?')} \\(role-missing-policies\\) for the launch of ${escaped(record?.launchTime ?? '?')}$`, 'm'));
    expect(result.stdout).toMatch(/^\S+ +alert-decided +role-missing-policies: /m);
    expect(result.stdout).toMatch(/^\S+ +alerted +SNS message \S+: \[cw-agent-autopilot\] legacy/m);
    // --table names the table: no function is read.
    expect(functionReads()).toHaveLength(0);
  });

  it('--output json prints the stored record, every attribute and the whole history; --format is the same flag', async () => {
    const record = await onboarded();
    for (const flag of ['--output', '--format']) {
      const result = await cli('status', record.instanceId, '--stage', 'test', '--settings-from-flags', flag, 'json');
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ table: 'cwap-test-records', region: 'us-east-1', record });
    }
    expect(functionReads()).toHaveLength(0);
  });

  it('--output markdown prints the fields and the history as tables', async () => {
    const record = await onboarded();
    const result = await cli('status', record.instanceId, '--stage', 'test', '--settings-from-flags', '--output', 'markdown');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe(`# ${record.instanceId} (web-1): checking`);
    expect(lines).toContain('| table | cwap-test-records in us-east-1 |');
    expect(lines).toContain('| time | step | detail |');
    const sent = record.history.find((entry) => entry.step === 'install-command-sent');
    expect(lines).toContain(`| ${sent?.at} | install-command-sent | ${sent?.detail} |`);
    expect(lines.filter((line) => /^\| \d{4}-\d\d-\d\dT/.test(line))).toHaveLength(record.history.length);
  });

  it('--account reads the hub\'s record of an instance of another account; without it, that record is not the caller\'s', async () => {
    const member = { account: '111111111111', region: 'us-east-1' };
    const instanceId = 'i-0123456789abcdef1';
    const now = new Date();
    await saveRecord(testClients(member), stack.settings.stateTable, advance(newRecord(member, instanceId, now), { status: 'healthy', os: 'linux' }, 'healthy', now));
    const found = await cli('status', instanceId, '--stage', 'test', '--table', stack.settings.stateTable, '--account', member.account, '--output', 'json');
    expect(found.code).toBe(0);
    expect(JSON.parse(found.stdout).record).toMatchObject({ recordKey: `${member.account}:us-east-1:${instanceId}`, account: member.account, status: 'healthy' });
    const own = await cli('status', instanceId, '--stage', 'test', '--table', stack.settings.stateTable);
    expect(own.code).toBe(3);
  });

  it('an instance the table has no record of: one line naming the instance and the table, exit 3', async () => {
    await deployOnboardFunction(stack);
    const result = await cli('status', 'i-0123456789abcdef0', '--stage', 'test');
    expect(result.code).toBe(3);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')).toEqual([expect.stringMatching(/^cw-autopilot status: no record of i-0123456789abcdef0 in table cwap-test-records \(us-east-1\): /), '']);
  });

  it('without a readable onboard function, warns and reads the table the stage names; a table that does not exist is exit 1 naming it', async () => {
    const record = await onboarded();
    const fallback = await cli('status', record.instanceId, '--stage', 'test');
    expect(fallback.code).toBe(0);
    expect(fallback.stderr).toMatch(/^warning: cannot read the stack's settings from function cw-agent-autopilot-test-onboard in us-east-1 \(ResourceNotFoundException[^\n]*\): using flags and defaults, so the state table may differ from the stack's/);
    expect(fallback.stdout).toMatch(/^ {2}table +cwap-test-records in us-east-1$/m);

    const missing = await cli('status', record.instanceId, '--stage', 'prod', '--settings-from-flags');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^cw-autopilot status: no table cwap-prod-records in us-east-1 \(ResourceNotFoundException: [^\n]*\): pass --stage, --region or --table naming the stack's state table\n$/);
  });

  it('--endpoint-url sends every call there, over AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> (the real command)', async () => {
    const record = await onboarded();
    await deployOnboardFunction(stack);
    // Both variables point where nothing listens: only --endpoint-url can reach moto.
    const nowhere = 'http://127.0.0.1:9';
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [bin, 'status', record.instanceId, '--stage', 'test', '--output', 'json', '--endpoint-url', aws.proxy.url],
        { env: { ...process.env, AWS_ENDPOINT_URL: nowhere, AWS_ENDPOINT_URL_DYNAMODB: nowhere, AWS_ENDPOINT_URL_LAMBDA: nowhere }, timeout: 60_000 },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).record).toEqual(record);
    expect(functionReads()).toHaveLength(1);
  });
});

describe('cw-autopilot check against moto', () => {
  it('a stack without the check function: exit 1, naming the function and the flags that name another', async () => {
    const result = await cli('check', 'i-0123456789abcdef0', '--stage', 'test');
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^cw-autopilot check: no function cw-agent-autopilot-test-check in us-east-1 \(ResourceNotFoundException: [^\n]*\): pass --stage <stage> or --check-function <name\|arn>\n$/,
    );
    expect(aws.calls().filter((call) => call.service === 'lambda')).toEqual([expect.objectContaining({ operation: 'POST 2015-03-31/functions/cw-agent-autopilot-test-check/invocations' })]);
  });

  it('runs the real check handler behind Lambda Invoke (the proxy, as the demo --serve does) and prints its result; a handler error is exit 1 with its message', async () => {
    const record = await onboarded('api-1');
    aws.lambda.register('cw-agent-autopilot-test-check', (payload) => check(payload, context));

    const result = await cli('check', record.instanceId, '--stage', 'test', '--output', 'json');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    // No datapoints yet: the check diagnoses and schedules its next look, and says so.
    expect(JSON.parse(result.stdout)).toMatchObject({
      function: 'cw-agent-autopilot-test-check',
      region: 'us-east-1',
      result: { instanceId: record.instanceId, action: 'retry', diagnosis: 'no-datapoints', status: 'checking' },
    });
    expect((await readRecord(clients, stack.settings.stateTable, record.instanceId))?.checkAttempts).toBe(1);

    aws.lambda.register('cw-agent-autopilot-test-check', async () => {
      throw new Error('DescribeInstances failed: AccessDenied');
    });
    const failed = await cli('check', record.instanceId, '--stage', 'test');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('DescribeInstances failed: AccessDenied');
  });
});
