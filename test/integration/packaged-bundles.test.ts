// What Lambda runs is not the TypeScript the other suites import but the zips `osls package`
// builds: esbuild ES-module bundles, the AWS SDK inside, its schema modules rewritten by
// scripts/esbuild-plugins.cjs so unused shapes can be dropped. This suite packages the stack and
// drives the bundled handlers against moto, so a bundling mistake (a shape dropped that a call
// needs, an ESM/CJS interop break, a missing file) fails here and not in an AWS account.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { GetScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { metricsPublishedBy, renderedAgentConfigs } from '../../shared/agent-config.js';
import { readRecord } from '../../shared/state/instance-record.js';
import type { Settings } from '../../shared/config/settings.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { launchInstance, stateChangeEvent } from '../harness/fleet.js';
import { deployStack, stackEnvironment } from '../harness/stack.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();

const aws = useAws();
const repo = fileURLToPath(new URL('../../', import.meta.url));
const stackEnv = stackEnvironment();
const functions = ['onboard', 'check', 'offboard', 'audit'] as const;
type FunctionName = (typeof functions)[number];
type BundledHandler = (event: unknown, context: Context) => Promise<unknown>;

const context = { functionName: 'bundle-test', awsRequestId: 'req', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
const handlers = {} as Record<FunctionName, BundledHandler>;
let slowOnboard: BundledHandler;
let work: string;
let settings: Settings;

/**
 * Packages from a scratch service folder whose sources link to the repo's: serverless-esbuild builds
 * in `<service>/.esbuild`, so this run cannot collide with another `osls package` of the repo.
 */
async function packageBundles(): Promise<string> {
  const service = path.join(work, 'service');
  const output = path.join(work, 'package');
  mkdirSync(service);
  // osls wants its config file to be a real file in the service folder; the sources can be links.
  for (const file of ['serverless.yml', 'package.json']) copyFileSync(path.join(repo, file), path.join(service, file));
  for (const entry of ['tsconfig.json', 'functions', 'shared', 'agent-config', 'deploy', 'scripts', 'node_modules']) {
    symlinkSync(path.join(repo, entry), path.join(service, entry));
  }
  await promisify(execFile)(
    process.execPath,
    [path.join(repo, 'node_modules/osls/bin/serverless.js'), 'package', '--stage', 'test', '--region', 'us-east-1', '--package', output],
    { cwd: service, env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' }, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
  );
  return output;
}

/**
 * Unzips one function's deployment zip (python3 is there: moto needs it) and imports its handler;
 * `copy` names a second module instance of the same bundle (a cold start with other settings).
 */
async function loadBundle(output: string, name: FunctionName, copy?: string): Promise<BundledHandler> {
  const target = path.join(work, 'bundles', name);
  if (!copy) await promisify(execFile)('python3', ['-m', 'zipfile', '-e', path.join(output, `${name}.zip`), target]);
  const entry = path.join(target, 'functions', `${name}.mjs`);
  const module = (await import(`${pathToFileURL(entry).href}${copy ? `?${copy}` : ''}`)) as { handler?: BundledHandler };
  if (typeof module.handler !== 'function') throw new Error(`${entry} exports no handler (exports: ${Object.keys(module).join(', ')})`);
  return module.handler;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'cwap-bundles-'));
  const output = await packageBundles();
  expect(readdirSync(output).filter((file) => file.endsWith('.zip')).sort()).toEqual(functions.map((name) => `${name}.zip`).sort());
  // The bundles parse their settings at import, as on a cold start.
  Object.assign(process.env, stackEnv, { POWERTOOLS_METRICS_DISABLED: 'true' });
  for (const name of functions) handlers[name] = await loadBundle(output, name);
  // A container whose pacing allows one association at a time (a share of 0.01: one token, 0.05 a second).
  process.env.PACING_SHARE = '0.01';
  slowOnboard = await loadBundle(output, 'onboard', 'slow-pacing');
  process.env.PACING_SHARE = stackEnv.PACING_SHARE;
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

beforeEach(async () => {
  settings = (await deployStack()).settings;
});

describe('the packaged bundles, run against moto', () => {
  it('the onboard bundle gives a new Linux instance the agent profile, the install command and a check', async () => {
    const { instanceId } = await launchInstance({ os: 'linux', tags: { Name: 'bundled-1' } });
    aws.ssm.register(instanceId, { platformType: 'Linux' });

    const result = await handlers.onboard(stateChangeEvent(instanceId, 'running'), context);

    expect(result).toMatchObject({ instanceId, action: 'onboard', status: 'checking' });
    const record = await readRecord(clients, settings.stateTable, instanceId);
    expect(record).toMatchObject({ status: 'checking', os: 'linux', name: 'bundled-1', profilePath: 'associated-agent-profile' });
    const sent = aws.commands.sent();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      documentName: settings.agentDocumentName,
      instanceIds: [instanceId],
      parameters: { configParameter: [settings.configParameter.linux] },
    });
    const scheduler = new SchedulerClient(localClientConfig());
    const schedule = await scheduler.send(new GetScheduleCommand({ Name: `${settings.resourcePrefix}-check-${instanceId}-1`, GroupName: settings.scheduleGroup }));
    scheduler.destroy();
    expect(schedule.Target?.Arn).toBe(settings.checkFunctionArn);
    expect(JSON.parse(schedule.Target?.Input ?? '{}')).toEqual({ instanceId, attempt: 1 });
  });

  it('the check bundle finds the agent datapoints and records the instance healthy with its alarms', async () => {
    const { instanceId } = await launchInstance({ os: 'windows', tags: { Name: 'bundled-win' } });
    aws.ssm.register(instanceId, { platformType: 'Windows' });
    await handlers.onboard(stateChangeEvent(instanceId, 'running'), context);
    // moto compares datapoint timestamps to the second: publish after the launch's second.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const cloudwatch = new CloudWatchClient(localClientConfig());
    for (const metric of metricsPublishedBy(renderedAgentConfigs(settings.metrics).windows, 'windows')) {
      await cloudwatch.send(
        new PutMetricDataCommand({
          Namespace: metric.namespace,
          MetricData: [{ MetricName: metric.metricName, Dimensions: [{ Name: 'InstanceId', Value: instanceId }], Timestamp: new Date(Math.floor(Date.now() / 1000) * 1000 - 1000), Value: 37, Unit: 'Percent' }],
        }),
      );
    }
    cloudwatch.destroy();

    const result = await handlers.check({ instanceId, attempt: 1 }, context);

    expect(result).toMatchObject({ instanceId, action: 'healthy', status: 'healthy' });
    const record = await readRecord(clients, settings.stateTable, instanceId);
    expect(record?.status).toBe('healthy');
    expect(record?.alarmNames).toEqual(expect.arrayContaining([`${settings.alarms.prefix}-${instanceId}-DISK_FREE-low`]));
  });

  it('the offboard bundle records a terminated instance gone', async () => {
    const { instanceId } = await launchInstance({ os: 'linux' });
    aws.ssm.register(instanceId, { platformType: 'Linux' });
    await handlers.onboard(stateChangeEvent(instanceId, 'running'), context);

    await handlers.offboard(stateChangeEvent(instanceId, 'terminated'), context);

    expect((await readRecord(clients, settings.stateTable, instanceId))?.status).toBe('gone');
  });

  it('the onboard bundle gives a message the pacing deferred its own visibility timeout on the queue (ChangeMessageVisibilityBatch)', async () => {
    const sqs = new SQSClient(localClientConfig());
    const { QueueUrl: queueUrl = '' } = await sqs.send(new CreateQueueCommand({ QueueName: `${settings.resourcePrefix}-onboard`, Attributes: { VisibilityTimeout: '360' } }));
    const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn ?? '';
    const launched: string[] = [];
    for (const name of ['paced-1', 'paced-2']) {
      const { instanceId } = await launchInstance({ os: 'linux', tags: { Name: name } });
      aws.ssm.register(instanceId, { platformType: 'Linux' });
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(stateChangeEvent(instanceId, 'running')) }));
      launched.push(instanceId);
    }
    const { Messages: received = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 }));
    expect(received).toHaveLength(2);
    const Records = received.map((message) => ({ messageId: message.MessageId, receiptHandle: message.ReceiptHandle, body: message.Body, eventSource: 'aws:sqs', eventSourceARN: queueArn, attributes: { ApproximateReceiveCount: '1' } }));
    const calledAt = Date.now();

    const result = (await slowOnboard({ Records }, context)) as { batchItemFailures: { itemIdentifier: string }[] };

    // The second instance waits 20 s for its association token: more than a batch may wait.
    const deferred = received.find((message) => message.Body?.includes(launched[1] as string));
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: deferred?.MessageId }]);
    expect(aws.calls().filter((call) => call.operation === 'ChangeMessageVisibilityBatch')).toHaveLength(1);
    // moto's own record of the message: visible again in about 20 s, not after the queue's 360 s.
    const data = (await (await fetch(`${aws.motoUrl}/moto-api/data.json`)).json()) as { sqs?: { Message?: { body: string; visible_at: number }[] } };
    const held = (data.sqs?.Message ?? []).find((message) => message.body === deferred?.Body);
    expect(held, 'moto holds the deferred message').toBeDefined();
    const inSeconds = ((held?.visible_at ?? 0) - calledAt) / 1000;
    expect(inSeconds).toBeGreaterThanOrEqual(19);
    expect(inSeconds).toBeLessThan(60);
    sqs.destroy();
  });

  it.each(functions)('the %s bundle rejects malformed input by name, as the sources do', async (name) => {
    await expect(handlers[name]('not an event', context)).rejects.toMatchObject({ name: 'InvalidInputError' });
  });
});
