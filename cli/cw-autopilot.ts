import { callerAccount, cliClientFactory } from './cli-clients.js';
import { spawn } from 'node:child_process';
import { auditArguments, regionOfFunction, type AuditArguments } from './audit-arguments.js';
import { applyAwsFlags } from './aws-flags.js';
import { checkNow } from './check-command.js';
import { cliVersion, CliError, commandHelp, globalHelp, isCommand, parseCommandLine, usageHint, UsageError, type CliIo, type CommandLine } from './command-line.js';
import { commandNames, exitCodes, type CommandName } from './flags.js';
import { StackSettingsUnavailableError } from './stack-settings.js';
import { showStatus } from './status-command.js';
import { upgradeState } from './upgrade-state-command.js';
import type { AuditReport } from '../shared/audit/audit-summary.js';
import type { InventoryProgress } from '../shared/audit/fleet-inventory.js';

export type { CliIo } from './command-line.js';

/** Set on the child processes of a multi-region audit: audit this region only, print JSON. */
const childRegionVariable = 'CW_AUTOPILOT_AUDIT_REGION';

function progressPrinter(io: CliIo, region: string): (progress: InventoryProgress) => void {
  let lastLine = '';
  let lastAt = 0;
  return (progress) => {
    const line = `${region} ${progress.step}: ${progress.done}${progress.total === undefined ? '' : `/${progress.total}`}`;
    const finished = progress.total !== undefined && progress.done >= progress.total;
    if (io.stderr.isTTY) {
      if (Date.now() - lastAt < 100 && !finished) return;
      lastAt = Date.now();
      io.stderr.write(`\r\x1b[K${line}`);
      if (finished) io.stderr.write('\n');
    } else if (finished || progress.step === 'instances') {
      if (line !== lastLine) io.stderr.write(`${line}\n`);
    }
    lastLine = line;
  };
}

/** Audits one region in this process (the region's clients are this process's clients). */
async function auditRegion(args: AuditArguments, region: string, io: CliIo, progress: boolean): Promise<AuditReport> {
  // Imported here, after AWS_REGION / AWS_PROFILE are set: the shared clients read them once.
  const [{ runAudit }, { onboardInProcess }, { readStackSettings }, { lambda }] = await Promise.all([
    import('../shared/audit/audit-run.js'),
    import('../shared/audit/remediation.js'),
    import('./stack-settings.js'),
    import('../shared/aws/clients.js'),
  ]);
  // The deployed stack's settings, read once: the audit's classification and the remediator use
  // the same ones.
  const stack = await readStackSettings(args, region, lambda);
  if (stack.warning) io.stderr.write(`${stack.warning}\n`);
  if (!args.quiet) io.stderr.write(`${region} ${stack.source}\n`);
  const command = [
    'npx cw-autopilot audit',
    args.stage === 'dev' ? '' : `--stage ${args.stage}`,
    `--region ${region}`,
    args.profile ? `--profile ${args.profile}` : '',
    args.onboardFunction ? `--onboard-function ${args.onboardFunction}` : '',
  ].filter(Boolean).join(' ');
  const clients = cliClientFactory({ account: await callerAccount(region), region }).clients();
  return runAudit(clients, {
    region,
    scope: { tags: args.tags, instanceIds: args.instanceIds },
    settings: stack.forAccount(undefined),
    remediation: !args.remediate
      ? { mode: 'off' }
      : args.dryRun
        ? { mode: 'dry-run' }
        : { mode: 'apply', remediatorFor: (accountId) => onboardInProcess(stack.forAccount(accountId), 'cw-autopilot audit (CLI)') },
    recentSeconds: args.recentMinutes * 60,
    concurrency: args.concurrency,
    auditCommand: command,
    onProgress: progress ? progressPrinter(io, region) : undefined,
  });
}

/** Audits one region in a child process, which gets its own AWS clients for that region. */
function auditRegionInChild(region: string, io: CliIo): Promise<AuditReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      env: { ...io.env, [childRegionVariable]: region, AWS_REGION: region },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      io.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      // The line that says why: a usage error's is followed by the hint to the help.
      const lastLine = err.trim().split('\n').filter((text) => !text.startsWith('Run "cw-autopilot')).at(-1) ?? '';
      // The child already printed why (on the stderr passed through above).
      if (code === 2) return reject(new StackSettingsUnavailableError(`the audit of ${region} stopped: ${lastLine.replace(/^cw-autopilot audit: /, '')}`));
      if (code !== 0) return reject(new Error(`the audit of ${region} failed (exit ${code}): ${lastLine}`));
      try {
        resolve(JSON.parse(out) as AuditReport);
      } catch (error) {
        reject(new Error(`the audit of ${region} printed no report: ${String(error)}`));
      }
    });
  });
}

async function resolveRegions(args: AuditArguments): Promise<string[]> {
  if (args.regions.length) return args.regions;
  const { ec2 } = await import('../shared/aws/clients.js');
  try {
    return [await ec2.config.region()];
  } catch {
    throw new UsageError('no region: pass --region, or set AWS_REGION or a region in your AWS profile');
  }
}

async function audit(line: CommandLine<'audit'>, io: CliIo): Promise<number> {
  const args = auditArguments(line);
  applyAwsFlags(io, { region: undefined, profile: args.profile, endpointUrl: args.endpointUrl });
  // Remediation runs onboarding in this process; its structured logs would land in the report on
  // stdout. The report says what remediation did; POWERTOOLS_LOG_LEVEL=INFO shows the logs anyway.
  io.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
  // A scan is a dense burst of calls: adaptive retry slows the whole run down when AWS throttles
  // it (the Lambda functions keep "standard"; see shared/aws/clients.ts).
  io.env.AWS_RETRY_MODE ??= 'adaptive';

  const childRegion = io.env[childRegionVariable];
  if (childRegion) {
    io.env.AWS_REGION = childRegion;
    const report = await auditRegion(args, childRegion, io, !args.quiet);
    io.stdout.write(JSON.stringify(report));
    return 0;
  }

  if (args.regions.length === 1) io.env.AWS_REGION = args.regions[0];
  const regions = await resolveRegions(args);
  const functionRegion = regionOfFunction(args.onboardFunction);
  if (functionRegion && regions.some((region) => region !== functionRegion)) {
    throw new UsageError(`--onboard-function: the function is in ${functionRegion}, but the audit covers ${regions.join(', ')}`);
  }
  const { mergeReports } = await import('../shared/audit/audit-summary.js');
  const { renderReport } = await import('../shared/audit/audit-render.js');
  const report =
    regions.length === 1
      ? await auditRegion(args, regions[0] as string, io, !args.quiet)
      : mergeReports(await Promise.all(regions.map((region) => auditRegionInChild(region, io))), new Date());
  io.stdout.write(renderReport(report, args.format));

  if (args.minCoverage !== undefined) {
    const percent = report.summary.coverage * 100;
    if (percent < args.minCoverage) {
      io.stderr.write(`coverage ${percent.toFixed(2)}% is below --min-coverage ${args.minCoverage}%\n`);
      return 1;
    }
    if (report.summary.partial) {
      io.stderr.write(`the report is partial (${report.summary.failures.map((failure) => failure.api).join(', ')} failed): coverage is not proven\n`);
      return 1;
    }
  }
  return 0;
}

const runners: { [C in CommandName]: (line: CommandLine<C>, io: CliIo) => Promise<number> } = {
  audit,
  status: showStatus,
  check: checkNow,
  'upgrade-state': upgradeState,
};

async function run<C extends CommandName>(command: C, argv: string[], io: CliIo): Promise<number> {
  const line = parseCommandLine(command, argv);
  if (line.request === 'help') {
    io.stdout.write(commandHelp(command));
    return exitCodes.ok;
  }
  if (line.request === 'version') {
    io.stdout.write(`cw-autopilot ${cliVersion()}\n`);
    return exitCodes.ok;
  }
  return runners[command](line, io);
}

/** `audit, status, check or upgrade-state`. */
function listOfCommands(conjunction: 'and' | 'or'): string {
  return `${commandNames.slice(0, -1).join(', ')} ${conjunction} ${commandNames.at(-1)}`;
}

function usageError(io: CliIo, problem: string, command?: CommandName): number {
  io.stderr.write(`cw-autopilot${command ? ` ${command}` : ''}: ${problem}\n${usageHint(command)}\n`);
  return exitCodes.usage;
}

/**
 * Runs the `cw-autopilot` command line; returns the exit code: 0 done; 1 an AWS error, a failed
 * check function, or (audit) coverage below the threshold or a partial report under one; 2 usage
 * error, or `audit --remediate` without the stack's settings; 3 `status` of an instance the state
 * table has no record of.
 *
 * @example
 * process.exitCode = await main(['audit', '--region', 'eu-west-1', '--min-coverage', '95']);
 */
export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    const [topic] = rest;
    if (topic === undefined) io.stdout.write(globalHelp());
    else if (isCommand(topic)) io.stdout.write(commandHelp(topic));
    else return usageError(io, `no help on "${topic}": the commands are ${listOfCommands('and')}`);
    return exitCodes.ok;
  }
  if (command === '--version') {
    io.stdout.write(`cw-autopilot ${cliVersion()}\n`);
    return exitCodes.ok;
  }
  if (!isCommand(command)) {
    if (command === undefined) return usageError(io, `no command given (${listOfCommands('or')})`);
    if (command.startsWith('-')) return usageError(io, `${command} comes before the command; options go after it: cw-autopilot <command> ${command} ...`);
    return usageError(io, `unknown command "${command}" (${listOfCommands('or')})`);
  }
  try {
    return await run(command, rest, io);
  } catch (error) {
    if (error instanceof UsageError) return usageError(io, error.message, command);
    if (error instanceof CliError) {
      io.stderr.write(`cw-autopilot ${command}: ${error.message}\n`);
      return error.exitCode;
    }
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    io.stderr.write(`cw-autopilot ${command} failed: ${message}\n`);
    return exitCodes.failed;
  }
}
