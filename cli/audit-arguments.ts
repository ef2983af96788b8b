import { parseCommandLine, UsageError, type CommandLine } from './command-line.js';
import type { ReportFormat } from '../shared/audit/report-formats.js';
import type { AccountScope, TagMatch } from '../shared/config/settings.js';
import { partitionOfRegion } from '../shared/aws/partitions.js';

export { UsageError } from './command-line.js';

/** What `cw-autopilot audit` was asked to do. */
export interface AuditArguments {
  regions: string[];
  /** `--accounts`; `hub` (not given): the caller's own account. */
  accounts: AccountScope;
  /** Base name of the role assumed in other accounts (`<roleName>-<region>`). */
  roleName: string;
  tags: TagMatch[];
  instanceIds: string[];
  profile: string | undefined;
  /** Where every AWS call of this run goes (`--endpoint-url`); undefined: the SDK's own configuration. */
  endpointUrl: string | undefined;
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
  /** Places audited at once. */
  placeConcurrency: number;
  quiet: boolean;
  remediate: boolean;
  dryRun: boolean;
  help: boolean;
}

/**
 * What the stack's settings are read with (see stack-settings.ts): the stage, where to read them,
 * and the flags that override single settings. The audit gives all of them; `status` its subset.
 */
export type StackArguments = Pick<
  AuditArguments,
  | 'stage'
  | 'table'
  | 'agentProfile'
  | 'namespace'
  | 'memoryMetric'
  | 'diskMetric'
  | 'windowsDiskMetric'
  | 'optOutTag'
  | 'optInTag'
  | 'modifyExistingRoles'
  | 'schedulerRoleArn'
  | 'onboardFunction'
  | 'settingsFromFlags'
  | 'remediate'
  | 'dryRun'
>;

/**
 * The audit's arguments from its command line, with the checks that involve several flags.
 *
 * @throws UsageError naming the arguments that contradict each other.
 */
export function auditArguments(line: CommandLine<'audit'>): AuditArguments {
  const v = line.flags;
  if (line.request === 'run') {
    if (v['settings-from-flags'] && v['onboard-function'] !== undefined) {
      throw new UsageError('--onboard-function and --settings-from-flags contradict each other: read the settings from a function, or from the flags');
    }
  }
  return {
    regions: v.region,
    accounts: v.accounts ?? { kind: 'hub' },
    roleName: v['role-name'] ?? `cwap-${v.stage}-member-audit`,
    tags: v.tag,
    instanceIds: v['instance-id'],
    profile: v.profile,
    endpointUrl: v['endpoint-url'],
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
    format: v.output,
    minCoverage: v['min-coverage'],
    recentMinutes: v['recent-minutes'],
    concurrency: v.concurrency,
    placeConcurrency: v['place-concurrency'],
    quiet: v.quiet,
    remediate: v.remediate || v['dry-run'],
    dryRun: v['dry-run'],
    help: line.request === 'help',
  };
}

/**
 * Reads `cw-autopilot audit`'s arguments (after the word `audit`). Pure.
 *
 * @throws UsageError naming the argument and what was wrong with it.
 * @example
 * parseAuditArguments(['--region', 'eu-west-1', '--min-coverage', '95']).minCoverage; // 95
 */
export function parseAuditArguments(argv: string[]): AuditArguments {
  return auditArguments(parseCommandLine('audit', argv));
}

/** The region of a function ARN; undefined for a plain name (which names the function in the audited region). */
export function regionOfFunction(nameOrArn: string | undefined): string | undefined {
  return nameOrArn?.startsWith('arn:') ? nameOrArn.split(':')[3] : undefined;
}

/** The onboard function whose environment holds the stack's settings: `--onboard-function`, or the name serverless.yml gives it. */
export function onboardFunctionOf(args: Pick<StackArguments, 'onboardFunction' | 'stage'>): string {
  return args.onboardFunction ?? `cw-agent-autopilot-${args.stage}-onboard`;
}

/**
 * The environment the deployed functions get from serverless.yml for this stage, rebuilt from
 * the CLI's flags and serverless.yml's defaults (used with --settings-from-flags, or when the
 * onboard function cannot be read), so the CLI parses it with the functions' own settings schema.
 * `accountId` is only needed for remediation (function and role ARNs); a placeholder stands in
 * until it is known.
 */
export function stackEnvironment(args: StackArguments, region: string, accountId = '000000000000'): Record<string, string> {
  const prefix = `cwap-${args.stage}`;
  const partition = partitionOfRegion(region);
  const functionArn = (name: string) => `arn:${partition}:lambda:${region}:${accountId}:function:cw-agent-autopilot-${args.stage}-${name}`;
  const env: Record<string, string> = {
    RESOURCE_PREFIX: prefix,
    STATE_TABLE: args.table ?? `${prefix}-records`,
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
export function flagSettings(args: StackArguments): Record<string, string> {
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
