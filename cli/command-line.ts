import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AutopilotError } from '../shared/errors.js';
import { commandNames, commands, exitCodeMeanings, exitCodes, flags, flagSections, type CommandName, type Flag, type FlagValues } from './flags.js';

/** Where the CLI writes, and the environment it runs in (tests pass their own). */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/** A failure the CLI reports in one line, with the exit code it stands for. */
export class CliError extends AutopilotError {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A command line the CLI cannot run: one line naming the problem and a pointer to the help, exit code 2. */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, exitCodes.usage, options);
  }
}

/** The line after a usage error. */
export function usageHint(command?: CommandName): string {
  return `Run "cw-autopilot${command ? ` ${command}` : ''} --help" for usage.`;
}

/** Whether a word is one of the commands. */
export function isCommand(word: string | undefined): word is CommandName {
  return (commandNames as readonly (string | undefined)[]).includes(word);
}

type AnyFlag = Flag<unknown>;
const table = flags as unknown as Record<string, AnyFlag>;

function flagsOf(command: CommandName): [string, AnyFlag][] {
  return Object.entries(table).filter(([, flag]) => flag.commands.includes(command));
}

/** A command line, read: what was asked, the flags (checked, fallbacks filled in) and the operand. */
export interface CommandLine<C extends CommandName> {
  /** `help` / `version` when asked for (the other flags are then not checked, and have their fallbacks). */
  request: 'run' | 'help' | 'version';
  flags: FlagValues<C>;
  /** The command's operand (checked, present when the command takes one and request is `run`). */
  operand: string | undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * Reads a command's arguments (after the command's name) by the flag table: parseArgs with the
 * command's flags, then each flag's schema. Pure.
 *
 * @throws UsageError naming the argument and what was wrong with it.
 * @example
 * parseCommandLine('status', ['i-0123456789abcdef0', '--output', 'json']).flags.output; // 'json'
 */
export function parseCommandLine<C extends CommandName>(command: C, argv: string[]): CommandLine<C> {
  const own = flagsOf(command);
  const options: Record<string, { type: 'string' | 'boolean'; multiple: boolean; short?: string }> = {};
  const names = new Map<string, string>();
  for (const [name, flag] of own) {
    for (const spelling of [name, ...flag.aliases]) {
      options[spelling] = { type: flag.type, multiple: flag.repeatable, ...(spelling === name && flag.short ? { short: flag.short } : {}) };
      names.set(spelling, name);
    }
  }

  // Leniently first, to tell another command's flag from a misspelt one.
  for (const token of parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true }).tokens) {
    if (token.kind !== 'option' || names.has(token.name)) continue;
    const owner = table[token.name];
    throw new UsageError(
      owner
        ? `${token.rawName} is an option of ${owner.commands.map((name) => `"cw-autopilot ${name}"`).join(', ')}, not of "cw-autopilot ${command}"`
        : `Unknown option '${token.rawName}'`,
    );
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(oneLine((error instanceof Error ? error.message : String(error)).replace(/\. To specify a positional argument.*$/s, '')), { cause: error });
  }
  const given = parsed.values as Record<string, string | boolean | (string | boolean)[] | undefined>;

  const values: Record<string, unknown> = {};
  for (const [name, flag] of own) values[name] = flag.fallback;
  if (given.help === true || given.version === true) {
    return { request: given.help === true ? 'help' : 'version', flags: values as FlagValues<C>, operand: parsed.positionals[0] };
  }

  const problems: string[] = [];
  for (const [name, flag] of own) {
    const spellings = [name, ...flag.aliases].filter((spelling) => given[spelling] !== undefined);
    const [spelling, other] = spellings;
    if (spelling === undefined) continue;
    if (other !== undefined) {
      problems.push(`--${spelling} and --${other} are the same option: give one`);
      continue;
    }
    const checked = flag.schema.safeParse(given[spelling]);
    if (checked.success) values[name] = checked.data;
    else problems.push(...checked.error.issues.map((issue) => `--${spelling}: ${issue.message}`));
  }
  if (problems.length) throw new UsageError(oneLine(problems.join('; ')));

  const spec = commands[command];
  const [first, ...extra] = parsed.positionals;
  const unexpected = spec.operand ? extra : parsed.positionals;
  if (unexpected.length) {
    throw new UsageError(`unexpected argument${unexpected.length > 1 ? 's' : ''} ${unexpected.map((word) => `"${word}"`).join(' ')}${spec.operand ? ` (${command} takes one ${spec.operand.placeholder})` : ''}`);
  }
  let operand: string | undefined;
  if (spec.operand) {
    if (first === undefined) throw new UsageError(spec.operand.missing);
    const checked = spec.operand.schema.safeParse(first);
    if (!checked.success) throw new UsageError(`"${first}": ${checked.error.issues[0]?.message ?? 'invalid'}`);
    operand = checked.data;
  }
  return { request: 'run', flags: values as FlagValues<C>, operand };
}

const width = 100;

function wrap(text: string, indent: number, firstIndent = indent): string[] {
  const lines: string[] = [];
  let line = ' '.repeat(firstIndent);
  let empty = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = ' '.repeat(indent);
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

function flagLeft(name: string, flag: AnyFlag): string {
  const spellings = [...(flag.short ? [`-${flag.short}`] : []), ...[name, ...flag.aliases].map((spelling) => `--${spelling}`)].join(', ');
  return `  ${spellings}${flag.placeholder ? ` ${flag.placeholder}` : ''}`;
}

function flagHelp(name: string, flag: AnyFlag, column: number): string[] {
  const left = flagLeft(name, flag);
  const extras = [flag.defaultText === undefined ? '' : `default: ${flag.defaultText}`, flag.repeatable ? 'repeatable' : ''].filter(Boolean);
  const text = `${flag.help}${extras.length ? ` (${extras.join('; ')})` : ''}`;
  if (left.length + 2 > column) return [left, ...wrap(text, column)];
  const [first = '', ...rest] = wrap(text, column);
  return [`${left.padEnd(column)}${first.trimStart()}`, ...rest];
}

function flagColumn(entries: [string, AnyFlag][]): number {
  // Long flags (past 34 characters) put their help on the next line instead of widening every line.
  return Math.min(36, Math.max(...entries.map(([name, flag]) => flagLeft(name, flag).length)) + 2);
}

function exitCodeLines(codes: readonly (readonly [number, string])[]): string[] {
  return ['Exit codes', ...codes.flatMap(([code, meaning]) => wrap(meaning, 5).map((line, index) => (index === 0 ? `  ${code}  ${line.trimStart()}` : line)))];
}

/** A command's help, from the flag table and the command's description. */
export function commandHelp(command: CommandName): string {
  const spec = commands[command];
  const own = flagsOf(command);
  const column = flagColumn(own);
  const lines = [`Usage: cw-autopilot ${command}${spec.operand ? ` ${spec.operand.placeholder}` : ''} [options]`, '', spec.description, ''];
  for (const section of flagSections) {
    const inSection = own.filter(([, flag]) => flag.section === section);
    if (!inSection.length) continue;
    lines.push(section);
    const note = spec.notes?.[section];
    if (note) lines.push(...note.split('\n').map((line) => `  ${line}`));
    for (const [name, flag] of inSection) lines.push(...flagHelp(name, flag, column));
    lines.push('');
  }
  lines.push(...exitCodeLines(spec.exitCodes), '');
  return lines.join('\n');
}

/** `cw-autopilot --help`: the commands, the flags every command takes, and the exit codes. */
export function globalHelp(): string {
  const common = Object.entries(table).filter(([, flag]) => commandNames.every((command) => flag.commands.includes(command)));
  const column = flagColumn(common);
  const commandColumn = Math.max(...commandNames.map((command) => command.length)) + 2;
  return [
    'Usage: cw-autopilot <command> [options]',
    '',
    'Onboards EC2 instances to the CloudWatch agent and proves their metrics arrive: the operator\'s side.',
    '',
    'Commands',
    ...commandNames.map((command) => `  ${command.padEnd(commandColumn)}${commands[command].summary}`),
    '',
    'Options of every command',
    ...common.flatMap(([name, flag]) => flagHelp(name, flag, column)),
    '',
    ...exitCodeLines(exitCodeMeanings),
    '',
    'Run "cw-autopilot <command> --help" for a command\'s options.',
    '',
  ].join('\n');
}

/** The version in the package.json of this CLI (found from this file upwards: the repo, or an installed package). */
export function cliVersion(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === 'cw-agent-autopilot' && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // no package.json here: look further up
    }
    const parent = dirname(directory);
    if (parent === directory) return 'unknown';
    directory = parent;
  }
}
