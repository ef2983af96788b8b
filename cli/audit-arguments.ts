import { parseArgs } from 'node:util';
import * as z from 'zod';
import { reportFormats, type ReportFormat } from '../shared/audit/audit-render.js';
import type { TagMatch } from '../shared/settings.js';

/** The CLI's usage text, printed by `--help` and after a usage error. */
export const auditUsage = `Usage: cw-autopilot audit [options]

Reports every running EC2 instance's CloudWatch agent monitoring, and can fix what it finds.
Uses your AWS credentials (environment, --profile, SSO, ...); never the Lambda's environment.

Scope
  --region <r>[,<r>...]    region(s) to audit (repeatable; default: AWS_REGION or your profile's)
  --tag <key=value|key>    only instances with this tag (repeatable; all must match)
  --instance-id <i-...>    only this instance (repeatable, up to 200)
  --profile <name>         AWS shared-config profile to use

Stack (defaults follow serverless.yml for --stage)
  --stage <name>           deployed stage (default: dev): resources named cwap-<stage>-*
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
  --quiet                   no progress on stderr

Fixing
  --remediate              start onboarding (the EC2 event's code path) for instances that need it
  --dry-run                say what --remediate would do; change nothing

Exit codes: 0 done, 1 coverage below --min-coverage / partial report with --min-coverage / AWS error, 2 usage error.
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

function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/**
 * The environment the deployed functions get from serverless.yml for this stage, rebuilt from
 * the CLI's flags, so the CLI parses it with the functions' own settings schema. `accountId` is
 * only needed for remediation (function and role ARNs); a placeholder stands in until it is known.
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
    MODIFY_EXISTING_ROLES: String(args.modifyExistingRoles),
    ONBOARD_FUNCTION_ARN: functionArn('onboard'),
    CHECK_FUNCTION_ARN: functionArn('check'),
    SCHEDULER_ROLE_ARN: args.schedulerRoleArn ?? `arn:${partition}:iam::${accountId}:role/${prefix}-${region}-scheduler`,
    // The stack's own schedule group (serverless.yml ScheduleGroup).
    SCHEDULE_GROUP: prefix,
    ALERT_TOPIC_ARN: `arn:${partition}:sns:${region}:${accountId}:${prefix}-alerts`,
    AWS_REGION: region,
  };
  if (args.namespace) env.METRIC_NAMESPACE = args.namespace;
  if (args.memoryMetric) env.MEMORY_METRIC = args.memoryMetric;
  if (args.diskMetric) env.DISK_METRIC = args.diskMetric;
  if (args.windowsDiskMetric) env.WINDOWS_DISK_FREE_METRIC = args.windowsDiskMetric;
  if (args.optOutTag !== undefined) env.OPT_OUT_TAG = args.optOutTag;
  if (args.optInTag !== undefined) env.OPT_IN_TAG = args.optInTag;
  return env;
}
