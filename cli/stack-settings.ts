import { InvalidSettingsError } from '../shared/errors.js';
import { GetFunctionConfigurationCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { describeError } from '../shared/aws/errors.js';
import { exitCodes } from './flags.js';
import { CliError } from './command-line.js';
import { parseSettings, type Settings } from '../shared/config/settings.js';
import { flagSettings, onboardFunctionOf, stackEnvironment, type StackArguments } from './audit-arguments.js';

/** The settings the CLI audits and remediates a region with, and where they came from. */
export interface StackSettings {
  /** The settings for instances of this account (only ARNs rebuilt from flags depend on it). */
  forAccount(accountId: string | undefined): Settings;
  /** For stderr, e.g. `settings: from function cw-agent-autopilot-prod-onboard`. */
  source: string;
  /** Set when the function could not be read and flags and defaults stand in (read-only or dry run). */
  warning?: string;
}

/**
 * `--remediate` could not read the stack's settings: it stops (exit 2) rather than onboard with
 * defaults the stack may not have (opt-in tag, modifyExistingRoles).
 */
export class StackSettingsUnavailableError extends CliError {
  override name = 'StackSettingsUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, exitCodes.usage, options);
  }
}

const flagNames: Record<string, string> = {
  STATE_TABLE: '--table',
  AGENT_PROFILE_NAME: '--agent-profile',
  SCHEDULER_ROLE_ARN: '--scheduler-role-arn',
  METRIC_NAMESPACE: '--namespace',
  MEMORY_METRIC: '--memory-metric',
  DISK_METRIC: '--disk-metric',
  WINDOWS_DISK_FREE_METRIC: '--windows-disk-metric',
  OPT_OUT_TAG: '--opt-out-tag',
  OPT_IN_TAG: '--opt-in-tag',
  MODIFY_EXISTING_ROLES: '--no-modify-existing-roles',
};

function fromFlags(args: StackArguments, region: string, source: string, warning?: string): StackSettings {
  const placeholder = parseSettings(stackEnvironment(args, region));
  return {
    forAccount: (accountId) => (accountId ? parseSettings(stackEnvironment(args, region, accountId)) : placeholder),
    source,
    warning,
  };
}

/**
 * Reads the settings the stack's functions run with: the environment of the onboard function of
 * this region (one `lambda:GetFunctionConfiguration`), with the naming flags the user gave on top.
 * With `--settings-from-flags`, or when the function cannot be read by a read-only audit or a dry
 * run, the flags and serverless.yml's defaults stand in (with a warning in the second case).
 *
 * `mayDiffer` says, in the warning, which of the settings matter to the caller.
 *
 * @throws StackSettingsUnavailableError when `--remediate` (not a dry run) cannot read the function.
 * @example
 * const { forAccount, source } = await readStackSettings(args, 'eu-west-1', lambda);
 */
export async function readStackSettings(
  args: StackArguments,
  region: string,
  lambda: Pick<LambdaClient, 'send'>,
  mayDiffer = 'the opt-in/opt-out tags and role settings',
): Promise<StackSettings> {
  if (args.settingsFromFlags) return fromFlags(args, region, 'settings: from flags and defaults (--settings-from-flags)');

  const functionName = onboardFunctionOf(args);
  const overrides = flagSettings(args);
  let deployed: Record<string, string>;
  try {
    const configuration = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: functionName }));
    deployed = configuration.Environment?.Variables ?? {};
  } catch (error) {
    const problem = describeError(error);
    if (args.remediate && !args.dryRun) {
      throw new StackSettingsUnavailableError(
        `cannot read the stack's settings from function ${functionName} in ${region} (${problem}), so --remediate will not run with defaults that may differ from the stack's (opt-in tag, modifyExistingRoles). ` +
          'Pass --onboard-function <name|arn> naming the stack\'s onboard function, or, knowingly, --settings-from-flags with the flags your stack was deployed with.',
        { cause: error },
      );
    }
    return fromFlags(
      args,
      region,
      'settings: from flags and defaults',
      `warning: cannot read the stack's settings from function ${functionName} in ${region} (${problem}): using flags and defaults, so ${mayDiffer} may differ from the stack's (pass --onboard-function, or --settings-from-flags to silence this)`,
    );
  }
  let settings: Settings;
  try {
    settings = parseSettings({ ...deployed, ...overrides, AWS_REGION: region });
  } catch (error) {
    if (!(error instanceof InvalidSettingsError)) throw error;
    throw new InvalidSettingsError(`the settings of function ${functionName} (with the flags given) are not ones this CLI reads: ${error.message}. Is the CLI the stack's version?`);
  }
  const overridden = Object.keys(overrides).map((name) => flagNames[name] ?? name);
  return {
    forAccount: () => settings,
    source: `settings: from function ${functionName}${overridden.length ? `, with ${overridden.join(', ')} from flags` : ''}`,
  };
}
