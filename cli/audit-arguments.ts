import { parseArgs } from 'node:util';
import * as z from 'zod';
import { reportFormats, type ReportFormat } from '../shared/audit/audit-render.js';
import type { TagMatch } from '../shared/settings.js';

/** The CLI's usage text, printed by `--help` and after a usage error. */
export const auditUsage = `Usage: cw-autopilot audit [options]

Reports every running EC2 instance's CloudWatch agent monitoring, and can fix what it finds.
Uses your AWS credentials (environment, --profile, SSO, ...), never the functions' role; it reads
the stack's settings from its onboard function (needs lambda:GetFunctionConfiguration).

Scope
  --region <r>[,<r>...]    region(s) to audit (repeatable; default: AWS_REGION or your profile's)
  --tag <key=value|key>    only instances with this tag (repeatable; all must match)
  --instance-id <i-...>    only this instance (repeatable, up to 200)
  --profile <name>         AWS shared-config profile to use

Stack settings
  The audit and --remediate use the settings the stack's functions run with: the environment of
  the onboard function (lambda:GetFunctionConfiguration), so opt-in/opt-out tags and
  modifyExistingRoles are the deployed ones. The flags below override single settings.
  --stage <name>           deployed stage (default: dev): function cw-agent-autopilot-<stage>-onboard
  --onboard-function <name|arn>  read the settings from this function instead
  --settings-from-flags    do not read the function: use the flags below and their defaults,
                           which follow serverless.yml's defaults for --stage (not your --param's)
  --table <name>           state table (default: cwap-<stage>-state)
  --agent-profile <name>   the stack's instance profile (default: cwap-<stage>-<region>-agent)
  --namespace <ns>         metric namespace (default: CloudWatch/TestMetrics)
  --memory-metric <name>   default: MEMORY_USED
  --disk-metric <name>     default: DISK_USED
  --windows-disk-metric <name>  default: DISK_FREE
  --opt-out-tag <key=value|key> default: cw-autopilot:skip=true
  --opt-in-tag <key=value|key>  default: none
  --no-modify-existing-roles    the stack may not attach policies to workload roles
  --scheduler-role-arn <arn>    for --remediate (default: role cwap-<stage>-<region>-scheduler)

Output
  --format <table|json|markdown>  default: table
  --min-coverage <percent>  exit 1 when healthy/running is below this (0-100), or the report is partial
  --recent-minutes <n>      a datapoint younger than this is recent (default: 15)
  --concurrency <n>         AWS calls in flight per step (default: 4)
  --quiet                   no progress or settings source on stderr (warnings still)

Fixing
  --remediate              start onboarding (the EC2 event's code path) for instances that need it
  --dry-run                say what --remediate would do; change nothing
  Without the function's settings (unreadable, no --settings-from-flags) --remediate stops with
  exit 2; a read-only audit or --dry-run warns and uses the flags and defaults.

Exit codes: 0 done, 1 coverage below --min-coverage / partial report with --min-coverage / AWS error,
2 usage error, or --remediate without the stack's settings.
`;

/** A command line the CLI cannot run: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** What `cw-autopilot audit` was asked to do. */
export interface AuditArguments {
  regions: string[];
  tags: TagMatch[];
  instanceIds: string[];
  profile: string | undefined;
  stage: string;
  table: string | undefined;
  agentProfile: string | undefined;
  namespace: string | undefined;
  memoryMetric: string | undefined;
  diskMetric: string | undefined;
  windowsDiskMetric: string | undefined;
  optOutTag: string | undefined;
  optInTag: string | undefined;
  modifyExistingRoles: boolean;
  schedulerRoleArn: string | undefined;
  /** The function whose environment holds the stack's settings (name or ARN); default from --stage. */
  onboardFunction: string | undefined;
  /** Skip reading the onboard function: settings come from the flags and serverless.yml's defaults. */
  settingsFromFlags: boolean;
  format: ReportFormat;
  minCoverage: number | undefined;
  recentMinutes: number;
  concurrency: number;
  quiet: boolean;
  remediate: boolean;
  dryRun: boolean;
  help: boolean;
}

const tag = z
  .string()
  .trim()
  .min(1, 'a tag is empty')
  .transform((text): TagMatch => {
    const at = text.indexOf('=');
    return at < 0 ? { key: text } : { key: text.slice(0, at), value: text.slice(at + 1) };
  })
  .refine((match) => match.key.length > 0, 'the tag key before "=" is empty');

const values = z.object({
  region: z.array(z.string()).default([]).transform((list) => list.flatMap((item) => item.split(',')).map((item) => item.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'not an AWS region name (e.g. eu-west-1)'))),
  tag: z.array(tag).default([]),
  'instance-id': z.array(z.string().regex(/^i-[0-9a-f]{8,17}$/, 'not an EC2 instance id (i-0123456789abcdef0)')).max(200).default([]),
  profile: z.string().min(1).optional(),
  stage: z.string().regex(/^[A-Za-z0-9-]{1,19}$/, 'letters, digits or "-", at most 19 characters').default('dev'),
  table: z.string().min(3).optional(),
  'agent-profile': z.string().min(1).optional(),
  namespace: z.string().min(1).optional(),
  'memory-metric': z.string().min(1).optional(),
  'disk-metric': z.string().min(1).optional(),
  'windows-disk-metric': z.string().min(1).optional(),
  'opt-out-tag': z.string().optional(),
  'opt-in-tag': z.string().optional(),
  'no-modify-existing-roles': z.boolean().default(false),
  'scheduler-role-arn': z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\//, 'expected an IAM role ARN').optional(),
  'onboard-function': z
    .string()
    .regex(/^([A-Za-z0-9_-]{1,64}|arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?)$/, 'expected a Lambda function name or ARN')
    .optional(),
  'settings-from-flags': z.boolean().default(false),
  format: z.enum(reportFormats, { error: `expected one of ${reportFormats.join(', ')}` }).default('table'),
  'min-coverage': z.coerce.number({ error: 'expected a number' }).min(0, 'expected a percentage, 0 to 100').max(100, 'expected a percentage, 0 to 100').optional(),
  'recent-minutes': z.coerce.number({ error: 'expected a number' }).int().min(1).max(180).default(15),
  concurrency: z.coerce.number({ error: 'expected a number' }).int().min(1).max(32).default(4),
  quiet: z.boolean().default(false),
  remediate: z.boolean().default(false),
  'dry-run': z.boolean().default(false),
  help: z.boolean().default(false),
});

const options = {
  region: { type: 'string', multiple: true },
  tag: { type: 'string', multiple: true },
  'instance-id': { type: 'string', multiple: true },
  profile: { type: 'string' },
  stage: { type: 'string' },
  table: { type: 'string' },
  'agent-profile': { type: 'string' },
  namespace: { type: 'string' },
  'memory-metric': { type: 'string' },
  'disk-metric': { type: 'string' },
  'windows-disk-metric': { type: 'string' },
  'opt-out-tag': { type: 'string' },
  'opt-in-tag': { type: 'string' },
  'no-modify-existing-roles': { type: 'boolean' },
  'scheduler-role-arn': { type: 'string' },
  'onboard-function': { type: 'string' },
  'settings-from-flags': { type: 'boolean' },
  format: { type: 'string' },
  'min-coverage': { type: 'string' },
  'recent-minutes': { type: 'string' },
  concurrency: { type: 'string' },
  quiet: { type: 'boolean' },
  remediate: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Reads `cw-autopilot audit`'s arguments (after the word `audit`). Pure.
 *
 * @throws UsageError naming the argument and what was wrong with it.
 * @example
 * parseAuditArguments(['--region', 'eu-west-1', '--min-coverage', '95']).minCoverage; // 95
 */
export function parseAuditArguments(argv: string[]): AuditArguments {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message.replace(/\. To specify a positional argument.*$/s, '') : String(error));
  }
  const result = values.safeParse(parsed.values);
  if (!result.success) {
    throw new UsageError(
      result.error.issues
        .map((issue) => {
          const name = String(issue.path[0] ?? '');
          return `--${name}: ${issue.message}`;
        })
        .join('; '),
    );
  }
  const v = result.data;
  if (v['settings-from-flags'] && v['onboard-function'] !== undefined) {
    throw new UsageError('--onboard-function and --settings-from-flags contradict each other: read the settings from a function, or from the flags');
  }
  const functionRegion = regionOfFunction(v['onboard-function']);
  const otherRegions = v.region.filter((region) => functionRegion !== undefined && region !== functionRegion);
  if (otherRegions.length) {
    throw new UsageError(
      `--onboard-function: the function is in ${functionRegion}, but the audit covers ${otherRegions.join(', ')}; each region's stack has its own function (leave --onboard-function out to use cw-agent-autopilot-<stage>-onboard of each region)`,
    );
  }
  return {
    regions: [...new Set(v.region)],
    tags: v.tag,
    instanceIds: v['instance-id'],
    profile: v.profile,
    stage: v.stage,
    table: v.table,
    agentProfile: v['agent-profile'],
    namespace: v.namespace,
    memoryMetric: v['memory-metric'],
    diskMetric: v['disk-metric'],
    windowsDiskMetric: v['windows-disk-metric'],
    optOutTag: v['opt-out-tag'],
    optInTag: v['opt-in-tag'],
    modifyExistingRoles: !v['no-modify-existing-roles'],
    schedulerRoleArn: v['scheduler-role-arn'],
    onboardFunction: v['onboard-function'],
    settingsFromFlags: v['settings-from-flags'],
    format: v.format,
    minCoverage: v['min-coverage'],
    recentMinutes: v['recent-minutes'],
    concurrency: v.concurrency,
    quiet: v.quiet,
    remediate: v.remediate || v['dry-run'],
    dryRun: v['dry-run'],
    help: v.help,
  };
}

/** The region of a function ARN; undefined for a plain name (which names the function in the audited region). */
export function regionOfFunction(nameOrArn: string | undefined): string | undefined {
  return nameOrArn?.startsWith('arn:') ? nameOrArn.split(':')[3] : undefined;
}

/** The onboard function whose environment holds the stack's settings: `--onboard-function`, or the name serverless.yml gives it. */
export function onboardFunctionOf(args: AuditArguments): string {
  return args.onboardFunction ?? `cw-agent-autopilot-${args.stage}-onboard`;
}

function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/**
 * The environment the deployed functions get from serverless.yml for this stage, rebuilt from
 * the CLI's flags and serverless.yml's defaults (used with --settings-from-flags, or when the
 * onboard function cannot be read), so the CLI parses it with the functions' own settings schema.
 * `accountId` is only needed for remediation (function and role ARNs); a placeholder stands in
 * until it is known.
 */
export function stackEnvironment(args: AuditArguments, region: string, accountId = '000000000000'): Record<string, string> {
  const prefix = `cwap-${args.stage}`;
  const partition = partitionOf(region);
  const functionArn = (name: string) => `arn:${partition}:lambda:${region}:${accountId}:function:cw-agent-autopilot-${args.stage}-${name}`;
  const env: Record<string, string> = {
    RESOURCE_PREFIX: prefix,
    STATE_TABLE: args.table ?? `${prefix}-state`,
    // IAM is global: serverless.yml puts the region in the IAM names of a stage.
    AGENT_PROFILE_NAME: args.agentProfile ?? `${prefix}-${region}-agent`,
    AGENT_DOCUMENT_NAME: `${prefix}-install-and-configure`,
    LINUX_CONFIG_PARAMETER: `AmazonCloudWatch-${prefix}-linux`,
    WINDOWS_CONFIG_PARAMETER: `AmazonCloudWatch-${prefix}-windows`,
    MODIFY_EXISTING_ROLES: 'true',
    ONBOARD_FUNCTION_ARN: functionArn('onboard'),
    CHECK_FUNCTION_ARN: functionArn('check'),
    SCHEDULER_ROLE_ARN: args.schedulerRoleArn ?? `arn:${partition}:iam::${accountId}:role/${prefix}-${region}-scheduler`,
    // The stack's own schedule group (serverless.yml ScheduleGroup).
    SCHEDULE_GROUP: prefix,
    ALERT_TOPIC_ARN: `arn:${partition}:sns:${region}:${accountId}:${prefix}-alerts`,
    AWS_REGION: region,
  };
  return { ...env, ...flagSettings(args) };
}

/**
 * The settings the user gave as flags, as environment variables: they override the deployed
 * function's values. `--no-modify-existing-roles` can only narrow (there is no flag to widen it).
 */
export function flagSettings(args: AuditArguments): Record<string, string> {
  const env: Record<string, string> = {};
  if (args.table !== undefined) env.STATE_TABLE = args.table;
  if (args.agentProfile !== undefined) env.AGENT_PROFILE_NAME = args.agentProfile;
  if (args.schedulerRoleArn !== undefined) env.SCHEDULER_ROLE_ARN = args.schedulerRoleArn;
  if (args.namespace !== undefined) env.METRIC_NAMESPACE = args.namespace;
  if (args.memoryMetric !== undefined) env.MEMORY_METRIC = args.memoryMetric;
  if (args.diskMetric !== undefined) env.DISK_METRIC = args.diskMetric;
  if (args.windowsDiskMetric !== undefined) env.WINDOWS_DISK_FREE_METRIC = args.windowsDiskMetric;
  if (args.optOutTag !== undefined) env.OPT_OUT_TAG = args.optOutTag;
  if (args.optInTag !== undefined) env.OPT_IN_TAG = args.optInTag;
  if (!args.modifyExistingRoles) env.MODIFY_EXISTING_ROLES = 'false';
  return env;
}
