// One launch, followed through the logs: the real onboard, check and offboard handlers against moto
// write one result line per invocation, every line carrying the instance id and the launch id, so
// the README's Logs Insights query (filter launchId = ...) shows the whole path of a launch.
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { GetScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { metricsPublishedBy, renderedAgentConfigs } from '../../shared/agent-config.js';
import { launchIdOf } from '../../shared/observability/logger.js';
import type { Settings } from '../../shared/config/settings.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { launchInstance, stateChangeEvent } from '../harness/fleet.js';
import { deployStack, stackEnvironment } from '../harness/stack.js';

// The level the functions run with on Lambda (the stack sets POWERTOOLS_LOG_LEVEL=INFO), from the
// start: Powertools resets the level to the environment's at each invocation after the first.
vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
});

const aws = useAws();
const stackEnv = stackEnvironment();
Object.assign(process.env, stackEnv, { POWERTOOLS_METRICS_DISABLED: 'true' });

type Handler = (event: unknown, context: Context) => Promise<Record<string, unknown>>;
let onboard: Handler;
let check: Handler;
let offboard: Handler;
let settings: Settings;

const context = (functionName: string, requestId: string) =>
  ({ functionName, awsRequestId: requestId, invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`, getRemainingTimeInMillis: () => 60_000 }) as unknown as Context;

// One spy for the whole file: Node's Console (which the logger writes through) keeps the stream's
// write function it first saw, so a spy installed later would see nothing.
// Errors go to stderr, the rest to stdout, as on Lambda.
const written: string[] = [];
const capture = (chunk: string | Uint8Array) => {
  written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
  return true;
};
const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(capture);

/** The JSON lines the product's logger writes while `run` runs (its errors are left to the assertions). */
async function logLinesOf(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const from = written.length;
  await run().catch(() => undefined);
  return written
    .slice(from)
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.service === 'cw-agent-autopilot');
}

beforeAll(async () => {
  onboard = (await import('../../functions/onboard.js')).handler as unknown as Handler;
  check = (await import('../../functions/check.js')).handler as unknown as Handler;
  offboard = (await import('../../functions/offboard.js')).handler as unknown as Handler;
});

beforeEach(async () => {
  settings = (await deployStack()).settings;
});

afterAll(() => {
  stdout.mockRestore();
  stderr.mockRestore();
});

describe('the logs of one launch', () => {
  it('onboard, its scheduled check and offboard each log one result; every line names the instance and the launch', async () => {
    const { instanceId } = await launchInstance({ os: 'linux', tags: { Name: 'web-1' } });
    aws.ssm.register(instanceId, { platformType: 'Linux' });

    const onboarding = await logLinesOf(() => onboard(stateChangeEvent(instanceId, 'running'), context('cwap-onboard', 'req-onboard')));
    const results = onboarding.filter((line) => line.message === 'invocation result');
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ level: 'INFO', instanceId, function_request_id: 'req-onboard', result: { action: 'onboard', status: 'checking' } });
    const launchId = results[0]?.launchId;
    expect(launchId).toMatch(new RegExp(`^${instanceId}@\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`));
    for (const line of onboarding) expect(line, String(line.message)).toMatchObject({ instanceId, launchId });

    // The agent publishes; the check the schedule runs has the same launch id.
    const at = new Date(Math.floor(Date.now() / 1000) * 1000 - 1000);
    const cloudwatch = new CloudWatchClient(localClientConfig());
    for (const metric of metricsPublishedBy(renderedAgentConfigs(settings.metrics).linux, 'linux')) {
      await cloudwatch.send(
        new PutMetricDataCommand({
          Namespace: metric.namespace,
          MetricData: [{ MetricName: metric.metricName, Dimensions: [{ Name: 'InstanceId', Value: instanceId }], Timestamp: at, Value: 40, Unit: 'Percent' }],
        }),
      );
    }
    cloudwatch.destroy();
    const scheduler = new SchedulerClient(localClientConfig());
    const schedule = await scheduler.send(new GetScheduleCommand({ Name: `${stackEnv.RESOURCE_PREFIX}-check-${instanceId}-1`, GroupName: settings.scheduleGroup }));
    scheduler.destroy();
    const checking = await logLinesOf(() => check(JSON.parse(schedule.Target?.Input ?? '{}'), context('cwap-check', 'req-check')));
    expect(checking.filter((line) => line.message === 'invocation result')).toEqual([
      expect.objectContaining({ instanceId, launchId, function_request_id: 'req-check', result: expect.objectContaining({ action: 'healthy' }) }),
    ]);
    for (const line of checking) expect(line, String(line.message)).toMatchObject({ instanceId, launchId });

    const offboarding = await logLinesOf(() => offboard(stateChangeEvent(instanceId, 'terminated'), context('cwap-offboard', 'req-offboard')));
    expect(offboarding.filter((line) => line.message === 'invocation result')).toEqual([
      expect.objectContaining({ instanceId, launchId, result: expect.objectContaining({ action: 'cleaned', status: 'gone' }) }),
    ]);
  });

  it('a failed invocation logs its error once, and the next invocation does not inherit the instance keys', async () => {
    const failing = await logLinesOf(() => check({ instanceId: 'i-0123456789abcdef0', attempt: 1, typo: true }, context('cwap-check', 'req-bad')));
    expect(failing.filter((line) => line.message === 'invocation failed')).toEqual([
      expect.objectContaining({ level: 'ERROR', error: expect.objectContaining({ message: expect.stringContaining('typo') }) }),
    ]);
    expect(failing.filter((line) => line.message === 'invocation result')).toEqual([]);

    const { instanceId } = await launchInstance({ os: 'linux' });
    await logLinesOf(() => check({ instanceId }, context('cwap-check', 'req-1')));
    const next = await logLinesOf(() => check({ instanceId: 'i-0fedcba9876543210' }, context('cwap-check', 'req-2')));
    const result = next.find((line) => line.message === 'invocation result');
    expect(result).toMatchObject({ instanceId: 'i-0fedcba9876543210', function_request_id: 'req-2' });
    expect(result?.launchId).toBeUndefined();
  });

  it('builds the launch id from the instance id and its EC2 launch time, to the second', () => {
    expect(launchIdOf('i-0123456789abcdef0', '2026-12-01T19:47:00.123Z')).toBe('i-0123456789abcdef0@2026-12-01T19:47:00Z');
    expect(launchIdOf('i-0123456789abcdef0', undefined)).toBeUndefined();
    expect(launchIdOf('i-0123456789abcdef0', 'not a time')).toBeUndefined();
  });
});
