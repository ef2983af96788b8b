import { InvokeCommand, LambdaClient, type InvokeCommandOutput } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli-run.js';

// moto stores Lambda functions but cannot run ours: the invoke is answered by aws-sdk-client-mock,
// as the deployed check function would answer it.
const lambda = mockClient(LambdaClient);
afterEach(() => lambda.reset());

const instanceId = 'i-0123456789abcdef0';

/** A Lambda response payload, as the SDK hands it over. */
function payload(value: unknown): InvokeCommandOutput['Payload'] {
  const text = JSON.stringify(value);
  return Object.assign(new TextEncoder().encode(text), { transformToString: () => text });
}


const run = (...argv: string[]) => runCli(argv);

const healthy = { instanceId, action: 'healthy', status: 'healthy', reason: 'MEMORY_USED, DISK_USED arrive' };

describe('cw-autopilot check', () => {
  it("invokes the stage's check function (RequestResponse, {\"instanceId\"}) and prints what the check did", async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload(healthy) });

    const result = await run('check', instanceId, '--stage', 'prod', '--region', 'eu-west-1');

    expect(lambda.commandCalls(InvokeCommand).map((call) => call.args[0].input)).toEqual([
      { FunctionName: 'cw-agent-autopilot-prod-check', InvocationType: 'RequestResponse', Payload: `{"instanceId":"${instanceId}"}` },
    ]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      [
        `Check of ${instanceId} by cw-agent-autopilot-prod-check (eu-west-1)`,
        '  action     healthy',
        '  status     healthy',
        '  reason     MEMORY_USED, DISK_USED arrive',
        '  diagnosis  -',
        '',
        `The record and its history: cw-autopilot status ${instanceId} --stage prod --region eu-west-1`,
        '',
      ].join('\n'),
    );
  });

  it('--account checks an instance of another account: the hub\'s function gets its place', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload(healthy) });
    const result = await run('check', instanceId, '--region', 'eu-west-1', '--account', '111111111111');
    expect(result.code).toBe(0);
    expect(lambda.commandCalls(InvokeCommand).map((call) => JSON.parse(String(call.args[0].input.Payload)))).toEqual([
      { instanceId, account: '111111111111', region: 'eu-west-1' },
    ]);
  });

  it('a bad --account is a usage error naming it', async () => {
    const result = await run('check', instanceId, '--account', '42');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--account: not a 12-digit AWS account id');
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);
  });

  it('--check-function names the function; --output json prints the function, the region and its result', async () => {
    const retry = { instanceId, action: 'retry', status: 'checking', reason: 'no datapoints yet; check 2 scheduled', diagnosis: 'no-datapoints' };
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload(retry) });
    const arn = 'arn:aws:lambda:eu-west-1:210987654321:function:my-check';

    const result = await run('check', instanceId, '--check-function', arn, '--region', 'eu-west-1', '--output', 'json');

    expect(lambda.commandCalls(InvokeCommand)[0]?.args[0].input.FunctionName).toBe(arn);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ function: arn, region: 'eu-west-1', result: retry });
  });

  it('--output markdown prints the result as a table', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload({ ...healthy, reason: 'a | b' }) });
    const result = await run('check', instanceId, '--region', 'eu-west-1', '--format', 'markdown');
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n')).toEqual([
      `# Check of ${instanceId}`,
      '',
      'By cw-agent-autopilot-dev-check in eu-west-1.',
      '',
      '| field | value |',
      '|---|---|',
      '| action | healthy |',
      '| status | healthy |',
      '| reason | a \\| b |',
      '| diagnosis | - |',
      '',
    ]);
  });

  it('a function that failed (FunctionError): exit 1 and one line with its error type and message, nothing on stdout', async () => {
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: payload({ errorType: 'AlertNotSentError', errorMessage: `${instanceId}: alert no-datapoints not sent: SNS down`, trace: ['at publish'] }),
    });

    const result = await run('check', instanceId, '--region', 'eu-west-1');

    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `cw-autopilot check: the check of ${instanceId} failed in function cw-agent-autopilot-dev-check (Unhandled): AlertNotSentError: ${instanceId}: alert no-datapoints not sent: SNS down\n`,
    );
  });

  it('an answer that is not a check result (another function?) is exit 1, quoting it', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload({ statusCode: 200, body: 'hello' }) });
    const result = await run('check', instanceId, '--region', 'eu-west-1');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `cw-autopilot check: function cw-agent-autopilot-dev-check answered the check of ${instanceId} with something that is not a check result: {"statusCode":200,"body":"hello"}\n`,
    );
  });

  it('an AWS error on the invoke is exit 1 naming it', async () => {
    lambda.on(InvokeCommand).rejects(Object.assign(new Error('User is not authorized to perform: lambda:InvokeFunction'), { name: 'AccessDeniedException' }));
    const result = await run('check', instanceId, '--region', 'eu-west-1');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('cw-autopilot check failed: AccessDeniedException: User is not authorized to perform: lambda:InvokeFunction\n');
  });
});
