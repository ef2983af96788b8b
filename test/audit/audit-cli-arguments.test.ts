import { describe, expect, it } from 'vitest';
import { parseAuditArguments, stackEnvironment, UsageError } from '../../cli/audit-arguments.js';
import { parseSettings } from '../../shared/config/settings.js';
import { runCli } from '../harness/cli-run.js';


const run = (argv: string[]) => runCli(argv);

describe('cw-autopilot audit arguments', () => {
  it('reads regions (repeated or comma-separated), tags, a threshold and the remediation flags', () => {
    const args = parseAuditArguments(['--region', 'eu-west-1,us-east-1', '--region', 'eu-west-1', '--tag', 'team=web', '--tag', 'critical', '--min-coverage', '95', '--dry-run']);
    expect(args.regions).toEqual(['eu-west-1', 'us-east-1']);
    expect(args.tags).toEqual([{ key: 'team', value: 'web' }, { key: 'critical' }]);
    expect(args.minCoverage).toBe(95);
    expect(args).toMatchObject({ remediate: true, dryRun: true, format: 'table', stage: 'dev', concurrency: 4, recentMinutes: 15 });
  });

  it.each([
    [['--min-coverage', 'lots'], '--min-coverage: expected a number'],
    [['--min-coverage', '120'], '--min-coverage: expected a percentage'],
    [['--format', 'xml'], '--format: expected one of table, json, markdown'],
    [['--region', 'Ireland'], '--region: not an AWS region name'],
    [['--instance-id', 'web-1'], '--instance-id: not an EC2 instance id'],
    [['--tag', '=web'], '--tag: the tag key before "=" is empty'],
    [['--bogus'], "Unknown option '--bogus'"],
    [['stray'], 'stray'],
    [['--onboard-function', 'onboard', '--settings-from-flags'], '--onboard-function and --settings-from-flags contradict each other'],
    [['--accounts', '1234'], '--accounts: expected organization, or 12-digit account ids'],
    [['--accounts', ','], '--accounts: expected organization, or 12-digit account ids'],
    [['--role-name', 'a role'], '--role-name: an IAM role name'],
    [['--regions', 'Ireland'], '--regions: not an AWS region name'],
    [['--regions', 'eu-west-1', '--region', 'us-east-1'], '--region and --regions are the same option'],
    [['--place-concurrency', '0'], '--place-concurrency'],
    [['--onboard-function', 'my function'], '--onboard-function: expected a Lambda function name or ARN'],
  ])('rejects %j with a message naming the argument', (argv, message) => {
    expect(() => parseAuditArguments(argv)).toThrow(UsageError);
    expect(() => parseAuditArguments(argv)).toThrow(message);
  });

  it('reads the accounts (organization, or ids), the role to assume in them, and --regions as --region', () => {
    const args = parseAuditArguments(['--accounts', '111111111111, 222222222222,111111111111', '--regions', 'eu-west-1,us-east-1', '--regions', 'eu-central-1', '--stage', 'prod']);
    expect(args.accounts).toEqual({ kind: 'list', ids: ['111111111111', '222222222222'] });
    expect(args.regions).toEqual(['eu-west-1', 'us-east-1', 'eu-central-1']);
    // The base name: the member stack's role is <name>-<region>.
    expect(args.roleName).toBe('cwap-prod-member-audit');
    expect(args.placeConcurrency).toBe(4);
    expect(parseAuditArguments(['--accounts', 'organization', '--role-name', 'platform-audit', '--place-concurrency', '8'])).toMatchObject({
      accounts: { kind: 'organization' },
      roleName: 'platform-audit',
      placeConcurrency: 8,
    });
    // Not given: the caller's own account.
    expect(parseAuditArguments([]).accounts).toEqual({ kind: 'hub' });
  });

  it('derives the stack names of a stage as serverless.yml makes them, and the functions\' schema accepts them', () => {
    const env = stackEnvironment(parseAuditArguments(['--stage', 'prod']), 'eu-west-1', '210987654321');
    const settings = parseSettings(env);
    expect(settings).toMatchObject({
      stateTable: 'cwap-prod-records',
      agentProfileName: 'cwap-prod-eu-west-1-agent',
      schedulerRoleArn: 'arn:aws:iam::210987654321:role/cwap-prod-eu-west-1-scheduler',
      agentDocumentName: 'cwap-prod-install-and-configure',
      configParameter: { linux: 'AmazonCloudWatch-cwap-prod-linux', windows: 'AmazonCloudWatch-cwap-prod-windows' },
      onboardFunctionArn: 'arn:aws:lambda:eu-west-1:210987654321:function:cw-agent-autopilot-prod-onboard',
    });
  });

  it('the opt-in and opt-out tags of the deployed stack can be given, as the stack takes them', () => {
    const settings = parseSettings(stackEnvironment(parseAuditArguments(['--opt-in-tag', 'monitoring', '--opt-out-tag', 'team=legacy']), 'eu-west-1'));
    expect(settings.optInTag).toEqual({ key: 'monitoring' });
    expect(settings.optOutTag).toEqual({ key: 'team', value: 'legacy' });
  });
});

describe('cw-autopilot exit codes for bad command lines', () => {
  it('a bad argument prints one line naming the problem and a pointer to the help (not the help), and exits 2', async () => {
    const result = await run(['audit', '--min-coverage', 'lots']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('cw-autopilot audit: --min-coverage: expected a number\nRun "cw-autopilot audit --help" for usage.\n');
    expect(result.stdout).toBe('');
  });

  it('an unknown command exits 2 naming the commands', async () => {
    const result = await run(['audti']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('cw-autopilot: unknown command "audti" (audit, status, check or upgrade-state)\nRun "cw-autopilot --help" for usage.\n');
  });

  it('--help prints the usage on stdout and exits 0', async () => {
    const result = await run(['audit', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--min-coverage <percent>');
  });
});
