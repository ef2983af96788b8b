import { awsErrorName, describeError } from '../shared/aws/errors.js';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { readRecord } from '../shared/state/instance-record.js';
import { regionOfFunction, type StackArguments } from './audit-arguments.js';
import { awsConnection, singleRegion } from './aws-flags.js';
import { readStackSettings } from './stack-settings.js';
import { CliError, UsageError, type CliIo, type CommandLine } from './command-line.js';
import { exitCodes } from './flags.js';
import { renderStatus } from './status-render.js';
import { callerAccount, cliClientFactory, defaultRegion } from './cli-clients.js';

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
 * prints it with its history. The table is the hub's: in the region of `--onboard-function` when
 * it is an ARN, else in `--region`; the record is the one of the instance in `--account` (default:
 * the caller's) and `--region`.
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
  const connection = awsConnection({ profile: flags.profile, endpointUrl: flags['endpoint-url'] });
  const region = singleRegion('status', flags.region) ?? (await defaultRegion(connection));
  const hubRegion = regionOfFunction(flags['onboard-function']) ?? region;

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
    const lambda = new LambdaClient({ ...connection, region: hubRegion, maxAttempts: 5 });
    const settings = await readStackSettings(stack, hubRegion, lambda, 'the state table').finally(() => lambda.destroy());
    if (settings.warning) io.stderr.write(`${settings.warning}\n`);
    table = settings.forAccount(undefined).stateTable;
  }

  let record;
  try {
    const caller = await callerAccount(hubRegion, connection);
    // Only the hub's table is read: no role is assumed, whichever account the instance is in.
    const clients = cliClientFactory({ account: caller, region: hubRegion }, { connection }).clients({ account: flags.account ?? caller, region });
    record = await readRecord(clients, table, instanceId);
  } catch (error) {
    if (awsErrorName(error) === 'ResourceNotFoundException') {
      throw new CliError(`no table ${table} in ${hubRegion} (${describeError(error)}): pass --stage, --region or --table naming the stack's state table`, exitCodes.failed, { cause: error });
    }
    throw error;
  }
  if (!record) {
    throw new NoRecordError(
      `no record of ${instanceId}${flags.account ? ` of account ${flags.account}` : ''} in table ${table} (${hubRegion}): cw-autopilot has not seen it start since the stack was deployed (or it was terminated long ago); "cw-autopilot audit --instance-id ${instanceId}" shows its state`,
    );
  }
  io.stdout.write(renderStatus({ table, region, record }, flags.output));
  return exitCodes.ok;
}
