import { awsErrorName, describeError } from '../shared/aws/errors.js';
import type { StackArguments } from './audit-arguments.js';
import { applyAwsFlags, regionOf, singleRegion } from './aws-flags.js';
import { CliError, UsageError, type CliIo, type CommandLine } from './command-line.js';
import { exitCodes } from './flags.js';
import { renderStatus } from './status-render.js';
import { callerAccount, cliClientFactory } from './cli-clients.js';

/** status: the state table has no record of the instance (exit code 3). */
export class NoRecordError extends CliError {
  override name = 'NoRecordError';
  constructor(message: string) {
    super(message, exitCodes.noRecord);
  }
}

/**
 * `cw-autopilot status <instance-id>`: reads the instance's record from the stack's state table
 * (named by `--table`, else by the onboard function's environment, as the audit reads it) and
 * prints it with its history.
 *
 * @throws NoRecordError when the table has no record of the instance.
 */
export async function showStatus(line: CommandLine<'status'>, io: CliIo): Promise<number> {
  const { flags } = line;
  const instanceId = line.operand;
  if (instanceId === undefined) throw new UsageError('which instance? cw-autopilot status <instance-id>');
  if (flags['settings-from-flags'] && flags['onboard-function'] !== undefined) {
    throw new UsageError('--onboard-function and --settings-from-flags contradict each other: read the table\'s name from a function, or from the flags');
  }
  const given = singleRegion('status', flags.region);
  applyAwsFlags(io, { region: given, profile: flags.profile, endpointUrl: flags['endpoint-url'] });
  // Imported here, after the AWS flags are in the environment: the shared clients read it once.
  const [{ lambda }, { readRecord }, { readStackSettings }] = await Promise.all([
    import('../shared/aws/clients.js'),
    import('../shared/state/instance-record.js'),
    import('./stack-settings.js'),
  ]);
  const region = await regionOf(given, lambda);

  let table = flags.table;
  if (table === undefined) {
    const stack: StackArguments = {
      stage: flags.stage,
      table: undefined,
      agentProfile: undefined,
      namespace: undefined,
      memoryMetric: undefined,
      diskMetric: undefined,
      windowsDiskMetric: undefined,
      optOutTag: undefined,
      optInTag: undefined,
      modifyExistingRoles: true,
      schedulerRoleArn: undefined,
      onboardFunction: flags['onboard-function'],
      settingsFromFlags: flags['settings-from-flags'],
      remediate: false,
      dryRun: false,
    };
    const settings = await readStackSettings(stack, region, lambda, 'the state table');
    if (settings.warning) io.stderr.write(`${settings.warning}\n`);
    table = settings.forAccount(undefined).stateTable;
  }

  let record;
  try {
    const clients = cliClientFactory({ account: await callerAccount(region), region }).clients();
    record = await readRecord(clients, table, instanceId);
  } catch (error) {
    if (awsErrorName(error) === 'ResourceNotFoundException') {
      throw new CliError(`no table ${table} in ${region} (${describeError(error)}): pass --stage, --region or --table naming the stack's state table`, exitCodes.failed, { cause: error });
    }
    throw error;
  }
  if (!record) {
    throw new NoRecordError(
      `no record of ${instanceId} in table ${table} (${region}): cw-autopilot has not seen it start since the stack was deployed (or it was terminated long ago); "cw-autopilot audit --instance-id ${instanceId}" shows its state`,
    );
  }
  io.stdout.write(renderStatus({ table, region, record }, flags.output));
  return exitCodes.ok;
}
