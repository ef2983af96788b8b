import { InvalidSettingsError } from '../errors.js';
import * as z from 'zod';
import { accountOfArn, type Place } from '../aws/place.js';

/** A tag condition, written `key=value` in settings (`key` alone matches any value). */
export interface TagMatch {
  key: string;
  value?: string;
}

/**
 * Reads a tag condition written `key=value`, or `key` alone for any value. The text is taken as
 * given (callers trim it and reject an empty key with their own message).
 *
 * @example
 * parseTagMatch('env=prod'); // { key: 'env', value: 'prod' }
 */
export function parseTagMatch(text: string): TagMatch {
  const at = text.indexOf('=');
  return at < 0 ? { key: text } : { key: text.slice(0, at), value: text.slice(at + 1) };
}

/**
 * A tag setting: `key=value` or `key` alone; empty means "no such tag". An unset variable takes
 * the fallback (so OPT_OUT_TAG='' turns the opt-out tag off, while leaving it unset keeps the default).
 */
const tagSetting = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((raw, context): TagMatch | undefined => {
      const text = raw.trim();
      if (!text) return undefined;
      const tag = parseTagMatch(text);
      if (!tag.key) {
        context.addIssue({ code: 'custom', message: 'the tag key before "=" is empty' });
        return z.NEVER;
      }
      return tag;
    });

const boolean = z
  .enum(['true', 'false', 'yes', 'no', '1', '0'], {
    error: 'expected true or false',
  })
  .transform((text) => ['true', 'yes', '1'].includes(text));

const seconds = (fallback: number, min = 0, max = 86_400) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const agentParameter = z
  .string()
  .regex(
    /^AmazonCloudWatch-[A-Za-z0-9_.-]+$/,
    'must start with "AmazonCloudWatch-": CloudWatchAgentServerPolicy lets the agent read only those parameters',
  );

const metricName = z
  .string()
  .trim()
  .min(1)
  .max(255);

const arn = z.string().regex(/^arn:aws[a-z-]*:/, 'expected an ARN');

const schema = z
  .object({
    RESOURCE_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,24}$/, 'letters, digits, "-" or "_", at most 24 characters'),
    STATE_TABLE: z.string().min(3),
    AGENT_PROFILE_NAME: z.string().min(1),
    AGENT_DOCUMENT_NAME: z.string().min(3),
    LINUX_CONFIG_PARAMETER: agentParameter,
    WINDOWS_CONFIG_PARAMETER: agentParameter,
    METRIC_NAMESPACE: z.string().trim().min(1).max(255).default('CloudWatch/TestMetrics'),
    MEMORY_METRIC: metricName.default('MEMORY_USED'),
    DISK_METRIC: metricName.default('DISK_USED'),
    WINDOWS_DISK_FREE_METRIC: metricName
      .default('DISK_FREE')
      .refine(
        (name) => !/_USED$/i.test(name),
        'Windows reports free space: a metric carrying it must not be named *_USED',
      ),
    OPT_OUT_TAG: tagSetting('cw-autopilot:skip=true'),
    OPT_IN_TAG: tagSetting(''),
    MODIFY_EXISTING_ROLES: boolean.default(true),
    SSM_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(8),
    SSM_RETRY_DELAY_SECONDS: seconds(300, 60),
    CHECK_DELAY_SECONDS: seconds(300, 60),
    WINDOWS_GRACE_SECONDS: seconds(300),
    PROFILE_RETRY_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(5),
    PROFILE_RETRY_BASE_DELAY_MS: z.coerce.number().int().min(0).max(10_000).default(1000),
    PACING_SHARE: z.coerce.number().gt(0, 'a share of the account buckets greater than 0').max(1, 'a share of the account buckets, at most 1').default(0.5),
    PACING_CONCURRENCY: z.coerce
      .number()
      .int('how many onboard containers may run at once: a whole number (the reserved concurrency)')
      .min(1, 'how many onboard containers may run at once: at least 1 (the reserved concurrency)')
      .max(1000)
      .default(2),
    INSTALL_WINDOW_SECONDS: z.coerce
      .number({ error: 'seconds a small batch\'s installs wait to be sent together: a whole number, 0 (install right away) to 900' })
      .int('seconds a small batch\'s installs wait to be sent together: a whole number, 0 (install right away) to 900')
      .min(0, 'seconds a small batch\'s installs wait to be sent together: 0 (install right away) to 900')
      .max(900, 'at most 900 seconds: every small batch\'s install waits up to this long')
      .default(60),
    ONBOARD_FUNCTION_ARN: arn.refine((value) => accountOfArn(value) !== undefined, 'expected a function ARN with its 12-digit account (the hub account)'),
    CHECK_FUNCTION_ARN: arn,
    SCHEDULER_ROLE_ARN: arn,
    SCHEDULE_GROUP: z.string().min(1).default('default'),
    ALERT_TOPIC_ARN: arn,
    CHECK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
    CHECK_RETRY_DELAY_SECONDS: seconds(300, 60),
    METRIC_LOOKBACK_SECONDS: seconds(900, 120),
    ALARM_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, "-" or "_", at most 64 characters')
      .optional(),
    MEMORY_ALARM_THRESHOLD: z.coerce.number().min(1).max(100).default(90),
    DISK_ALARM_THRESHOLD: z.coerce.number().min(1).max(99).default(90),
    // The agent publishes standard-resolution (60 s) datapoints: shorter alarm periods would see gaps.
    ALARM_PERIOD_SECONDS: z.coerce.number().int().refine((n) => n >= 60 && n % 60 === 0, 'must be a multiple of 60').default(300),
    ALARM_EVALUATION_PERIODS: z.coerce.number().int().min(1).max(100).default(3),
    MISSING_DATA_ALARM_MINUTES: z.coerce.number().int().min(5).max(1440).default(15),
    GONE_RECORD_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(90),
    AWS_REGION: z.string().min(1).default('us-east-1'),
    ACCOUNTS: z
      .string()
      .default('')
      .transform((raw, context): AccountScope => {
        const text = raw.trim();
        if (!text) return { kind: 'hub' };
        if (text === 'organization') return { kind: 'organization' };
        const ids = [...new Set(text.split(',').map((id) => id.trim()).filter(Boolean))];
        const bad = ids.filter((id) => !/^\d{12}$/.test(id));
        if (bad.length) {
          context.addIssue({ code: 'custom', message: `'' (the hub account), 'organization', or 12-digit account ids separated by commas; not ${bad.join(', ')}` });
          return z.NEVER;
        }
        return { kind: 'list', ids };
      }),
    REGIONS: z
      .string()
      .default('')
      .transform((raw, context): string[] => {
        const regions = [...new Set(raw.split(',').map((region) => region.trim()).filter(Boolean))];
        const bad = regions.filter((region) => !/^[a-z]{2}(-[a-z]+)+-\d$/.test(region));
        if (bad.length) {
          context.addIssue({ code: 'custom', message: `region names separated by commas (eu-west-1,us-east-1); not ${bad.join(', ')}` });
          return z.NEVER;
        }
        return regions;
      }),
    MEMBER_ROLE_NAME: z
      .string()
      .regex(/^[\w+=,.@-]{1,48}$/, 'an IAM role name of at most 48 characters (the region is appended)')
      .optional(),
    AUDIT_PLACE_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(4),
    ORGANIZATION_ID: z
      .string()
      .default('')
      .refine((id) => id === '' || /^o-[a-z0-9]{10,32}$/.test(id), 'an organization id (o-abcd123456) or empty'),
  })
  .refine((env) => env.ALARM_PERIOD_SECONDS * env.ALARM_EVALUATION_PERIODS <= 86_400, {
    path: ['ALARM_EVALUATION_PERIODS'],
    message: 'ALARM_PERIOD_SECONDS x ALARM_EVALUATION_PERIODS must be at most one day (86400 s), a CloudWatch alarm limit',
  });

/** Which accounts the product covers: the hub's alone (default), the organization's, or a list. */
export type AccountScope = { kind: 'hub' } | { kind: 'organization' } | { kind: 'list'; ids: string[] };

/** The product's settings, parsed once per cold start from the function's environment. */
export interface Settings {
  resourcePrefix: string;
  stateTable: string;
  agentProfileName: string;
  agentDocumentName: string;
  configParameter: { linux: string; windows: string };
  metrics: {
    namespace: string;
    memory: string;
    disk: string;
    windowsDiskFree: string;
  };
  optOutTag: TagMatch | undefined;
  optInTag: TagMatch | undefined;
  modifyExistingRoles: boolean;
  ssmMaxAttempts: number;
  ssmRetryDelaySeconds: number;
  checkDelaySeconds: number;
  windowsGraceSeconds: number;
  profileRetry: { attempts: number; baseDelayMs: number };
  /**
   * Pacing of the batch's slow-refill calls (shared/pacing/pacer.ts): the product's share of each
   * account bucket, and how many onboard containers may run at once (the reserved concurrency).
   */
  pacing: { share: number; concurrency: number };
  /**
   * INSTALL_WINDOW_SECONDS (default 60): the instances of a queue batch that would make a command
   * smaller than SendCommand's 50 (of one OS) join an install window of this length instead of being installed at once, and
   * the window's run reads their presence, sends their commands and schedules their first looks
   * together (shared/onboarding/install-window.ts). 0: every batch installs right away.
   */
  installWindowSeconds: number;
  onboardFunctionArn: string;
  checkFunctionArn: string;
  schedulerRoleArn: string;
  scheduleGroup: string;
  /** The product's SNS topic: check alerts, recovery messages and the instance alarms' actions. */
  alertTopicArn: string;
  /** Checks per launch before a retryable diagnosis becomes an alert. */
  checkMaxAttempts: number;
  /** Base delay between checks; doubled after each attempt. */
  checkRetryDelaySeconds: number;
  /** How far back a datapoint still counts as "arriving": the agent interval plus ingestion delay. */
  metricLookbackSeconds: number;
  alarms: {
    /** Alarm names start with `${prefix}-${instanceId}-`. Defaults to RESOURCE_PREFIX. */
    prefix: string;
    memoryThreshold: number;
    /** Used %; Windows alarms on free % below `100 - diskThreshold`. */
    diskThreshold: number;
    periodSeconds: number;
    evaluationPeriods: number;
    /** Minutes without a datapoint before a missing-data alarm fires. */
    missingDataMinutes: number;
  };
  /**
   * Days a terminated instance's record is kept before DynamoDB's TTL deletes it (default 90:
   * as long as CloudTrail's event history keeps the instance's own API trail).
   */
  goneRecordRetentionDays: number;
  /** The hub's region (the function's own). */
  region: string;
  /** The hub's own account (from the function ARNs) and region: reached without AssumeRole. */
  hubPlace: Place;
  /** ACCOUNTS: which accounts are covered; the hub's alone unless set. */
  accounts: AccountScope;
  /** REGIONS: which regions are covered; the hub's alone unless set. */
  regions: string[];
  /**
   * MEMBER_ROLE_NAME: this function's execution role in member accounts, without the region
   * suffix (the member stack names it `<name>-<region>`); unset = the hub's place only.
   */
  memberRoleName: string | undefined;
  /** ORGANIZATION_ID, when set (the trust and bus policies are conditioned on it). */
  organizationId: string | undefined;
  /** AUDIT_PLACE_CONCURRENCY: (account, region) places the audit reads at once (default 4). */
  auditPlaceConcurrency: number;
}

/**
 * Parses the settings from an environment (by default `process.env`).
 *
 * @example
 * const settings = parseSettings(process.env); // throws InvalidSettingsError naming the bad setting
 */
export function parseSettings(env: Record<string, string | undefined> = process.env): Settings {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const name = issue.path.join('.');
      const got = env[name];
      return `${name}: ${issue.message} (got ${got === undefined ? 'nothing' : JSON.stringify(got)})`;
    });
    throw new InvalidSettingsError(`Invalid settings: ${problems.join('; ')}`);
  }
  const e = result.data;
  return {
    resourcePrefix: e.RESOURCE_PREFIX,
    stateTable: e.STATE_TABLE,
    agentProfileName: e.AGENT_PROFILE_NAME,
    agentDocumentName: e.AGENT_DOCUMENT_NAME,
    configParameter: { linux: e.LINUX_CONFIG_PARAMETER, windows: e.WINDOWS_CONFIG_PARAMETER },
    metrics: {
      namespace: e.METRIC_NAMESPACE,
      memory: e.MEMORY_METRIC,
      disk: e.DISK_METRIC,
      windowsDiskFree: e.WINDOWS_DISK_FREE_METRIC,
    },
    optOutTag: e.OPT_OUT_TAG,
    optInTag: e.OPT_IN_TAG,
    modifyExistingRoles: e.MODIFY_EXISTING_ROLES,
    ssmMaxAttempts: e.SSM_MAX_ATTEMPTS,
    ssmRetryDelaySeconds: e.SSM_RETRY_DELAY_SECONDS,
    checkDelaySeconds: e.CHECK_DELAY_SECONDS,
    windowsGraceSeconds: e.WINDOWS_GRACE_SECONDS,
    profileRetry: { attempts: e.PROFILE_RETRY_ATTEMPTS, baseDelayMs: e.PROFILE_RETRY_BASE_DELAY_MS },
    pacing: { share: e.PACING_SHARE, concurrency: e.PACING_CONCURRENCY },
    installWindowSeconds: e.INSTALL_WINDOW_SECONDS,
    onboardFunctionArn: e.ONBOARD_FUNCTION_ARN,
    checkFunctionArn: e.CHECK_FUNCTION_ARN,
    schedulerRoleArn: e.SCHEDULER_ROLE_ARN,
    scheduleGroup: e.SCHEDULE_GROUP,
    alertTopicArn: e.ALERT_TOPIC_ARN,
    checkMaxAttempts: e.CHECK_MAX_ATTEMPTS,
    checkRetryDelaySeconds: e.CHECK_RETRY_DELAY_SECONDS,
    metricLookbackSeconds: e.METRIC_LOOKBACK_SECONDS,
    alarms: {
      prefix: e.ALARM_PREFIX ?? e.RESOURCE_PREFIX,
      memoryThreshold: e.MEMORY_ALARM_THRESHOLD,
      diskThreshold: e.DISK_ALARM_THRESHOLD,
      periodSeconds: e.ALARM_PERIOD_SECONDS,
      evaluationPeriods: e.ALARM_EVALUATION_PERIODS,
      missingDataMinutes: e.MISSING_DATA_ALARM_MINUTES,
    },
    goneRecordRetentionDays: e.GONE_RECORD_RETENTION_DAYS,
    region: e.AWS_REGION,
    hubPlace: { account: accountOfArn(e.ONBOARD_FUNCTION_ARN) ?? '000000000000', region: e.AWS_REGION },
    accounts: e.ACCOUNTS,
    regions: e.REGIONS.length ? e.REGIONS : [e.AWS_REGION],
    memberRoleName: e.MEMBER_ROLE_NAME,
    organizationId: e.ORGANIZATION_ID || undefined,
    auditPlaceConcurrency: e.AUDIT_PLACE_CONCURRENCY,
  };
}
