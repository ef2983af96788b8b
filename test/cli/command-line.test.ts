import { readFileSync } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../cli/command-line.js';
import { commandNames, flags } from '../../cli/flags.js';
import { runCli } from '../harness/cli-run.js';

// No command line below may reach AWS: every client the commands use answers nothing.
const lambda = mockClient(LambdaClient);
const dynamodb = mockClient(DynamoDBClient);
afterEach(() => {
  lambda.reset();
  dynamodb.reset();
});


const run = (...argv: string[]) => runCli(argv);

const id = 'i-0123456789abcdef0';
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('a usage error is one line naming the problem, then the way to the help; exit 2, before any AWS call', () => {
  it.each([
    [['status'], 'status', 'which instance? cw-autopilot status <instance-id> (e.g. i-0123456789abcdef0)'],
    [['check'], 'check', 'which instance? cw-autopilot check <instance-id> (e.g. i-0123456789abcdef0)'],
    [['status', 'web-1'], 'status', '"web-1": not an EC2 instance id (i-0123456789abcdef0)'],
    [['status', id, '--bogus'], 'status', "Unknown option '--bogus'"],
    [['check', id, '--output', 'yaml'], 'check', '--output: expected one of table, json, markdown'],
    [['status', id, '--format', 'xml'], 'status', '--format: expected one of table, json, markdown'],
    [['audit', '--output', 'json', '--format', 'json'], 'audit', '--output and --format are the same option: give one'],
    [['status', id, '--min-coverage', '90'], 'status', '--min-coverage is an option of "cw-autopilot audit", not of "cw-autopilot status"'],
    [['check', id, 'i-0123456789abcdef1'], 'check', 'unexpected argument "i-0123456789abcdef1" (check takes one <instance-id>)'],
    [['status', id, '--region', 'eu-west-1,us-east-1'], 'status', '--region: status works in one region, got eu-west-1, us-east-1'],
    [['check', id, '--endpoint-url', 'localhost:5000'], 'check', '--endpoint-url: expected an http(s) URL, e.g. http://127.0.0.1:5000'],
    [['status', id, '--onboard-function', 'x', '--settings-from-flags'], 'status', "--onboard-function and --settings-from-flags contradict each other: read the table's name from a function, or from the flags"],
    [['audit', '--region'], 'audit', "Option '--region <value>' argument missing"],
    [['audit', 'stray'], 'audit', 'unexpected argument "stray"'],
  ])('%j', async (argv, command, problem) => {
    const result = await run(...argv);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`cw-autopilot ${command}: ${problem}\nRun "cw-autopilot ${command} --help" for usage.\n`);
    expect(lambda.calls()).toHaveLength(0);
    expect(dynamodb.calls()).toHaveLength(0);
  });

  it.each([
    [[], 'no command given (audit, status, check or upgrade-state)'],
    [['stauts', id], 'unknown command "stauts" (audit, status, check or upgrade-state)'],
    [['--region', 'eu-west-1', 'status', id], '--region comes before the command; options go after it: cw-autopilot <command> --region ...'],
    [['help', 'stauts'], 'no help on "stauts": the commands are audit, status, check and upgrade-state'],
  ])('no command: %j', async (argv, problem) => {
    const result = await run(...argv);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`cw-autopilot: ${problem}\nRun "cw-autopilot --help" for usage.\n`);
  });
});

describe('help and version', () => {
  it.each(commandNames)('"%s --help" lists exactly the flags the table gives the command, with their defaults, and its exit codes', async (command) => {
    const result = await run(command, '--help');
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n')[0]).toMatch(new RegExp(`^Usage: cw-autopilot ${command}( <instance-id>)? \\[options\\]$`));
    for (const [name, flag] of Object.entries(flags)) {
      const listed = new RegExp(`^ {2}(-\\w, )?--${name}\\b`, 'm');
      if ((flag.commands as readonly string[]).includes(command)) {
        expect(result.stdout).toMatch(listed);
        if (flag.defaultText) expect(result.stdout.replace(/\s+/g, ' ')).toContain(`default: ${flag.defaultText}`);
      } else {
        expect(result.stdout).not.toMatch(listed);
      }
    }
    expect(result.stdout).toMatch(/^Exit codes\n {2}0 {2}/m);
    expect(result.stdout).toMatch(/^ {2}2 {2}usage error/m);
  });

  it('a command\'s help wins over anything else on its line (no instance id needed), and "help <command>" is the same text', async () => {
    const asked = await run('status', '--help', '--output', 'yaml');
    expect(asked.code).toBe(0);
    expect((await run('help', 'status')).stdout).toBe(asked.stdout);
    expect((await run('status', '-h')).stdout).toBe(asked.stdout);
    expect(asked.stdout).toContain('  3  the table has no record of the instance');
    expect(asked.stdout).toContain('  --output, --format <table|json|markdown>');
  });

  it('the global help lists the commands, the flags every command takes, and every exit code', async () => {
    const result = await run('--help');
    expect(result.code).toBe(0);
    for (const command of commandNames) expect(result.stdout).toMatch(new RegExp(`^ {2}${command} +\\S`, 'm'));
    for (const name of ['region', 'profile', 'endpoint-url', 'output', 'stage', 'help', 'version']) expect(result.stdout).toMatch(new RegExp(`^ {2}(-h, )?--${name}\\b`, 'm'));
    expect(result.stdout).not.toMatch(/^ {2}--min-coverage/m);
    for (const code of [0, 1, 2, 3]) expect(result.stdout).toMatch(new RegExp(`^ {2}${code} {2}\\S`, 'm'));
  });

  it.each([[['--version']], [['status', id, '--version']], [['audit', '--version']]])('%j prints the version in package.json', async (argv) => {
    const result = await run(...argv);
    expect(result).toEqual({ code: 0, stdout: `cw-autopilot ${version}\n`, stderr: '' });
  });
});

describe('the flag table drives parseArgs and the values', () => {
  it('a flag not given has its fallback; repeated values accumulate; an alias sets its flag', () => {
    const line = parseCommandLine('status', [id]);
    expect(line).toEqual({
      request: 'run',
      operand: id,
      flags: { region: [], profile: undefined, 'endpoint-url': undefined, stage: 'dev', 'onboard-function': undefined, 'settings-from-flags': false, table: undefined, output: 'table', help: false, version: false },
    });
    const audit = parseCommandLine('audit', ['--tag', 'team=web', '--tag', 'critical', '--format', 'markdown', '--endpoint-url', 'http://127.0.0.1:5000']);
    expect(audit.flags.tag).toEqual([{ key: 'team', value: 'web' }, { key: 'critical' }]);
    expect(audit.flags.output).toBe('markdown');
    expect(audit.flags['endpoint-url']).toBe('http://127.0.0.1:5000');
  });

  it('check takes --check-function, not the onboard function or the table', () => {
    expect(parseCommandLine('check', [id, '--check-function', 'my-check']).flags['check-function']).toBe('my-check');
    expect(() => parseCommandLine('check', [id, '--table', 'x'])).toThrow('--table is an option of "cw-autopilot audit", "cw-autopilot status", not of "cw-autopilot check"');
  });
});
