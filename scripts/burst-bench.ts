// The burst section of `npm run bench`: a fleet launched at once, its running events delivered to
// the real onboard handler in SQS batches as the event source mapping would, then each instance's
// first check through the real check handler; every AWS call answered by an in-process fake
// (aws-sdk-client-mock) and charged to the token buckets of test/simulator/api-buckets.ts.
//
// Time. The fake keeps a simulated clock per Lambda invocation (AsyncLocalStorage): an invocation
// starts at the simulated time its trigger fires (an SQS batch: when the event source mapping
// closes it; a check: the time its schedule names) and advances by the wall time it takes (each
// fake call waits `latencyMs`, like a round trip). The buckets refill on that clock. The product
// itself reads the wall clock (`new Date()`); the delays it asks for are taken from its requests
// (a CreateSchedule `at(...)` minus the wall time of the invocation's start), so the simulated
// time of a check is "the batch's delivery + the delay the product scheduled".
//
// Throttling. aws-sdk-client-mock replaces `send`, so the SDK's retry middleware never runs: the
// fake plays it, as the standard retry strategy does (3 attempts, full-jitter backoff from 100 ms
// for throttling errors). Every empty-bucket answer counts as a throttle seen; one that is still
// throttled after the third attempt reaches the product and counts as surfaced only if the
// handler's result reports a failure (or the invocation throws).
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import {
  AssociateIamInstanceProfileCommand,
  DescribeIamInstanceProfileAssociationsCommand,
  DescribeInstancesCommand,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { AttachRolePolicyCommand, GetInstanceProfileCommand, IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { CloudWatchClient, GetMetricDataCommand, PutMetricAlarmCommand, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import { SNSClient, PublishCommand } from '@aws-sdk/client-sns';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { apiBuckets } from '../test/simulator/api-buckets.js';

/** The figures of one burst, as the bench's JSON line carries them (plus what the table prints). */
export interface BurstResult {
  instances: number;
  callsPerInstance: Record<string, number>;
  throttlesSeen: number;
  throttlesSurfaced: number;
  peakBucketShare: Record<string, number>;
  launchToVerifiedSeconds: { p50: number; max: number };
  firstDatapointToHealthySeconds: { p50: number; max: number };
  lambdaInvocations: { onboardBatches: number; checks: number };
  withoutProfile: number;
  /** Checks per instance in the first check round (each instance's first check): GetMetricData over them. */
  getMetricDataPerCheck: number;
  unverified: number;
  wallMs: number;
}

interface BurstInstance {
  instanceId: string;
  os: 'linux' | 'windows';
  /** Profile at launch: none for most, a workload's for some. */
  profileName: string | undefined;
  /** Simulated launch, ms from the burst's start. */
  launchAt: number;
  /** Simulated time its agent first publishes (H2: 50-90 s Linux, 120-240 s Windows after SendCommand). */
  firstDatapointAt?: number;
  verifiedAt?: number;
}

const agentPolicies = ['CloudWatchAgentServerPolicy', 'AmazonSSMManagedInstanceCore'];

/**
 * Runs one burst of `size` launches within 60 s against the handlers.
 * `env` is the product's environment (already in process.env when the handlers are imported).
 */
export async function runBurst(size: number, latencyMs: number): Promise<BurstResult> {
  const started = performance.now();
  const clock = new AsyncLocalStorage<{ sim: number }>();
  const storeOf = () => {
    const store = clock.getStore();
    if (!store) throw new Error('an AWS call outside a simulated invocation');
    return store;
  };
  /** Simulated ms of the current invocation. */
  const simNow = () => storeOf().sim;
  const buckets = apiBuckets({ now: simNow, placeOf: () => ({ account: '123456789012', region: 'us-east-1' }) });
  const calls: Record<string, number> = {};
  let throttlesSeen = 0;

  // The fleet: 1 in 5 Windows; 1 in 10 with a workload profile (every other one lacking the agent policy); the rest none.
  const instances: BurstInstance[] = [];
  for (let i = 0; i < size; i++) {
    instances.push({
      instanceId: `i-${(0x20000000000 + i).toString(16).padStart(17, '0')}`,
      os: i % 5 === 0 ? 'windows' : 'linux',
      profileName: i % 10 === 3 ? `workload-${i % 20 === 3 ? 0 : 1}` : undefined,
      launchAt: Math.floor((i * 60_000) / size),
    });
  }
  const byId = new Map(instances.map((instance) => [instance.instanceId, instance]));
  const profiles = new Map([['cwap-bench-agent', 'cwap-bench-agent'], ['workload-0', 'workload-0-role'], ['workload-1', 'workload-1-role']]);
  const rolePolicies = new Map([['cwap-bench-agent', [...agentPolicies]], ['workload-0-role', [...agentPolicies]], ['workload-1-role', [agentPolicies[1] as string]]]);
  const arnOf = (name: string) => `arn:aws:iam::123456789012:instance-profile/${name}`;
  const wallLaunch = new Date(Date.now() - 60_000);
  const commands = new Map<string, string[]>();
  /** Schedules the product asked for: name -> { at (wall ms), input, asked (simulated ms) }. */
  const schedules: { at: number; input: string; wallAsked: number; simAsked: number }[] = [];
  const table = new Map<string, Record<string, unknown>>();

  /** One call of `api` on bucket `service:api`, with the SDK's retries on throttling. */
  const call = async (service: string, api: string, filtered = true) => {
    calls[api] = (calls[api] ?? 0) + 1;
    for (let attempt = 1; ; attempt++) {
      storeOf().sim += latencyMs;
      await new Promise((resolve) => setImmediate(resolve));
      const taken = buckets.take({ service, operation: api, body: filtered ? 'Filter.1.Name=instance-id' : '' });
      if (!taken || taken.ok) return;
      throttlesSeen += 1;
      if (attempt === 3) throw Object.assign(new Error(`Rate exceeded (${api})`), { name: service === 'ec2' ? 'RequestLimitExceeded' : 'ThrottlingException' });
      storeOf().sim += Math.random() * 100 * 2 ** attempt;
    }
  };

  const ec2 = mockClient(EC2Client);
  ec2.on(DescribeInstancesCommand).callsFake(async (input) => {
    await call('ec2', 'DescribeInstances', Boolean(input.Filters?.length || input.MaxResults));
    const ids = input.InstanceIds ?? input.Filters?.find((filter: { Name?: string }) => filter.Name === 'instance-id')?.Values ?? [];
    const found = ids.flatMap((id: string) => (byId.has(id) ? [byId.get(id) as BurstInstance] : []));
    return {
      Reservations: [{
        OwnerId: '123456789012',
        Instances: found.map((instance: BurstInstance): Instance => ({
          InstanceId: instance.instanceId,
          State: { Name: 'running', Code: 16 },
          Platform: instance.os === 'windows' ? ('windows' as Instance['Platform']) : undefined,
          PlatformDetails: instance.os === 'windows' ? 'Windows' : 'Linux/UNIX',
          Placement: { AvailabilityZone: 'us-east-1a' },
          LaunchTime: wallLaunch,
          Tags: [{ Key: 'Name', Value: instance.instanceId }],
          IamInstanceProfile: instance.profileName ? { Arn: arnOf(instance.profileName) } : undefined,
        })),
      }],
    };
  });
  ec2.on(AssociateIamInstanceProfileCommand).callsFake(async (input) => {
    await call('ec2', 'AssociateIamInstanceProfile');
    const instance = byId.get(input.InstanceId ?? '') as BurstInstance;
    if (instance.profileName) throw Object.assign(new Error('There is an existing association'), { name: 'IncorrectState' });
    instance.profileName = input.IamInstanceProfile?.Name;
    return { IamInstanceProfileAssociation: { InstanceId: instance.instanceId, State: 'associating', IamInstanceProfile: { Arn: arnOf(instance.profileName ?? '') } } };
  });
  ec2.on(DescribeIamInstanceProfileAssociationsCommand).callsFake(async (input) => {
    await call('ec2', 'DescribeIamInstanceProfileAssociations');
    const id = input.Filters?.find((filter: { Name?: string }) => filter.Name === 'instance-id')?.Values?.[0] ?? '';
    const name = byId.get(id)?.profileName;
    return { IamInstanceProfileAssociations: name ? [{ InstanceId: id, State: 'associated', IamInstanceProfile: { Arn: arnOf(name) } }] : [] };
  });

  const iam = mockClient(IAMClient);
  iam.on(GetInstanceProfileCommand).callsFake(async (input) => {
    await call('iam', 'GetInstanceProfile');
    const role = profiles.get(input.InstanceProfileName ?? '');
    if (!role) throw Object.assign(new Error('not found'), { name: 'NoSuchEntity' });
    return { InstanceProfile: { InstanceProfileName: input.InstanceProfileName, Roles: [{ RoleName: role }] } };
  });
  iam.on(ListAttachedRolePoliciesCommand).callsFake(async (input) => {
    await call('iam', 'ListAttachedRolePolicies');
    return { AttachedPolicies: (rolePolicies.get(input.RoleName ?? '') ?? []).map((name) => ({ PolicyName: name, PolicyArn: `arn:aws:iam::aws:policy/${name}` })), IsTruncated: false };
  });
  iam.on(AttachRolePolicyCommand).callsFake(async (input) => {
    await call('iam', 'AttachRolePolicy');
    const name = String(input.PolicyArn).split('/').at(-1) as string;
    const attached = rolePolicies.get(input.RoleName ?? '') ?? [];
    if (!attached.includes(name)) attached.push(name);
    return {};
  });

  const ssm = mockClient(SSMClient);
  ssm.on(DescribeInstanceInformationCommand).callsFake(async (input) => {
    await call('ssm', 'DescribeInstanceInformation');
    const ids = input.Filters?.find((filter: { Key?: string }) => filter.Key === 'InstanceIds')?.Values ?? [];
    if (ids.length > 50) throw Object.assign(new Error('InstanceIds: at most 50'), { name: 'ValidationException' });
    return {
      InstanceInformationList: ids.flatMap((id: string) => {
        const instance = byId.get(id);
        return instance ? [{ InstanceId: id, PingStatus: 'Online' as const, PlatformType: instance.os === 'windows' ? ('Windows' as const) : ('Linux' as const), AgentVersion: '3.3.1142.0', LastPingDateTime: new Date() }] : [];
      }),
    };
  });
  ssm.on(SendCommandCommand).callsFake(async (input) => {
    await call('ssm', 'SendCommand');
    const ids = input.InstanceIds ?? [];
    if (ids.length > 50) throw Object.assign(new Error('InstanceIds: at most 50'), { name: 'ValidationException' });
    const sentAt = simNow();
    for (const id of ids) {
      const instance = byId.get(id) as BurstInstance;
      // Deterministic within H2's ranges (test/simulator/README.md): Linux 50-90 s, Windows 120-240 s.
      const n = Number.parseInt(id.slice(-4), 16);
      instance.firstDatapointAt ??= sentAt + (instance.os === 'windows' ? 120 + (n % 121) : 50 + (n % 41)) * 1000;
    }
    const commandId = `cmd-${commands.size}`;
    commands.set(commandId, ids);
    return { Command: { CommandId: commandId, InstanceIds: ids } };
  });
  ssm.on(GetCommandInvocationCommand).callsFake(async () => {
    await call('ssm', 'GetCommandInvocation');
    return { Status: 'Success', StatusDetails: 'Success', ResponseCode: 0 };
  });

  const scheduler = mockClient(SchedulerClient);
  scheduler.on(CreateScheduleCommand).callsFake(async (input) => {
    await call('scheduler', 'CreateSchedule');
    const at = Date.parse(`${/^at\((.*)\)$/.exec(input.ScheduleExpression ?? '')?.[1]}Z`);
    schedules.push({ at, input: input.Target?.Input ?? '{}', wallAsked: Date.now(), simAsked: simNow() });
    return { ScheduleArn: `arn:aws:scheduler:us-east-1:123456789012:schedule/${input.GroupName}/${input.Name}` };
  });

  const cloudwatch = mockClient(CloudWatchClient);
  cloudwatch.on(GetMetricDataCommand).callsFake(async (input) => {
    await call('monitoring', 'GetMetricData');
    const queries = input.MetricDataQueries ?? [];
    if (queries.length > 500) throw Object.assign(new Error('MetricDataQueries: at most 500'), { name: 'ValidationException' });
    const now = simNow();
    const end = input.EndTime ? new Date(input.EndTime).getTime() : Date.now();
    return {
      MetricDataResults: queries.map((query: MetricDataQuery) => {
        const id = query.MetricStat?.Metric?.Dimensions?.find((dimension) => dimension.Name === 'InstanceId')?.Value ?? '';
        const first = byId.get(id)?.firstDatapointAt;
        const at = first !== undefined && first <= now ? [new Date(end - 30_000)] : [];
        return { Id: query.Id, StatusCode: 'Complete' as const, Timestamps: at, Values: at.map(() => 10) };
      }),
    };
  });
  cloudwatch.on(PutMetricAlarmCommand).callsFake(async () => {
    await call('monitoring', 'PutMetricAlarm');
    return {};
  });
  const sns = mockClient(SNSClient);
  sns.on(PublishCommand).callsFake(async () => {
    await call('sns', 'Publish');
    return { MessageId: 'm' };
  });

  // The state table, keeping DynamoDB's conditional-write rule as test/onboarding/onboard-harness.ts's StateTable does.
  const dynamodb = mockClient(DynamoDBDocumentClient);
  dynamodb.on(GetCommand).callsFake(async (input) => {
    await call('dynamodb', 'GetItem');
    const item = table.get(String(input.Key?.recordKey));
    return item ? { Item: structuredClone(item) } : {};
  });
  dynamodb.on(BatchGetCommand).callsFake(async (input) => {
    await call('dynamodb', 'BatchGetItem');
    const responses: Record<string, unknown[]> = {};
    for (const [name, request] of Object.entries(input.RequestItems ?? {}) as [string, { Keys?: Record<string, unknown>[] }][]) {
      if ((request.Keys?.length ?? 0) > 100) throw Object.assign(new Error('Too many items requested for the BatchGetItem call'), { name: 'ValidationException' });
      responses[name] = (request.Keys ?? []).flatMap((key: Record<string, unknown>) => {
        const item = table.get(String(key.recordKey));
        return item ? [structuredClone(item)] : [];
      });
    }
    return { Responses: responses, UnprocessedKeys: {} };
  });
  dynamodb.on(PutCommand).callsFake(async (input) => {
    await call('dynamodb', 'PutItem');
    const item = JSON.parse(JSON.stringify(input.Item)) as Record<string, unknown>;
    const current = table.get(String(item.recordKey));
    const holds =
      input.ConditionExpression === 'attribute_not_exists(recordKey)'
        ? current === undefined
        : input.ConditionExpression === 'version = :read'
          ? current?.version === input.ExpressionAttributeValues?.[':read']
          : true;
    if (!holds) throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    table.set(String(item.recordKey), item);
    return {};
  });

  const mocks = [ec2, iam, ssm, scheduler, cloudwatch, sns, dynamodb];
  const quiet = muteHandlerLogs();
  try {
    const { handler: onboard } = await import('../functions/onboard.js');
    const { handler: check } = await import('../functions/check.js');
    const context = (name: string, n: number) =>
      ({ functionName: `cwap-bench-${name}`, functionVersion: '$LATEST', invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:cwap-bench-${name}`, memoryLimitInMB: '256', awsRequestId: `${name}-${n}`, logGroupName: '/aws/lambda/x', logStreamName: 'x', getRemainingTimeInMillis: () => 60_000 }) as never;
    let surfaced = 0;

    // The event source mapping: a batch closes when it holds `batchSize` messages or `window` after its first one.
    const { batchSize, windowSeconds } = onboardQueueSettings();
    const batches: { deliverAt: number; members: BurstInstance[] }[] = [];
    for (const instance of instances) {
      const open = batches.at(-1);
      if (open && open.members.length < batchSize && instance.launchAt <= (open.members[0] as BurstInstance).launchAt + windowSeconds * 1000) {
        open.members.push(instance);
        open.deliverAt = open.members.length === batchSize ? instance.launchAt : (open.members[0] as BurstInstance).launchAt + windowSeconds * 1000;
      } else batches.push({ deliverAt: instance.launchAt + windowSeconds * 1000, members: [instance] });
    }
    // In delivery order, one after the other: each on its own simulated clock, so batches whose
    // invocations would overlap in time are charged to the buckets slightly out of order.
    batches.sort((a, b) => a.deliverAt - b.deliverAt);
    let invocation = 0;
    await mapInOrder(batches, 1, async (batch) => {
      {
        const event = {
          Records: batch.members.map((instance) => ({
            messageId: `msg-${instance.instanceId}`,
            eventSource: 'aws:sqs',
            body: JSON.stringify({ version: '0', id: `ev-${instance.instanceId}`, 'detail-type': 'EC2 Instance State-change Notification', source: 'aws.ec2', account: '123456789012', time: wallLaunch.toISOString(), region: 'us-east-1', resources: [], detail: { 'instance-id': instance.instanceId, state: 'running' } }),
          })),
        };
        const result = await clock.run({ sim: batch.deliverAt }, () => onboard(event, context('onboard', invocation++))).catch((error: unknown) => {
          if (process.env.BURST_DEBUG) console.error(error);
          return { batchItemFailures: batch.members };
        });
        if (process.env.BURST_DEBUG) console.error(JSON.stringify(result).slice(0, 300));
        surfaced += (result as { batchItemFailures?: unknown[] }).batchItemFailures?.length ?? 0;
      }
    });
    const onboardBatches = batches.length;

    // The checks the product scheduled, each at the simulated time its schedule names, following
    // any next check a check schedules (up to 15 simulated minutes after the last launch).
    let checks = 0;
    let firstRound = -1;
    const callsBeforeChecks = calls.GetMetricData ?? 0;
    for (let done = 0; done < schedules.length; ) {
      const due = schedules.slice(done).sort((a, b) => simAtOf(a) - simAtOf(b));
      schedules.splice(done, due.length, ...due);
      const round = schedules.slice(done);
      done = schedules.length;
      if (firstRound < 0) firstRound = round.length;
      await mapInOrder(round, 1, async (schedule) => {
        const input = JSON.parse(schedule.input) as { instanceId: string; attempt?: number };
        const simStart = simAtOf(schedule);
        if (simStart > 60_000 + 15 * 60_000) return;
        checks += 1;
        try {
          const result = await clock.run({ sim: simStart }, () => check(input, context('check', checks)));
          const instance = byId.get(input.instanceId);
          if (instance && (result as { action: string }).action === 'healthy' && instance.verifiedAt === undefined) instance.verifiedAt = simStart;
        } catch (error) {
          if (process.env.BURST_DEBUG) console.error(error);
          surfaced += 1;
        }
      });
    }
    const getMetricDataFirstRound = (calls.GetMetricData ?? 0) - callsBeforeChecks;

    const perInstance: Record<string, number> = {};
    for (const [api, n] of Object.entries(calls).sort()) perInstance[api] = Math.round((n / size) * 1000) / 1000;
    const verified = instances.filter((instance) => instance.verifiedAt !== undefined);
    const shares: Record<string, number> = {};
    for (const [bucket, share] of Object.entries(buckets.peakBucketShare('10s'))) shares[bucket] = Math.round(share * 100) / 100;
    return {
      instances: size,
      callsPerInstance: perInstance,
      throttlesSeen,
      throttlesSurfaced: surfaced,
      peakBucketShare: shares,
      launchToVerifiedSeconds: percentiles(verified.map((instance) => ((instance.verifiedAt as number) - instance.launchAt) / 1000)),
      firstDatapointToHealthySeconds: percentiles(verified.map((instance) => ((instance.verifiedAt as number) - (instance.firstDatapointAt as number)) / 1000)),
      lambdaInvocations: { onboardBatches, checks },
      withoutProfile: instances.filter((_, i) => i % 10 !== 3).length,
      getMetricDataPerCheck: Math.round((getMetricDataFirstRound / Math.max(1, firstRound)) * 1000) / 1000,
      unverified: size - verified.length,
      wallMs: Math.round(performance.now() - started),
    };
  } finally {
    quiet.restore();
    for (const mock of mocks) mock.restore();
  }

  /** The simulated time a schedule fires: when it was asked for, plus the delay the product asked. */
  function simAtOf(schedule: { at: number; wallAsked: number; simAsked: number }): number {
    // at(...) has whole seconds: the delay is rounded the way the product wrote it.
    return schedule.simAsked + Math.max(0, schedule.at - schedule.wallAsked);
  }
}

/** The onboard queue's batch size and batching window, as serverless.yml gives them to the event source mapping. */
function onboardQueueSettings(): { batchSize: number; windowSeconds: number } {
  const yml = readFileSync(new URL('../serverless.yml', import.meta.url), 'utf8');
  const batchSize = Number(/onboardBatchSize:\s*(\d+)/.exec(yml)?.[1]);
  const windowSeconds = Number(/onboardBatchWindowSeconds:\s*(\d+)/.exec(yml)?.[1]);
  if (!batchSize || Number.isNaN(windowSeconds)) throw new Error('serverless.yml: onboardBatchSize / onboardBatchWindowSeconds not found');
  return { batchSize, windowSeconds };
}

function percentiles(values: number[]): { p50: number; max: number } {
  if (values.length === 0) return { p50: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: Math.round(sorted[Math.floor((sorted.length - 1) / 2)] as number), max: Math.round(sorted.at(-1) as number) };
}

/** Runs `work` over `items` with at most `limit` at once, starting them in the items' order. */
/**
 * Drops the handlers' own log lines (Powertools JSON lines, and the metrics library's "No application
 * metrics" notice) from stdout and stderr while a burst runs: thousands of invocations would bury the
 * figures. Their loggers were made at import, before the bench could set a level for them.
 */
function muteHandlerLogs(): { restore: () => void } {
  const streams = [process.stdout, process.stderr] as const;
  const originals = streams.map((stream) => stream.write.bind(stream));
  const isHandlerLog = (chunk: unknown) => {
    const text = typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString('utf8') : '';
    return text.startsWith('{"level":') || text.includes('No application metrics to publish');
  };
  streams.forEach((stream, index) => {
    const original = originals[index]!;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => (isHandlerLog(chunk) ? true : (original as (...args: unknown[]) => boolean)(chunk, ...rest))) as typeof stream.write;
  });
  return { restore: () => streams.forEach((stream, index) => (stream.write = originals[index] as typeof stream.write)) };
}

async function mapInOrder<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++] as T);
  }));
}
