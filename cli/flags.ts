import * as z from 'zod';
import { reportFormats } from '../shared/audit/report-formats.js';
import { parseTagMatch, type AccountScope } from '../shared/config/settings.js';

// Every flag of `cw-autopilot`, declared once. The table below drives node:util parseArgs (type,
// repeatable, aliases, short name), the validation (a zod schema per flag), the defaults and the
// help text of each command that uses the flag (cli/command-line.ts reads it).

/** The commands of `cw-autopilot`. */
export const commandNames = ['audit', 'status', 'check', 'upgrade-state'] as const;
export type CommandName = (typeof commandNames)[number];

/** The help's flag sections, in the order it prints them. */
export const flagSections = ['Scope', 'AWS', 'Stack settings', 'Output', 'Fixing', 'General'] as const;
export type FlagSection = (typeof flagSections)[number];

/** One command-line flag: how parseArgs reads it, how it is checked, and what the help says. */
export interface Flag<T, C extends CommandName = CommandName> {
  /** A value (`--table cwap-prod-records`) or a switch (`--quiet`). */
  type: 'string' | 'boolean';
  /** May be given more than once; the values accumulate (in order). */
  repeatable: boolean;
  /** Other long names of the same flag (`--format` for `--output`). */
  aliases: readonly string[];
  short: string | undefined;
  /** How the help shows the value, e.g. `<name>`; empty for a switch. */
  placeholder: string;
  help: string;
  /** The value when the flag is not given. */
  fallback: T;
  /** The default as the help states it; undefined when there is none worth stating. */
  defaultText: string | undefined;
  /** Checks and converts what parseArgs read (a string, a list of strings, or a boolean). */
  schema: z.ZodType<T>;
  /** The commands that take this flag. */
  commands: readonly C[];
  section: FlagSection;
}

interface FlagText<C extends CommandName> {
  help: string;
  commands: readonly C[];
  section: FlagSection;
  defaultText?: string;
  aliases?: readonly string[];
  short?: string;
}

/** A flag with one value; without `fallback` it is undefined when not given. */
function value<T, const C extends CommandName>(spec: FlagText<C> & { placeholder: string; schema: z.ZodType<T> }): Flag<T | undefined, C>;
function value<T, const C extends CommandName>(spec: FlagText<C> & { placeholder: string; schema: z.ZodType<T>; fallback: NoInfer<T> }): Flag<T, C>;
function value<T, const C extends CommandName>(spec: FlagText<C> & { placeholder: string; schema: z.ZodType<T>; fallback?: T }): Flag<T | undefined, C> {
  return {
    type: 'string',
    repeatable: false,
    aliases: spec.aliases ?? [],
    short: spec.short,
    placeholder: spec.placeholder,
    help: spec.help,
    fallback: spec.fallback,
    defaultText: spec.defaultText ?? (spec.fallback === undefined ? undefined : String(spec.fallback)),
    schema: spec.schema,
    commands: spec.commands,
    section: spec.section,
  };
}

/** A repeatable flag: its schema gets every value given, in order; none given is []. */
function list<T, const C extends CommandName>(spec: FlagText<C> & { placeholder: string; schema: z.ZodType<T[]> }): Flag<T[], C> {
  return {
    type: 'string',
    repeatable: true,
    aliases: spec.aliases ?? [],
    short: spec.short,
    placeholder: spec.placeholder,
    help: spec.help,
    fallback: [],
    defaultText: spec.defaultText,
    schema: spec.schema,
    commands: spec.commands,
    section: spec.section,
  };
}

/** A switch: true when given. */
function toggle<const C extends CommandName>(spec: FlagText<C>): Flag<boolean, C> {
  return {
    type: 'boolean',
    repeatable: false,
    aliases: spec.aliases ?? [],
    short: spec.short,
    placeholder: '',
    help: spec.help,
    fallback: false,
    defaultText: spec.defaultText,
    schema: z.boolean(),
    commands: spec.commands,
    section: spec.section,
  };
}

/** An EC2 instance id, as DescribeInstances and the functions' inputs take it. */
export const instanceIdSchema = z.string().regex(/^i-[0-9a-f]{8,17}$/, 'not an EC2 instance id (i-0123456789abcdef0)');

const functionName = z
  .string()
  .regex(/^([A-Za-z0-9_-]{1,64}|arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?)$/, 'expected a Lambda function name or ARN');

const tag = z
  .string()
  .trim()
  .min(1, 'a tag is empty')
  .transform(parseTagMatch)
  .refine((match) => match.key.length > 0, 'the tag key before "=" is empty');

const number = () => z.coerce.number({ error: 'expected a number' });

const every = commandNames;

/** The flags of every command. */
export const flags = {
  // Scope
  tag: list({
    placeholder: '<key=value|key>',
    help: 'only instances with this tag (all must match)',
    schema: z.array(tag),
    commands: ['audit'],
    section: 'Scope',
  }),
  'instance-id': list({
    placeholder: '<i-...>',
    help: 'only this instance (up to 200)',
    schema: z.array(instanceIdSchema).max(200),
    commands: ['audit'],
    section: 'Scope',
  }),

  // AWS
  region: list({
    placeholder: '<region>[,<region>...]',
    aliases: ['regions'],
    help: 'AWS region (audit takes several, repeated or comma-separated, and reports them together)',
    defaultText: "AWS_REGION, or your profile's region",
    schema: z
      .array(z.string())
      .transform((given) => [...new Set(given.flatMap((item) => item.split(',')).map((item) => item.trim()).filter(Boolean))])
      .pipe(z.array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'not an AWS region name (e.g. eu-west-1)'))),
    commands: every,
    section: 'AWS',
  }),
  accounts: value({
    placeholder: '<organization|id,...>',
    help: 'the accounts to audit: organization (every ACTIVE account, Organizations ListAccounts) or 12-digit ids, comma-separated',
    defaultText: 'the account of your credentials',
    schema: z
      .string()
      .trim()
      .transform((text): Exclude<AccountScope, { kind: 'hub' }> => {
        if (text === 'organization') return { kind: 'organization' };
        return { kind: 'list', ids: [...new Set(text.split(',').map((id) => id.trim()).filter(Boolean))] };
      })
      .refine((scope) => scope.kind === 'organization' || (scope.ids.length > 0 && scope.ids.every((id) => /^\d{12}$/.test(id))), 'expected organization, or 12-digit account ids separated by commas'),
    commands: ['audit'],
    section: 'AWS',
  }),
  'role-name': value({
    placeholder: '<name>',
    help: 'the role assumed in accounts other than yours, <name>-<region> in each (the member stack\'s audit role; it must trust your role, see the README)',
    defaultText: 'cwap-<stage>-member-audit',
    schema: z.string().regex(/^[\w+=,.@-]{1,48}$/, 'an IAM role name of at most 48 characters (the region is appended)'),
    commands: ['audit'],
    section: 'AWS',
  }),
  account: value({
    placeholder: '<id>',
    help: 'the account the instance is in (status, check: the hub\'s record and check of it; upgrade-state: of the old records, the stack\'s own)',
    defaultText: 'the account of your credentials',
    schema: z.string().regex(/^\d{12}$/, 'not a 12-digit AWS account id'),
    commands: ['status', 'check', 'upgrade-state'],
    section: 'AWS',
  }),
  profile: value({
    placeholder: '<name>',
    help: 'AWS shared-config profile to use',
    defaultText: 'AWS_PROFILE, else the SDK\'s credential chain',
    schema: z.string().min(1),
    commands: every,
    section: 'AWS',
  }),
  'endpoint-url': value({
    placeholder: '<url>',
    help: 'send every AWS call of this run to this URL, e.g. a local emulator (wins over AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>)',
    schema: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL, e.g. http://127.0.0.1:5000' }),
    commands: every,
    section: 'AWS',
  }),

  // Stack settings
  stage: value({
    placeholder: '<name>',
    help: 'the deployed stage: functions cw-agent-autopilot-<stage>-*, resources cwap-<stage>-*',
    schema: z.string().regex(/^[A-Za-z0-9-]{1,19}$/, 'letters, digits or "-", at most 19 characters'),
    fallback: 'dev',
    commands: every,
    section: 'Stack settings',
  }),
  'onboard-function': value({
    placeholder: '<name|arn>',
    help: 'read the stack\'s settings from this function',
    defaultText: 'cw-agent-autopilot-<stage>-onboard',
    schema: functionName,
    commands: ['audit', 'status'],
    section: 'Stack settings',
  }),
  'check-function': value({
    placeholder: '<name|arn>',
    help: 'the check function to invoke',
    defaultText: 'cw-agent-autopilot-<stage>-check',
    schema: functionName,
    commands: ['check'],
    section: 'Stack settings',
  }),
  'settings-from-flags': toggle({
    help: 'do not read the onboard function: use the flags and serverless.yml\'s defaults for --stage (not your --param\'s)',
    commands: ['audit', 'status'],
    section: 'Stack settings',
  }),
  table: value({
    placeholder: '<name>',
    help: 'the state table',
    defaultText: "the onboard function's, else cwap-<stage>-records",
    schema: z.string().min(3),
    commands: ['audit', 'status'],
    section: 'Stack settings',
  }),
  'agent-profile': value({
    placeholder: '<name>',
    help: 'the stack\'s instance profile',
    defaultText: 'cwap-<stage>-<region>-agent',
    schema: z.string().min(1),
    commands: ['audit'],
    section: 'Stack settings',
  }),
  namespace: value({
    placeholder: '<ns>',
    help: 'metric namespace',
    defaultText: 'CloudWatch/TestMetrics',
    schema: z.string().min(1),
    commands: ['audit'],
    section: 'Stack settings',
  }),
  'memory-metric': value({ placeholder: '<name>', help: 'memory metric', defaultText: 'MEMORY_USED', schema: z.string().min(1), commands: ['audit'], section: 'Stack settings' }),
  'disk-metric': value({ placeholder: '<name>', help: 'disk metric (Linux)', defaultText: 'DISK_USED', schema: z.string().min(1), commands: ['audit'], section: 'Stack settings' }),
  'windows-disk-metric': value({ placeholder: '<name>', help: 'free disk space metric (Windows)', defaultText: 'DISK_FREE', schema: z.string().min(1), commands: ['audit'], section: 'Stack settings' }),
  'opt-out-tag': value({ placeholder: '<key=value|key>', help: 'instances with this tag are left alone', defaultText: 'cw-autopilot:skip=true', schema: z.string(), commands: ['audit'], section: 'Stack settings' }),
  'opt-in-tag': value({ placeholder: '<key=value|key>', help: 'only instances with this tag are monitored', defaultText: 'none', schema: z.string(), commands: ['audit'], section: 'Stack settings' }),
  'no-modify-existing-roles': toggle({ help: 'the stack may not attach policies to workload roles', commands: ['audit'], section: 'Stack settings' }),
  'scheduler-role-arn': value({
    placeholder: '<arn>',
    help: 'for --remediate',
    defaultText: 'role cwap-<stage>-<region>-scheduler',
    schema: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\//, 'expected an IAM role ARN'),
    commands: ['audit'],
    section: 'Stack settings',
  }),

  // upgrade-state
  from: value({
    placeholder: '<table>',
    help: 'the single-account version\'s state table, keyed by instanceId (only read)',
    defaultText: 'cwap-<stage>-state',
    schema: z.string().min(3),
    commands: ['upgrade-state'],
    section: 'Stack settings',
  }),
  to: value({
    placeholder: '<table>',
    help: 'this version\'s state table, keyed by recordKey',
    defaultText: 'cwap-<stage>-records',
    schema: z.string().min(3),
    commands: ['upgrade-state'],
    section: 'Stack settings',
  }),

  // Output
  output: value({
    placeholder: `<${reportFormats.join('|')}>`,
    aliases: ['format'],
    help: 'output format',
    schema: z.enum(reportFormats, { error: `expected one of ${reportFormats.join(', ')}` }),
    fallback: 'table',
    commands: every,
    section: 'Output',
  }),
  'min-coverage': value({
    placeholder: '<percent>',
    help: 'exit 1 when healthy/running is below this (0-100), or the report is partial',
    schema: number().min(0, 'expected a percentage, 0 to 100').max(100, 'expected a percentage, 0 to 100'),
    commands: ['audit'],
    section: 'Output',
  }),
  'recent-minutes': value({
    placeholder: '<n>',
    help: 'a datapoint younger than this is recent (1-180)',
    schema: number().int().min(1).max(180),
    fallback: 15,
    commands: ['audit'],
    section: 'Output',
  }),
  concurrency: value({
    placeholder: '<n>',
    help: 'AWS calls in flight per step (1-32)',
    schema: number().int().min(1).max(32),
    fallback: 4,
    commands: ['audit'],
    section: 'Output',
  }),
  'place-concurrency': value({
    placeholder: '<n>',
    help: '(account, region) places audited at once (1-32)',
    schema: number().int().min(1).max(32),
    fallback: 4,
    commands: ['audit'],
    section: 'Output',
  }),
  quiet: toggle({ help: 'no progress or settings source on stderr (warnings still)', commands: ['audit'], section: 'Output' }),

  // Fixing
  remediate: toggle({ help: 'start onboarding (the EC2 event\'s code path) for instances that need it', commands: ['audit'], section: 'Fixing' }),
  'dry-run': toggle({ help: 'say what --remediate (audit) or the copy (upgrade-state) would do; change nothing', commands: ['audit', 'upgrade-state'], section: 'Fixing' }),

  // General
  help: toggle({ short: 'h', help: 'print this help and exit', commands: every, section: 'General' }),
  version: toggle({ help: 'print the version of cw-autopilot and exit', commands: every, section: 'General' }),
};

export type Flags = typeof flags;
export type FlagName = keyof Flags;
/** The names of the flags a command takes. */
export type FlagOf<C extends CommandName> = { [K in FlagName]: C extends Flags[K]['commands'][number] ? K : never }[FlagName];
/** A command's flags, read and checked: a flag not given has its fallback. */
export type FlagValues<C extends CommandName> = { [K in FlagOf<C>]: Flags[K]['fallback'] };

/** The exit codes of `cw-autopilot`; each command's help lists the ones it uses. */
export const exitCodes = {
  ok: 0,
  /** An AWS error, a failed function, or (audit) coverage below --min-coverage. */
  failed: 1,
  usage: 2,
  /** status: the state table has no record of the instance. */
  noRecord: 3,
} as const;

/** What each exit code means, for `cw-autopilot --help`. */
export const exitCodeMeanings: readonly (readonly [code: number, meaning: string])[] = [
  [exitCodes.ok, 'done'],
  [exitCodes.failed, 'an AWS error, a failed check function, or (audit) coverage below --min-coverage or a partial report with it'],
  [exitCodes.usage, 'usage error (one line says what, the next how to get help), or audit --remediate without the stack\'s settings'],
  [exitCodes.noRecord, 'status: the state table has no record of the instance'],
];

/** What a command is, for the help and the parser. */
export interface CommandSpec {
  /** One line, for the list of commands. */
  summary: string;
  /** The one operand the command takes after its name, if any. */
  operand?: { placeholder: string; schema: z.ZodType<string>; missing: string };
  /** The help's text between the usage line and the flags. */
  description: string;
  /** Text the help prints under a section's title, before its flags. */
  notes?: Partial<Record<FlagSection, string>>;
  exitCodes: readonly (readonly [code: number, meaning: string])[];
}

const instanceOperand = (command: string) => ({
  placeholder: '<instance-id>',
  schema: instanceIdSchema,
  missing: `which instance? cw-autopilot ${command} <instance-id> (e.g. i-0123456789abcdef0)`,
});

/** The commands, in the order the help lists them. */
export const commands: Record<CommandName, CommandSpec> = {
  audit: {
    summary: "report every running instance's monitoring state (and fix it with --remediate)",
    description: `Reports every running EC2 instance's CloudWatch agent monitoring, and can fix what it finds.
Uses your AWS credentials (environment, --profile, SSO, ...), never the functions' role; it reads
the stack's settings from its onboard function (needs lambda:GetFunctionConfiguration).`,
    notes: {
      'Stack settings': `The audit and --remediate use the settings the stack's functions run with: the environment of
the onboard function (lambda:GetFunctionConfiguration), so opt-in/opt-out tags and
modifyExistingRoles are the deployed ones. The flags below override single settings.`,
      Fixing: `Without the function's settings (unreadable, no --settings-from-flags) --remediate stops with
exit 2; a read-only audit or --dry-run warns and uses the flags and defaults.`,
    },
    exitCodes: [
      [exitCodes.ok, 'done'],
      [exitCodes.failed, 'coverage below --min-coverage, a partial report with --min-coverage, or an AWS error'],
      [exitCodes.usage, 'usage error, or --remediate without the stack\'s settings'],
    ],
  },
  status: {
    summary: "print an instance's onboarding record and its history as a timeline",
    operand: instanceOperand('status'),
    description: `Prints what cw-autopilot knows about one instance: its record in the stack's state table (status,
profile, install command, diagnosis, alert, alarms) and every step of its history, oldest first.
The table is the one the stack's onboard function names (lambda:GetFunctionConfiguration), unless
--table names it; reading the record needs dynamodb:GetItem on it.`,
    exitCodes: [
      [exitCodes.ok, 'printed'],
      [exitCodes.failed, 'an AWS error (e.g. no such table)'],
      [exitCodes.usage, 'usage error'],
      [exitCodes.noRecord, 'the table has no record of the instance'],
    ],
  },
  check: {
    summary: 'check one instance now, through the deployed check function',
    operand: instanceOperand('check'),
    description: `Invokes the stack's check function for one instance (lambda:InvokeFunction, RequestResponse,
payload {"instanceId": "..."}), as its schedule would: it looks at the metrics, records the result,
and alerts, retries or creates alarms as a scheduled check does. Prints what the check did.`,
    exitCodes: [
      [exitCodes.ok, 'the check ran (whatever it found: see its action and status)'],
      [exitCodes.failed, 'the function failed (FunctionError, its message is printed), or an AWS error'],
      [exitCodes.usage, 'usage error'],
    ],
  },
  'upgrade-state': {
    summary: "copy a single-account stack's state table (cwap-<stage>-state) into this version's",
    description: `Copies every record of the state table of the version before organizations (cwap-<stage>-state,
keyed by instanceId) into this version's (cwap-<stage>-records, keyed by account:region:instanceId),
as records of your credentials' account (or --account) in the region. Run it once after
"osls deploy" of this version. A record the new version already wrote is newer and kept; a second
run copies nothing. Gone records without an expiry get one (goneRecordRetentionDays, read from the
onboard function). The old table is only read: the command prints how to delete it.
Needs dynamodb:DescribeTable on both tables, dynamodb:Scan on the old one, dynamodb:PutItem and
dynamodb:GetItem on the new one, and lambda:GetFunctionConfiguration on the onboard function.`,
    exitCodes: [
      [exitCodes.ok, 'every record is in the new table (copied now, before, or newer there)'],
      [exitCodes.failed, 'a record could not be copied (listed; run again), a table is missing or not a state table, or an AWS error'],
      [exitCodes.usage, 'usage error'],
    ],
  },
};
