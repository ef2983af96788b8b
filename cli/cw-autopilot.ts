import { cliVersion, CliError, commandHelp, globalHelp, isCommand, parseCommandLine, usageHint, UsageError, type CliIo, type CommandLine } from './command-line.js';
import { commandNames, exitCodes, type CommandName } from './flags.js';

export type { CliIo } from './command-line.js';

// Each command's module (and the SDK clients it uses) is loaded when the command runs: `--help`
// and a usage error load none of them.
const runners: { [C in CommandName]: (line: CommandLine<C>, io: CliIo) => Promise<number> } = {
  audit: async (line, io) => (await import('./audit-command.js')).runAuditCommand(line, io),
  status: async (line, io) => (await import('./status-command.js')).showStatus(line, io),
  check: async (line, io) => (await import('./check-command.js')).checkNow(line, io),
  'upgrade-state': async (line, io) => (await import('./upgrade-state-command.js')).upgradeState(line, io),
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
