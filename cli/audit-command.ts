import { LambdaClient } from '@aws-sdk/client-lambda';
import { renderReport } from '../shared/audit/audit-render.js';
import { mergeOrganizationReports, runOrganizationAudit, type OrganizationAuditReport, type OrganizationProgress } from '../shared/audit/organization-audit.js';
import { onboardInProcess } from '../shared/audit/remediation.js';
import type { AwsConnection } from '../shared/aws/client-factory.js';
import { placeLabel, type Place } from '../shared/aws/place.js';
import { auditArguments, regionOfFunction, type AuditArguments } from './audit-arguments.js';
import { awsConnection } from './aws-flags.js';
import { callerAccount, cliClientFactory, defaultRegion } from './cli-clients.js';
import { UsageError, type CliIo, type CommandLine } from './command-line.js';
import { readStackSettings, type StackSettings } from './stack-settings.js';

/** Progress on stderr: one rewritten line on a terminal, else each step's last line and each place done. */
function progressPrinter(io: CliIo, label: (place: Place) => string): (progress: OrganizationProgress) => void {
  const lastLines = new Map<string, string>();
  let lastAt = 0;
  return (progress) => {
    const where = label(progress.place);
    const line =
      progress.step === 'places'
        ? `${where} ${progress.unreadable ? 'not read' : 'done'} (${progress.done}/${progress.total} places)`
        : `${where} ${progress.step}: ${progress.done}${progress.total === undefined ? '' : `/${progress.total}`}`;
    const finished = progress.total !== undefined && progress.done >= progress.total;
    if (io.stderr.isTTY) {
      if (progress.step === 'places') {
        io.stderr.write(`\r\x1b[K${line}\n`);
        return;
      }
      if (Date.now() - lastAt < 100 && !finished) return;
      lastAt = Date.now();
      io.stderr.write(`\r\x1b[K${line}`);
    } else if (finished || progress.step === 'instances' || progress.step === 'places') {
      const key = placeLabel(progress.place);
      if (line !== lastLines.get(key)) io.stderr.write(`${line}\n`);
      lastLines.set(key, line);
    }
  };
}

/** The regions one stack covers, and its settings. */
interface StackRegions {
  hubRegion: string;
  stack: StackSettings;
  regions: string[];
}

/**
 * Which stack's settings (state table, tags, role policy) each region is audited with: the hub's,
 * read from `--onboard-function` or the first region, for the regions it covers (its REGIONS
 * setting); every other region with the stack deployed there, as before organizations (one stack
 * per region).
 */
async function stacksOf(args: AuditArguments, regions: string[], connection: AwsConnection, io: CliIo): Promise<StackRegions[]> {
  const read = async (region: string) => {
    const lambda = new LambdaClient({ ...connection, region, maxAttempts: 5 });
    try {
      const stack = await readStackSettings(args, region, lambda);
      if (stack.warning) io.stderr.write(`${stack.warning}\n`);
      if (!args.quiet) io.stderr.write(`${region} ${stack.source}\n`);
      return stack;
    } finally {
      lambda.destroy();
    }
  };
  const functionRegion = regionOfFunction(args.onboardFunction);
  const hubRegion = functionRegion ?? (regions[0] as string);
  const hub = await read(hubRegion);
  const covered = new Set(hub.forAccount(undefined).regions);
  const others = regions.filter((region) => region !== hubRegion && !covered.has(region));
  if (functionRegion && others.length) {
    throw new UsageError(
      `--onboard-function: the function is in ${functionRegion}, but the audit covers ${others.join(', ')}, which its stack does not (its regions: ${[...covered].join(', ')}); leave --onboard-function out to use cw-agent-autopilot-<stage>-onboard of each region, or deploy the hub with --param regions=...`,
    );
  }
  const stacks: StackRegions[] = [{ hubRegion, stack: hub, regions: regions.filter((region) => !others.includes(region)) }];
  for (const region of others) stacks.push({ hubRegion: region, stack: await read(region), regions: [region] });
  return stacks.filter((group) => group.regions.length > 0);
}

/** The audit command a row's fix names, for its place. */
function commandFor(args: AuditArguments, caller: string, place: Place): string {
  return [
    'npx cw-autopilot audit',
    args.stage === 'dev' ? '' : `--stage ${args.stage}`,
    `--region ${place.region}`,
    place.account === caller ? '' : `--accounts ${place.account}`,
    place.account === caller || args.roleName === `cwap-${args.stage}-member-audit` ? '' : `--role-name ${args.roleName}`,
    args.profile ? `--profile ${args.profile}` : '',
    args.onboardFunction ? `--onboard-function ${args.onboardFunction}` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

/**
 * `cw-autopilot audit`: audits every (account, region) asked for in this process, each through
 * the factory's clients of that place (the caller's credentials in the caller's account,
 * `--role-name`-<region> assumed in the others), with the settings of the stack covering the
 * region, and prints one report.
 */
export async function runAuditCommand(line: CommandLine<'audit'>, io: CliIo): Promise<number> {
  const args = auditArguments(line);
  // Remediation runs onboarding in this process; its structured logs would land in the report on
  // stdout. The report says what remediation did; POWERTOOLS_LOG_LEVEL=INFO shows the logs anyway.
  io.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
  // A scan is a dense burst of calls: adaptive retry slows the whole run down when AWS throttles
  // it (the functions keep "standard"; see AwsConnection).
  const connection = awsConnection(args, 'adaptive');
  const regions = args.regions.length ? args.regions : [await defaultRegion(connection)];
  const stacks = await stacksOf(args, regions, connection, io);
  const caller = await callerAccount(stacks[0]?.hubRegion ?? (regions[0] as string), connection);
  const label = args.accounts.kind === 'hub' ? (place: Place) => place.region : placeLabel;

  const reports: OrganizationAuditReport[] = [];
  for (const { hubRegion, stack, regions: covered } of stacks) {
    const factory = cliClientFactory({ account: caller, region: hubRegion }, { roleName: args.roleName, connection });
    // The hub's settings: its table, topic and functions are in the caller's account.
    const settings = stack.forAccount(caller);
    reports.push(
      await runOrganizationAudit(factory, {
        accounts: args.accounts,
        regions: covered,
        placeConcurrency: args.placeConcurrency,
        scope: { tags: args.tags, instanceIds: args.instanceIds },
        settings,
        remediation: !args.remediate
          ? { mode: 'off' }
          : args.dryRun
            ? { mode: 'dry-run' }
            : { mode: 'apply', remediatorFor: (place) => onboardInProcess(settings, factory, place, 'cw-autopilot audit (CLI)') },
        recentSeconds: args.recentMinutes * 60,
        concurrency: args.concurrency,
        auditCommand: (place) => commandFor(args, caller, place),
        onProgress: args.quiet ? undefined : progressPrinter(io, label),
      }),
    );
  }
  const report = reports.length === 1 ? (reports[0] as OrganizationAuditReport) : mergeOrganizationReports(reports, new Date());
  io.stdout.write(renderReport(report, args.format));

  if (args.minCoverage !== undefined) {
    const percent = report.summary.coverage * 100;
    if (percent < args.minCoverage) {
      io.stderr.write(`coverage ${percent.toFixed(2)}% is below --min-coverage ${args.minCoverage}%\n`);
      return 1;
    }
    if (report.summary.partial) {
      const unread = report.organization.unreadable.map((place) => `${placeLabel(place)} not read`);
      const failed = report.summary.failures.map((failure) => `${failure.api} failed`);
      io.stderr.write(`the report is partial (${[...unread, ...failed].join(', ')}): coverage is not proven\n`);
      return 1;
    }
  }
  return 0;
}
