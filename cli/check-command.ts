import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import * as z from 'zod';
import { markdownCell, type ReportFormat } from '../shared/audit/audit-render.js';
import { awsErrorName, describeError } from '../shared/aws/errors.js';
import { regionOfFunction } from './audit-arguments.js';
import { awsConnection, singleRegion } from './aws-flags.js';
import { callerAccount, defaultRegion } from './cli-clients.js';
import { CliError, UsageError, type CliIo, type CommandLine } from './command-line.js';
import { exitCodes } from './flags.js';

/** The check function ran and failed (Lambda's FunctionError): its error is the message. */
export class CheckFunctionError extends CliError {
  override name = 'CheckFunctionError';
  constructor(message: string) {
    super(message, exitCodes.failed);
  }
}

/**
 * What the check function returns (shared/checking/checking.ts CheckResult), read leniently: a function of
 * another version may have more actions or fields, and they are printed as they are.
 */
const checkResult = z.looseObject({
  instanceId: z.string(),
  action: z.string(),
  status: z.string().nullish(),
  reason: z.string(),
  diagnosis: z.string().nullish(),
});
export type CheckFunctionResult = z.infer<typeof checkResult>;

/** Lambda's payload for a function that threw. */
const functionError = z.looseObject({ errorType: z.string().optional(), errorMessage: z.string().optional() });

/** A check that ran, and which function ran it. */
export interface CheckRun {
  functionName: string;
  region: string;
  result: CheckFunctionResult;
}

function statusCommand(run: CheckRun, stage: string): string {
  return ['cw-autopilot status', run.result.instanceId, stage === 'dev' ? '' : `--stage ${stage}`, `--region ${run.region}`].filter(Boolean).join(' ');
}

/** The check's outcome in one of the output formats. Pure. */
export function renderCheck(run: CheckRun, format: ReportFormat, stage: string): string {
  const { result } = run;
  if (format === 'json') return `${JSON.stringify({ function: run.functionName, region: run.region, result }, null, 2)}\n`;
  const rows: [string, string][] = [
    ['action', result.action],
    ['status', result.status ?? '-'],
    ['reason', result.reason],
    ['diagnosis', result.diagnosis ?? '-'],
  ];
  if (format === 'markdown') {
    return [
      `# Check of ${result.instanceId}`,
      '',
      `By ${markdownCell(run.functionName)} in ${run.region}.`,
      '',
      '| field | value |',
      '|---|---|',
      ...rows.map(([label, value]) => `| ${label} | ${markdownCell(value)} |`),
      '',
    ].join('\n');
  }
  return [
    `Check of ${result.instanceId} by ${run.functionName} (${run.region})`,
    ...rows.map(([label, value]) => `  ${label.padEnd(9)}  ${value}`),
    '',
    `The record and its history: ${statusCommand(run, stage)}`,
    '',
  ].join('\n');
}

function describeFunctionError(payload: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return payload.slice(0, 500) || 'no error message';
  }
  const error = functionError.safeParse(parsed);
  if (!error.success || (!error.data.errorType && !error.data.errorMessage)) return payload.slice(0, 500);
  return [error.data.errorType, error.data.errorMessage].filter(Boolean).join(': ');
}

/**
 * `cw-autopilot check <instance-id>`: invokes the stack's check function (RequestResponse) with
 * `{ "instanceId": "..." }`, its input for a check by hand (shared/input/triggers.ts), and prints what
 * the check did. For an instance of another account (`--account`), or of a region other than the
 * function's (`--check-function` an ARN of another region), the input also names its place:
 * `{ instanceId, account, region }`.
 *
 * @throws CheckFunctionError when the function failed (FunctionError), with its error.
 */
export async function checkNow(line: CommandLine<'check'>, io: CliIo): Promise<number> {
  const { flags } = line;
  const instanceId = line.operand;
  if (instanceId === undefined) throw new UsageError('which instance? cw-autopilot check <instance-id>');
  const connection = awsConnection({ profile: flags.profile, endpointUrl: flags['endpoint-url'] });
  const region = singleRegion('check', flags.region) ?? (await defaultRegion(connection));
  const functionName = flags['check-function'] ?? `cw-agent-autopilot-${flags.stage}-check`;
  const functionRegion = regionOfFunction(functionName) ?? region;
  // Neither account nor region: the hub's own place (the function's account and region).
  const place =
    flags.account !== undefined || functionRegion !== region
      ? { account: flags.account ?? (await callerAccount(functionRegion, connection)), region }
      : {};

  const lambda = new LambdaClient({ ...connection, region: functionRegion, maxAttempts: 5 });
  let response;
  try {
    response = await lambda.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'RequestResponse', Payload: JSON.stringify({ instanceId, ...place }) }));
  } catch (error) {
    if (awsErrorName(error) === 'ResourceNotFoundException') {
      throw new CliError(`no function ${functionName} in ${functionRegion} (${describeError(error)}): pass --stage <stage> or --check-function <name|arn>`, exitCodes.failed, { cause: error });
    }
    throw error;
  } finally {
    lambda.destroy();
  }
  const payload = response.Payload ? new TextDecoder().decode(response.Payload) : '';
  if (response.FunctionError) {
    throw new CheckFunctionError(`the check of ${instanceId} failed in function ${functionName} (${response.FunctionError}): ${describeFunctionError(payload)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    parsed = payload;
  }
  const result = checkResult.safeParse(parsed);
  if (!result.success) {
    throw new CliError(`function ${functionName} answered the check of ${instanceId} with something that is not a check result: ${payload.slice(0, 500)}`, exitCodes.failed);
  }
  io.stdout.write(renderCheck({ functionName, region: functionRegion, result: result.data }, flags.output, flags.stage));
  return exitCodes.ok;
}
