// The burst section of `npm run bench`: a fleet launched within a minute, its running events sent
// to the onboard queue and read by the real onboard handler in batches, as the event source
// mapping would, then every schedule the product creates fired at its time into the real onboard
// or check handler, until every instance is verified. Every AWS call is answered by an in-process
// fake (aws-sdk-client-mock) and charged to the token buckets of test/simulator/api-buckets.ts.
//
// Time (scripts/burst-time.ts). One simulated clock for everything: a discrete-event simulation in
// which code takes no time and time moves only while everything in flight waits (a fake call's
// round trip of `latencyMs`, a pacer's wait, a batching window, a schedule). `Date` is that clock
// while a burst runs, so the product's `new Date()` is simulated time: a schedule for
// `at(now + 300 s)` fires 300 simulated seconds after the product's "now" (to its whole second, as
// `at()` has), a record's updatedAt means the same to the product as to the bench, and a healthy
// record's healthyAt is the simulated moment of the write. The product's pacer runs on it too
// (`replaceContainerPacers`, a `Pacer` with `clock` = the simulated clock; its waits are simulated
// waits). Calls of overlapping invocations reach the buckets in simulated-time order.
//
// Lambda. Each invocation runs in a container of its function: a free one, or a new one (a cold
// start, which takes no time here). A container keeps what a real one keeps across invocations:
// its pacers (one per account and region, the product's `containerPacing`) and its SDK clients'
// retry quotas. The context's getRemainingTimeInMillis counts down the function's timeout
// (serverless.yml) in simulated time; an invocation that ends past it counts as timed out (its
// writes are not undone: a real one would have been stopped). Scheduler invokes asynchronously:
// a failed invocation is retried 1 and then 2 minutes later (register I1), then dropped.
//
// The run ends when every instance is verified and the queue is empty, or 30 simulated minutes
// after the last launch (the target is 15: the rest shows how late the slowest one is). The
// figures are those of that moment; the invocations still in flight are then let finish, none
// starting, so that nothing is left behind when the next burst runs.
//
// The queue (scripts/burst-queue.ts): visibility timeout and redrive policy from serverless.yml,
// five pollers, or the mapping's maximum concurrency when lower (the `pollers` option), batch size and window from serverless.yml's params; a
// message in batchItemFailures comes back after its visibility timeout (or when
// ChangeMessageVisibility says), and after maxReceiveCount receives it goes to the dead-letter
// queue (`deadLettered`: a product failure).
//
// Throttling. aws-sdk-client-mock replaces `send`, so the SDK's retry middleware never runs: the
// fake plays it as the installed SDK's standard strategy does (@smithy/core, dist-cjs/submodules/
// retry/index.js: `maxAttempts` from the client's config, the product's 5; a throttled attempt
// waits random x min(1,000 ms x 2^retry, 20 s); a client's retry quota of 500 pays 5 per throttled
// retry and gets it back on success, 1 for a success at the first attempt). `throttlesSeen`
// counts every empty-bucket answer; `throttlesSurfaced` the throttling errors the SDK gave up on,
// which reach the product's code (each says "bench throttle #n", so the report can tell whether
// the product recorded it in a state record or an invocation failed with it).
//
// The fleet: 1 in 5 Windows, 1 in 10 with a workload's profile (every other one of those lacking
// the CloudWatch policy), launched evenly over 60 s; each running event reaches the queue 2-15 s
// after its launch (register G3). By default Systems Manager knows every instance as Online at its
// launch, so SSM registration = launch and `registrationToVerifiedSeconds` equals
// `launchToVerifiedSeconds`; with `registration: 'after-boot'` each instance registers 30-180 s
// after its launch (register C3, assumed there too): until then DescribeInstanceInformation leaves
// it out (C1) and SendCommand refuses it (D1), so the product's SSM waits run (scheduled onboard
// retries, routed by their target like the checks). An agent first publishes 50-90 s (Linux) or
// 120-240 s (Windows) after its SendCommand (register H2), then once a minute (H3), readable at
// once (H7).
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseDocument, type Tags } from 'yaml';
import {
  AssociateIamInstanceProfileCommand,
  DescribeIamInstanceProfileAssociationsCommand,
  DescribeInstancesCommand,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { AttachRolePolicyCommand, GetInstanceProfileCommand, IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { CreateScheduleCommand, DeleteScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { CloudWatchClient, DeleteAlarmsCommand, GetMetricDataCommand, PutMetricAlarmCommand, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import { SNSClient, PublishCommand } from '@aws-sdk/client-sns';
import { ChangeMessageVisibilityBatchCommand, ChangeMessageVisibilityCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { STSClient } from '@aws-sdk/client-sts';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { apiBuckets } from '../test/simulator/api-buckets.js';
import { FakeStateTable } from '../test/harness/fake-state-table.js';
import { Pacer, type BucketName, type Pace } from '../shared/pacing/pacer.js';
import { replaceContainerPacers } from '../shared/pacing/batch-pacing.js';
import { replaceInstallWindowMemory } from '../shared/onboarding/install-window.js';
import { placeLabel, type Place } from '../shared/aws/place.js';
import { parseSettings } from '../shared/config/settings.js';
import type { OnboardingRecord } from '../shared/state/instance-record.js';
import { SimulatedTime, seededRandom } from './burst-time.js';
import { QueueError, SimulatedQueue, type BatchAnswer } from './burst-queue.js';

/** p50 and max of a duration, in whole seconds (NaN when there is none). */
export interface Spread {
  p50: number;
  max: number;
}

/** The figures of one burst, as the bench's JSON line carries them (plus what the table prints). */
export interface BurstResult {
  instances: number;
  /** AWS calls per launched instance, by API (an SDK call with its retries is one call). */
  callsPerInstance: Record<string, number>;
  /** The same, made by the onboard function and by the check function. */
  callsPerInstanceByFunction: Record<FunctionName, Record<string, number>>;
  /** Empty-bucket answers (each one retried by the SDK, or surfaced). */
  throttlesSeen: number;
  throttlesSeenByApi: Record<string, number>;
  /** Throttling errors that reached the product after the SDK's attempts. */
  throttlesSurfaced: number;
  /** Of those: found in a state record (lastError or history), and failing an invocation. */
  throttlesSurfacedFate: { recorded: number; failedInvocation: number };
  /** Messages the onboard function returned whose record had no lastError: the pacing's deferrals. */
  pacingDeferrals: number;
  /** Messages returned with a lastError on their record (or of a failed batch). */
  failuresReturned: number;
  /** Messages moved to the dead-letter queue after maxReceiveCount receives. */
  deadLettered: number;
  /** Per bucket, the share of it the calls fit in: capacity and refill both scaled (api-buckets `fittedShare`). */
  peakBucketShare: Record<string, number>;
  /** Per bucket, the most calls in any 10 s over 10 s of refill: above 1 while a burst spends the capacity. */
  peakRateShare10s: Record<string, number>;
  launchToVerifiedSeconds: Spread;
  /** From SSM registration (the launch, unless `registration: 'after-boot'`). */
  registrationToVerifiedSeconds: Spread;
  /** From the agent's first publish to the healthy record's write, for the instances found healthy. */
  firstDatapointToHealthySeconds: Spread;
  /** Instances verified, by how; and how many within 15 minutes of their SSM registration. */
  verified: { healthy: number; alerted: number; within15Minutes: number };
  unverified: number;
  /** GetMetricData calls of check invocations over the instances in their inputs. */
  getMetricDataPerInstancePerCheckRound: { overall: number; firstRound: number };
  lambdaInvocations: {
    onboardBatches: number;
    onboardScheduled: number;
    checks: number;
    asyncRetries: number;
    /** Scheduled invocations that failed their 3 attempts (sent to the on-failure destination). */
    asyncDropped: number;
    failed: number;
    timedOut: number;
    coldStarts: Record<string, number>;
    peakConcurrency: Record<string, number>;
  };
  queue: { sent: number; receives: number; redeliveries: number; returned: number; deleted: number; failedBatches: number; visibilityChanges: number; visibilityChangeErrors: Record<string, number>; maxReceiveCount: number; stillQueued: number };
  schedules: { created: number; fired: number; conflicts: number; unrouted: number; pending: number; firedLate: number };
  /** Instances without a profile at launch, and how many of them got exactly one association. */
  associations: { withoutProfile: number; associatedOnce: number; otherwise: number };
  /** Instances sent the install command more than once; alerts published. */
  reinstalled: number;
  alertsPublished: number;
  /** Simulated minutes from the first launch to the end of the run. */
  simulatedMinutes: number;
  /**
   * Soundness of the simulation itself: AWS calls no fake answers, real timers started inside
   * invocations, invocations still unfinished after the drain (each should be 0 / empty).
   */
  simulation: { unmockedCalls: Record<string, number>; realWaits: number; abandonedInvocations: number; pollers: number; registration: Registration; latencyMs: number };
  wallMs: number;
}

interface BurstInstance {
  instanceId: string;
  os: 'linux' | 'windows';
  /** Profile at launch: none for most, a workload's for some. */
  profileName: string | undefined;
  hadProfile: boolean;
  /** Simulated launch, ms from the burst's start. */
  launchAt: number;
  /** When its running event reaches the queue. */
  eventAt: number;
  /** When its SSM agent registers (Online from then on). */
  registeredAt: number;
  /** When its agent first publishes (set by the first SendCommand naming it). */
  firstDatapointAt: number | undefined;
  associations: number;
  installs: number;
  verifiedAt: number | undefined;
  verifiedAs: 'healthy' | 'alerted' | undefined;
}

export type FunctionName = 'onboard' | 'check';

/** When instances register with Systems Manager: at their launch, or 30-180 s after it (register C3). */
export type Registration = 'at-launch' | 'after-boot';

/** Variants of the model, for seeing how much a figure depends on an assumption. */
export interface BurstOptions {
  /** Batches the event source mapping reads at once (default 5, Lambda's starting number). */
  pollers?: number;
  /** Default 'at-launch'. */
  registration?: Registration;
}

interface Container {
  id: number;
  busy: boolean;
  pacers: Map<string, Pacer>;
  retryQuotas: WeakMap<object, { capacity: number }>;
  /** The install window schedules this container created (shared/onboarding/install-window.ts). */
  windows: Map<string, number>;
}

interface Invocation {
  fn: FunctionName;
  id: number;
  container: Container;
  deadline: number;
  getMetricData: number;
}

/** What the bench needs of an aws-sdk-client-mock stub to give it a catch-all answer. */
interface MockedClient {
  onAnyCommand(): { callsFake(fake: (input: unknown) => never): unknown };
  resetHistory(): unknown;
  restore(): void;
}

/** The stack's queue, mapping and function settings, read from serverless.yml. */
interface StackFigures {
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
  batchSize: number;
  batchWindowSeconds: number;
  /** The mapping's ScalingConfig.MaximumConcurrency: at most this many pollers invoke at once. */
  maximumConcurrency: number;
  reservedConcurrency: number | undefined;
  timeoutSeconds: Record<FunctionName, number>;
}

const account = '123456789012';
const region = 'us-east-1';
const agentPolicies = ['CloudWatchAgentServerPolicy', 'AmazonSSMManagedInstanceCore'];
// The installed SDK's standard retry strategy (@smithy/core retry: Retry.throttlingDelay(),
// MAXIMUM_RETRY_DELAY, INITIAL_RETRY_TOKENS, Retry.throttlingCost()).
const throttlingDelayBaseMs = 1_000;
const maxRetryDelayMs = 20_000;
const initialRetryTokens = 500;
const throttlingRetryCost = 5;
/** Lambda's asynchronous retries (register I1): 1 minute, then 2 more. */
const asyncRetryDelaysMs = [60_000, 120_000];
/** Run on to this long after the last launch to see the slowest instance; the target is 15 minutes. */
const runOnMs = 30 * 60_000;
const targetMs = 15 * 60_000;
/** After the end, how long the invocations in flight may take to finish (a function's timeout is 60 s). */
const drainMs = 15 * 60_000;

/**
 * Runs one burst of `size` launches within 60 s against the real handlers, each fake call taking
 * `latencyMs` of simulated time. The product's environment must be in process.env before the
 * handlers are first imported (scripts/audit-bench.ts sets stackEnvironment('bench')).
 */
export async function runBurst(size: number, latencyMs: number, options: BurstOptions = {}): Promise<BurstResult> {
  const started = performance.now();
  const stack = stackFigures();
  const settings = parseSettings();
  // Lambda starts five pollers for a queue; with a maximum concurrency below that, at most that many invoke at once.
  const pollers = options.pollers ?? Math.min(5, stack.maximumConcurrency);
  const registration = options.registration ?? 'at-launch';
  // A whole minute, so CloudWatch's 60 s periods start on whole simulated minutes.
  const time = new SimulatedTime(Math.floor(Date.now() / 60_000) * 60_000);
  const random = seededRandom(size);
  const invocations = new AsyncLocalStorage<Invocation>();
  const current = (what: string) => {
    const invocation = invocations.getStore();
    if (!invocation) throw new Error(`${what} outside a simulated invocation`);
    return invocation;
  };
  const buckets = apiBuckets({ now: () => time.now(), placeOf: () => ({ account, region }) });
  const calls: Record<string, number> = {};
  const callsBy: Record<FunctionName, Record<string, number>> = { onboard: {}, check: {} };
  const throttlesSeenByApi: Record<string, number> = {};
  let throttlesSeen = 0;
  let throttlesSurfaced = 0;
  const throttlesRecorded = new Set<number>();
  const throttlesFailing = new Set<number>();
  const unmockedCalls: Record<string, number> = {};
  let realWaits = 0;

  // The fleet.
  const instances: BurstInstance[] = [];
  for (let i = 0; i < size; i++) {
    const instanceId = `i-${(0x20000000000 + i).toString(16).padStart(17, '0')}`;
    const launchAt = Math.floor((i * 60_000) / size);
    const n = Number.parseInt(instanceId.slice(-4), 16);
    const profileName = i % 10 === 3 ? `workload-${i % 20 === 3 ? 0 : 1}` : undefined;
    instances.push({
      instanceId,
      os: i % 5 === 0 ? 'windows' : 'linux',
      profileName,
      hadProfile: profileName !== undefined,
      launchAt,
      // G3: 2-15 s, spread deterministically.
      eventAt: launchAt + 2_000 + ((n * 7_919) % 13_001),
      // C3: 30-180 s, spread deterministically.
      registeredAt: registration === 'at-launch' ? launchAt : launchAt + 30_000 + ((n * 104_729) % 150_001),
      firstDatapointAt: undefined,
      associations: 0,
      installs: 0,
      verifiedAt: undefined,
      verifiedAs: undefined,
    });
  }
  const byId = new Map(instances.map((instance) => [instance.instanceId, instance]));
  const lastLaunchAt = Math.max(...instances.map((instance) => instance.launchAt));
  const profiles = new Map([[settings.agentProfileName, settings.agentProfileName], ['workload-0', 'workload-0-role'], ['workload-1', 'workload-1-role']]);
  const rolePolicies = new Map([[settings.agentProfileName, [...agentPolicies]], ['workload-0-role', [...agentPolicies]], ['workload-1-role', [agentPolicies[1] as string]]]);
  const arnOf = (name: string) => `arn:aws:iam::${account}:instance-profile/${name}`;
  const epochOf = (at: number) => new Date(time.epoch + at);
  const commands = new Map<string, string[]>();
  let alertsPublished = 0;

  // The state table, and when each instance's record first said healthy or alerted.
  const table = new FakeStateTable<OnboardingRecord>();
  const latest = new Map<string, OnboardingRecord>();
  let verifiedCount = 0;
  table.onWrite = (record) => {
    // The table holds other items too: the pacing ledger's, install windows, deferred instances'
    // facts (each with a `kind`; instance records have none).
    if (!record.instanceId || 'kind' in record) return;
    latest.set(record.instanceId, record);
    for (const text of [record.lastError, record.history.at(-1)?.detail]) {
      for (const match of (text ?? '').matchAll(/bench throttle #(\d+)/g)) throttlesRecorded.add(Number(match[1]));
    }
    const instance = byId.get(record.instanceId);
    if (!instance || instance.verifiedAt !== undefined) return;
    if (record.status === 'healthy' || record.status === 'alerted') {
      instance.verifiedAt = time.now();
      instance.verifiedAs = record.status;
      verifiedCount += 1;
    }
  };

  /**
   * One SDK call of `api`: the round trip, the bucket at its middle, and the SDK's retries of an
   * empty bucket (as the standard retry strategy would do them).
   */
  const call = async (client: unknown, service: string, api: string, body = '') => {
    const invocation = current(api);
    calls[api] = (calls[api] ?? 0) + 1;
    callsBy[invocation.fn][api] = (callsBy[invocation.fn][api] ?? 0) + 1;
    // The stubs keep every call they saw, which nothing here reads: a long burst would spend its time collecting them.
    if (++callsSinceReset >= 2_000) {
      callsSinceReset = 0;
      // Not from inside this call: sinon refuses to reset a stub while it is invoked
      // (InvalidResetException), and the product then saw that as the call's error (an instance
      // recorded `error`, its message back after the visibility timeout, six minutes late).
      queueMicrotask(() => {
        for (const mock of mocks) mock.resetHistory();
      });
    }
    if (api === 'GetMetricData' && invocation.fn === 'check') invocation.getMetricData += 1;
    const maxAttempts = await maxAttemptsOf(client);
    const quota = quotaOf(invocation.container, client);
    for (let attempt = 1; ; attempt++) {
      await time.sleep(latencyMs / 2);
      const taken = buckets.take({ service, operation: api, body });
      await time.sleep(latencyMs / 2);
      if (!taken || taken.ok) {
        quota.capacity = Math.min(initialRetryTokens, quota.capacity + (attempt > 1 ? throttlingRetryCost : 1));
        return;
      }
      throttlesSeen += 1;
      throttlesSeenByApi[api] = (throttlesSeenByApi[api] ?? 0) + 1;
      if (attempt >= maxAttempts || quota.capacity < throttlingRetryCost) {
        throttlesSurfaced += 1;
        throw throttlingError(service, api, throttlesSurfaced);
      }
      quota.capacity -= throttlingRetryCost;
      await time.sleep(Math.floor(random() * Math.min(throttlingDelayBaseMs * 2 ** (attempt - 1), maxRetryDelayMs)));
    }
  };

  const mocks: MockedClient[] = [];
  let callsSinceReset = 0;
  /** A mocked client whose every command no fake answers fails loudly (and is counted). */
  const fake = <T extends MockedClient>(stub: T, name: string): T => {
    stub.onAnyCommand().callsFake((input: unknown) => {
      unmockedCalls[name] = (unmockedCalls[name] ?? 0) + 1;
      throw new Error(`the burst bench has no fake for this ${name} call: ${JSON.stringify(input).slice(0, 200)}`);
    });
    mocks.push(stub);
    return stub;
  };
  const ec2 = fake(mockClient(EC2Client), 'EC2');
  const iam = fake(mockClient(IAMClient), 'IAM');
  const ssm = fake(mockClient(SSMClient), 'SSM');
  const scheduler = fake(mockClient(SchedulerClient), 'Scheduler');
  const cloudwatch = fake(mockClient(CloudWatchClient), 'CloudWatch');
  const sns = fake(mockClient(SNSClient), 'SNS');
  const sqs = fake(mockClient(SQSClient), 'SQS');
  const dynamodb = fake(mockClient(DynamoDBDocumentClient), 'DynamoDB');
  fake(mockClient(DynamoDBClient), 'DynamoDB (raw)');
  fake(mockClient(STSClient), 'STS');
  fake(mockClient(LambdaClient), 'Lambda');
  fake(mockClient(OrganizationsClient), 'Organizations');

  ec2.on(DescribeInstancesCommand).callsFake(async (input, getClient) => {
    const filtered = Boolean(input.Filters?.length || input.MaxResults || input.NextToken);
    await call(getClient(), 'ec2', 'DescribeInstances', filtered ? 'Filter.1.Name=instance-id' : '');
    if (input.InstanceIds?.length && input.MaxResults) throw awsError('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
    const max = input.MaxResults ?? 1_000;
    if (max < 5 || max > 1_000) throw awsError('InvalidParameterValue', `Value ( ${max} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`);
    const ids: string[] = input.InstanceIds ?? input.Filters?.find((filter: { Name?: string }) => filter.Name === 'instance-id')?.Values ?? [];
    const found = ids.flatMap((id) => (byId.has(id) ? [byId.get(id) as BurstInstance] : []));
    const from = Number(input.NextToken ?? 0);
    const page = found.slice(from, from + max);
    return {
      Reservations: [{ OwnerId: account, Instances: page.map(ec2Instance) }],
      NextToken: from + max < found.length ? String(from + max) : undefined,
    };
  });
  const ec2Instance = (instance: BurstInstance): Instance => ({
    InstanceId: instance.instanceId,
    State: { Name: 'running', Code: 16 },
    Platform: instance.os === 'windows' ? ('windows' as Instance['Platform']) : undefined,
    PlatformDetails: instance.os === 'windows' ? 'Windows' : 'Linux/UNIX',
    Placement: { AvailabilityZone: `${region}a` },
    LaunchTime: epochOf(instance.launchAt),
    Tags: [{ Key: 'Name', Value: instance.instanceId }],
    IamInstanceProfile: instance.profileName ? { Arn: arnOf(instance.profileName) } : undefined,
  });
  const associationTimes: number[] = [];
  ec2.on(AssociateIamInstanceProfileCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'ec2', 'AssociateIamInstanceProfile');
    const instance = byId.get(input.InstanceId ?? '');
    if (!instance) throw awsError('InvalidInstanceID.NotFound', `The instance ID '${input.InstanceId}' does not exist`);
    if (instance.profileName) throw awsError('IncorrectState', `There is an existing association for instance ${instance.instanceId}`);
    instance.profileName = input.IamInstanceProfile?.Name;
    instance.associations += 1;
    if (process.env.BENCH_BURST_DEBUG) associationTimes.push(time.now());
    return { IamInstanceProfileAssociation: { InstanceId: instance.instanceId, State: 'associating', IamInstanceProfile: { Arn: arnOf(instance.profileName ?? '') } } };
  });
  ec2.on(DescribeIamInstanceProfileAssociationsCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'ec2', 'DescribeIamInstanceProfileAssociations', 'Filter.1.Name=instance-id');
    const id = input.Filters?.find((filter: { Name?: string }) => filter.Name === 'instance-id')?.Values?.[0] ?? '';
    const name = byId.get(id)?.profileName;
    return { IamInstanceProfileAssociations: name ? [{ InstanceId: id, State: 'associated', IamInstanceProfile: { Arn: arnOf(name) } }] : [] };
  });

  iam.on(GetInstanceProfileCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'iam', 'GetInstanceProfile');
    const role = profiles.get(input.InstanceProfileName ?? '');
    if (!role) throw awsError('NoSuchEntity', `Instance Profile ${input.InstanceProfileName} cannot be found.`);
    return { InstanceProfile: { InstanceProfileName: input.InstanceProfileName, Roles: [{ RoleName: role }] } };
  });
  iam.on(ListAttachedRolePoliciesCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'iam', 'ListAttachedRolePolicies');
    return { AttachedPolicies: (rolePolicies.get(input.RoleName ?? '') ?? []).map((name) => ({ PolicyName: name, PolicyArn: `arn:aws:iam::aws:policy/${name}` })), IsTruncated: false };
  });
  iam.on(AttachRolePolicyCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'iam', 'AttachRolePolicy');
    const name = String(input.PolicyArn).split('/').at(-1) as string;
    const attached = rolePolicies.get(input.RoleName ?? '') ?? [];
    if (!attached.includes(name)) attached.push(name);
    return {};
  });

  ssm.on(DescribeInstanceInformationCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'ssm', 'DescribeInstanceInformation');
    const ids: string[] = input.Filters?.find((filter: { Key?: string }) => filter.Key === 'InstanceIds')?.Values ?? [];
    if (ids.length > 50) throw awsError('ValidationException', 'InstanceIds: at most 50');
    if (input.MaxResults !== undefined && (input.MaxResults < 5 || input.MaxResults > 50)) throw awsError('ValidationException', 'MaxResults: 5 to 50 (register C5)');
    return {
      InstanceInformationList: ids.flatMap((id) => {
        const instance = byId.get(id);
        return instance && instance.registeredAt <= time.now() ? [{ InstanceId: id, PingStatus: 'Online' as const, PlatformType: instance.os === 'windows' ? ('Windows' as const) : ('Linux' as const), AgentVersion: '3.3.1142.0', LastPingDateTime: new Date() }] : [];
      }),
    };
  });
  ssm.on(SendCommandCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'ssm', 'SendCommand');
    const ids: string[] = input.InstanceIds ?? [];
    if (ids.length > 50) throw awsError('ValidationException', 'InstanceIds: at most 50');
    const sentAt = time.now();
    const unregistered = ids.filter((id) => !((byId.get(id)?.registeredAt ?? Infinity) <= sentAt));
    if (unregistered.length) throw awsError('InvalidInstanceId', `Instances [[${unregistered.join(', ')}]] not in a valid state for account ${account}`);
    for (const id of ids) {
      const instance = byId.get(id) as BurstInstance;
      instance.installs += 1;
      // H2 (deterministic within its ranges): Linux 50-90 s, Windows 120-240 s after SendCommand.
      const n = Number.parseInt(id.slice(-4), 16);
      instance.firstDatapointAt ??= sentAt + (instance.os === 'windows' ? 120 + (n % 121) : 50 + (n % 41)) * 1000;
    }
    const commandId = `cmd-${commands.size}`;
    commands.set(commandId, ids);
    return { Command: { CommandId: commandId, InstanceIds: ids } };
  });
  ssm.on(GetCommandInvocationCommand).callsFake(async (_input, getClient) => {
    await call(getClient(), 'ssm', 'GetCommandInvocation');
    return { Status: 'Success', StatusDetails: 'Success', ResponseCode: 0 };
  });

  // Scheduler: one-time schedules by name in the stack's group, fired at their at() second (J2),
  // deleted after they fire (ActionAfterCompletion DELETE), the target invoked with Target.Input.
  const pendingSchedules = new Map<string, { targetArn: string; input: string }>();
  const scheduleCounts = { created: 0, fired: 0, conflicts: 0, unrouted: 0, firedLate: 0 };
  scheduler.on(CreateScheduleCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'scheduler', 'CreateSchedule');
    const name = input.Name ?? '';
    if (!/^[0-9a-zA-Z-_.]{1,64}$/.test(name)) throw awsError('ValidationException', `Invalid schedule name ${name}`);
    const at = /^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$/.exec(input.ScheduleExpression ?? '')?.[1];
    if (!at || (input.ScheduleExpressionTimezone ?? 'UTC') !== 'UTC') throw awsError('ValidationException', `the bench reads only at(...) in UTC, got ${input.ScheduleExpression} ${input.ScheduleExpressionTimezone}`);
    const targetInput = input.Target?.Input ?? '';
    // The service model's TargetInput: a string of at least 1 character (no maximum is given).
    if (targetInput.length < 1) throw awsError('ValidationException', 'Target.Input: at least 1 character');
    const key = `${input.GroupName ?? 'default'}/${name}`;
    if (pendingSchedules.has(key)) {
      scheduleCounts.conflicts += 1;
      throw awsError('ConflictException', `Schedule ${name} already exists.`);
    }
    pendingSchedules.set(key, { targetArn: input.Target?.Arn ?? '', input: targetInput });
    scheduleCounts.created += 1;
    const due = Date.parse(`${at}Z`) - time.epoch;
    if (due < time.now()) scheduleCounts.firedLate += 1;
    time.at(due, () => fire(key));
    return { ScheduleArn: `arn:aws:scheduler:${region}:${account}:schedule/${key}` };
  });
  scheduler.on(DeleteScheduleCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'scheduler', 'DeleteSchedule');
    const key = `${input.GroupName ?? 'default'}/${input.Name}`;
    if (!pendingSchedules.delete(key)) throw awsError('ResourceNotFoundException', `Schedule ${input.Name} does not exist.`);
    return {};
  });

  cloudwatch.on(GetMetricDataCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'monitoring', 'GetMetricData');
    const queries: MetricDataQuery[] = input.MetricDataQueries ?? [];
    if (queries.length > 500) throw awsError('ValidationError', 'MetricDataQueries: at most 500');
    const now = time.now();
    const start = new Date(input.StartTime ?? 0).getTime() - time.epoch;
    const end = new Date(input.EndTime ?? 0).getTime() - time.epoch;
    return { MetricDataResults: queries.map((query) => metricData(query, start, Math.min(end, now))) };
  });
  /** H3/H5: one datapoint a minute from the first publish, on exactly {InstanceId}; 60 s periods on whole minutes. */
  const publishedMetrics = { linux: [settings.metrics.memory, settings.metrics.disk], windows: [settings.metrics.memory, settings.metrics.windowsDiskFree] };
  const metricData = (query: MetricDataQuery, start: number, end: number) => {
    const metric = query.MetricStat?.Metric;
    const dimensions = metric?.Dimensions ?? [];
    const instance = dimensions.length === 1 && dimensions[0]?.Name === 'InstanceId' ? byId.get(dimensions[0].Value ?? '') : undefined;
    const periodMs = (query.MetricStat?.Period ?? 60) * 1000;
    const counts = new Map<number, number>();
    if (instance?.firstDatapointAt !== undefined && metric?.Namespace === settings.metrics.namespace && publishedMetrics[instance.os].includes(metric.MetricName ?? '')) {
      for (let at = instance.firstDatapointAt; at <= end; at += 60_000) {
        if (at < start) continue;
        const period = Math.floor(at / periodMs) * periodMs;
        counts.set(period, (counts.get(period) ?? 0) + 1);
      }
    }
    const periods = [...counts.keys()].sort((a, b) => a - b);
    return { Id: query.Id, Label: metric?.MetricName, StatusCode: 'Complete' as const, Timestamps: periods.map(epochOf), Values: periods.map((period) => counts.get(period) as number) };
  };
  cloudwatch.on(PutMetricAlarmCommand).callsFake(async (_input, getClient) => {
    await call(getClient(), 'monitoring', 'PutMetricAlarm');
    return {};
  });
  cloudwatch.on(DeleteAlarmsCommand).callsFake(async (_input, getClient) => {
    await call(getClient(), 'monitoring', 'DeleteAlarms');
    return {};
  });
  sns.on(PublishCommand).callsFake(async (_input, getClient) => {
    await call(getClient(), 'sns', 'Publish');
    alertsPublished += 1;
    return { MessageId: `m-${alertsPublished}` };
  });

  dynamodb.on(GetCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'dynamodb', 'GetItem');
    return table.read(input);
  });
  dynamodb.on(BatchGetCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'dynamodb', 'BatchGetItem');
    return { ...table.readMany(input), UnprocessedKeys: {} };
  });
  dynamodb.on(PutCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'dynamodb', 'PutItem');
    return table.write(input);
  });
  // The install windows' item: small batches add to it, its run closes it (shared/state/install-window.ts).
  dynamodb.on(UpdateCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'dynamodb', 'UpdateItem');
    return table.update(input);
  });

  // The onboard queue and its event source mapping.
  const queueArn = `arn:aws:sqs:${region}:${account}:${settings.resourcePrefix}-onboard`;
  let onboardBatches = 0;
  let pacingDeferrals = 0;
  let failuresReturned = 0;
  const queue = new SimulatedQueue(
    time,
    {
      queueArn,
      visibilityTimeoutSeconds: stack.visibilityTimeoutSeconds,
      maxReceiveCount: stack.maxReceiveCount,
      batchSize: stack.batchSize,
      batchWindowSeconds: stack.batchWindowSeconds,
      pollers,
      reservedConcurrency: stack.reservedConcurrency,
    },
    async (records) => {
      onboardBatches += 1;
      const outcome = await invoke('onboard', { Records: records });
      if (!outcome.ok) return { ok: false, reason: String(outcome.error) };
      const answer = outcome.result as { batchItemFailures?: { itemIdentifier: string }[] } | undefined;
      return Array.isArray(answer?.batchItemFailures) ? { ok: true, batchItemFailures: answer.batchItemFailures } : ({ ok: false, reason: 'no batchItemFailures in the answer' } satisfies BatchAnswer);
    },
  );
  queue.onReturned = (instanceId) => {
    if (latest.get(instanceId)?.lastError === undefined) pacingDeferrals += 1;
    else failuresReturned += 1;
  };
  const visibility = async (client: unknown, api: string, queueUrl: string | undefined) => {
    await call(client, 'sqs', api);
    if (!queue.isThisQueue(queueUrl)) throw awsError('QueueDoesNotExist', `The specified queue does not exist: ${queueUrl}`);
  };
  sqs.on(GetQueueUrlCommand).callsFake(async (input, getClient) => {
    await call(getClient(), 'sqs', 'GetQueueUrl');
    if (input.QueueName !== queueArn.split(':').at(-1)) throw awsError('QueueDoesNotExist', `The specified queue does not exist: ${input.QueueName}`);
    return { QueueUrl: queue.url };
  });
  sqs.on(ChangeMessageVisibilityCommand).callsFake(async (input, getClient) => {
    await visibility(getClient(), 'ChangeMessageVisibility', input.QueueUrl);
    queue.changeVisibility(input.ReceiptHandle, input.VisibilityTimeout);
    return {};
  });
  sqs.on(ChangeMessageVisibilityBatchCommand).callsFake(async (input, getClient) => {
    await visibility(getClient(), 'ChangeMessageVisibilityBatch', input.QueueUrl);
    const entries: { Id?: string; ReceiptHandle?: string; VisibilityTimeout?: number }[] = input.Entries ?? [];
    if (entries.length === 0) throw awsError('EmptyBatchRequest', 'There should be at least one ChangeMessageVisibilityBatchRequestEntry in the request.');
    if (entries.length > 10) throw awsError('TooManyEntriesInBatchRequest', `Maximum number of entries per request are 10. You have sent ${entries.length}.`);
    if (new Set(entries.map((entry) => entry.Id)).size !== entries.length) throw awsError('BatchEntryIdsNotDistinct', 'Two or more batch entries in the request have the same Id.');
    const Successful: { Id: string }[] = [];
    const Failed: { Id: string; SenderFault: boolean; Code: string; Message: string }[] = [];
    for (const entry of entries) {
      try {
        queue.changeVisibility(entry.ReceiptHandle, entry.VisibilityTimeout);
        Successful.push({ Id: entry.Id ?? '' });
      } catch (error) {
        if (!(error instanceof QueueError)) throw error;
        Failed.push({ Id: entry.Id ?? '', SenderFault: true, Code: error.name, Message: error.message });
      }
    }
    return { Successful, Failed };
  });

  // Lambda: containers, invocations, and the asynchronous retries of scheduled invocations.
  const containers: Record<FunctionName, Container[]> = { onboard: [], check: [] };
  const running: Record<FunctionName, number> = { onboard: 0, check: 0 };
  const peakConcurrency: Record<FunctionName, number> = { onboard: 0, check: 0 };
  const invocationCounts = { onboardScheduled: 0, checks: 0, asyncRetries: 0, asyncDropped: 0, failed: 0, timedOut: 0 };
  let invocationIds = 0;
  const checked = new Set<string>();
  const checkRounds = { calls: 0, instances: 0, firstRoundCalls: 0, firstRoundInstances: 0 };
  const handlers = {
    onboard: (await import('../functions/onboard.js')).handler as unknown as (event: unknown, context: unknown) => Promise<unknown>,
    check: (await import('../functions/check.js')).handler as unknown as (event: unknown, context: unknown) => Promise<unknown>,
  };

  let draining = false;
  const invoke = async (fn: FunctionName, event: unknown): Promise<{ ok: true; result: unknown } | { ok: false; error: unknown }> => {
    if (draining) return { ok: false, error: new Error('the burst is over') };
    const pool = containers[fn];
    let container = pool.find((candidate) => !candidate.busy);
    if (!container) {
      container = { id: pool.length, busy: false, pacers: new Map(), retryQuotas: new WeakMap(), windows: new Map() };
      pool.push(container);
    }
    container.busy = true;
    running[fn] += 1;
    peakConcurrency[fn] = Math.max(peakConcurrency[fn], running[fn]);
    const id = ++invocationIds;
    const invocation: Invocation = { fn, id, container, deadline: time.now() + stack.timeoutSeconds[fn] * 1000, getMetricData: 0 };
    const context = {
      functionName: `${settings.resourcePrefix}-${fn}`,
      functionVersion: '$LATEST',
      invokedFunctionArn: fn === 'onboard' ? process.env.ONBOARD_FUNCTION_ARN : process.env.CHECK_FUNCTION_ARN,
      memoryLimitInMB: '256',
      awsRequestId: `${fn}-${id}`,
      logGroupName: `/aws/lambda/${settings.resourcePrefix}-${fn}`,
      logStreamName: `bench/${container.id}`,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, invocation.deadline - time.now()),
    };
    try {
      const result = await invocations.run(invocation, () => handlers[fn](event, context));
      if (time.now() > invocation.deadline) {
        invocationCounts.timedOut += 1;
        return { ok: false, error: new Error(`${fn}-${id} ran past its ${stack.timeoutSeconds[fn]} s timeout`) };
      }
      return { ok: true, result };
    } catch (error) {
      invocationCounts.failed += 1;
      for (const match of String(error instanceof Error ? error.message : error).matchAll(/bench throttle #(\d+)/g)) throttlesFailing.add(Number(match[1]));
      if (process.env.BURST_DEBUG) console.error(fn, error);
      return { ok: false, error };
    } finally {
      container.busy = false;
      running[fn] -= 1;
      if (fn === 'check') {
        const ids = instancesOf(event);
        const first = ids.every((instanceId) => !checked.has(instanceId));
        for (const instanceId of ids) checked.add(instanceId);
        checkRounds.calls += invocation.getMetricData;
        checkRounds.instances += ids.length;
        if (first) {
          checkRounds.firstRoundCalls += invocation.getMetricData;
          checkRounds.firstRoundInstances += ids.length;
        }
      }
    }
  };
  const invokeAsync = (fn: FunctionName, input: unknown, attempt = 1): void => {
    if (fn === 'check') invocationCounts.checks += 1;
    else invocationCounts.onboardScheduled += 1;
    void invoke(fn, input).then((outcome) => {
      if (outcome.ok) return;
      const delay = asyncRetryDelaysMs[attempt - 1];
      if (delay === undefined) {
        // To the on-failure destination (the alert topic, register I2): the step is not done.
        invocationCounts.asyncDropped += 1;
        return;
      }
      invocationCounts.asyncRetries += 1;
      time.at(time.now() + delay, () => invokeAsync(fn, input, attempt + 1));
    });
  };
  const fire = (key: string) => {
    const schedule = pendingSchedules.get(key);
    if (!schedule) return;
    pendingSchedules.delete(key);
    scheduleCounts.fired += 1;
    const input = JSON.parse(schedule.input) as unknown;
    if (schedule.targetArn === process.env.ONBOARD_FUNCTION_ARN) invokeAsync('onboard', input);
    else if (schedule.targetArn === process.env.CHECK_FUNCTION_ARN) invokeAsync('check', input);
    else scheduleCounts.unrouted += 1;
  };

  // The product's pacers on the simulated clock, one set per container (a real container's are its own).
  const pacerOf = (place: Place): Pacer => {
    const { container } = current('the pacer');
    const label = placeLabel(place);
    let pacer = container.pacers.get(label);
    if (!pacer) {
      pacer = new Pacer({ ...settings.pacing, clock: () => time.now() });
      container.pacers.set(label, pacer);
    }
    return pacer;
  };
  class ContainerPacer extends Pacer {
    readonly #place: Place;
    constructor(place: Place) {
      super(settings.pacing);
      this.#place = place;
    }
    override take(name: BucketName, count?: number): Pace {
      return pacerOf(this.#place).take(name, count);
    }
    override available(name: BucketName): number {
      return pacerOf(this.#place).available(name);
    }
    override throttled(name: BucketName): void {
      pacerOf(this.#place).throttled(name);
    }
    override rate(name: BucketName): number {
      return pacerOf(this.#place).rate(name);
    }
    override taken(): Partial<Record<BucketName, number>> {
      return pacerOf(this.#place).taken();
    }
  }

  /** The figures, as they stand at `endedAt` (copies: the drain after it changes nothing here). */
  const report = (endedAt: number): BurstResult => {
    const perInstance = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).sort().map(([api, n]) => [api, round(n / size, 3)]));
    const verified = instances.filter((instance) => instance.verifiedAt !== undefined);
    const healthy = verified.filter((instance) => instance.verifiedAs === 'healthy');
    const launchToVerified = percentiles(verified.map((instance) => ((instance.verifiedAt as number) - instance.launchAt) / 1000));
    const registrationToVerified = percentiles(verified.map((instance) => ((instance.verifiedAt as number) - instance.registeredAt) / 1000));
    if (process.env.BENCH_BURST_DEBUG) {
      // BENCH_BURST_DEBUG=1: associations per simulated minute, and the histories of the three slowest instances.
      const perMinute = new Map<number, number>();
      for (const at of associationTimes) perMinute.set(Math.floor(at / 60_000), (perMinute.get(Math.floor(at / 60_000)) ?? 0) + 1);
      console.error(`associations per minute: ${[...perMinute].map(([minute, n]) => `${minute}:${n}`).join(' ')}`);
      const slowest = [...verified].sort((a, b) => (b.verifiedAt as number) - b.launchAt - ((a.verifiedAt as number) - a.launchAt)).slice(0, 3);
      const unverified = instances.filter((instance) => instance.verifiedAt === undefined).slice(0, 2);
      for (const instance of unverified) {
        const record = [...table.all()].find((item) => item.instanceId === instance.instanceId && !('kind' in item));
        console.error(`unverified ${instance.instanceId} ${instance.os} launched at ${instance.launchAt / 1000} s`);
        for (const entry of record?.history ?? []) console.error(`  ${JSON.stringify(entry)}`);
      }
      for (const instance of slowest) {
        const record = [...table.all()].find((item) => item.instanceId === instance.instanceId && !('kind' in item));
        console.error(`slow ${instance.instanceId} ${instance.os} launched at ${instance.launchAt / 1000} s, verified at ${(instance.verifiedAt as number) / 1000} s`);
        for (const entry of record?.history ?? []) console.error(`  ${JSON.stringify(entry)}`);
      }
    }
    const shares: Record<string, number> = {};
    for (const [bucket, share] of Object.entries(buckets.peakBucketShare('bucket'))) shares[bucket] = round(share, 2);
    const rateShares: Record<string, number> = {};
    for (const [bucket, share] of Object.entries(buckets.peakBucketShare('10s'))) rateShares[bucket] = round(share, 2);
    const withoutProfile = instances.filter((instance) => !instance.hadProfile);
    const associatedOnce = withoutProfile.filter((instance) => instance.associations === 1).length;
    const surfacedFate = { recorded: 0, failedInvocation: 0 };
    for (let n = 1; n <= throttlesSurfaced; n++) {
      if (throttlesRecorded.has(n)) surfacedFate.recorded += 1;
      if (throttlesFailing.has(n)) surfacedFate.failedInvocation += 1;
    }
    const counts = queue.counts;
    return {
      instances: size,
      callsPerInstance: perInstance(calls),
      callsPerInstanceByFunction: { onboard: perInstance(callsBy.onboard), check: perInstance(callsBy.check) },
      throttlesSeen,
      throttlesSeenByApi: { ...throttlesSeenByApi },
      throttlesSurfaced,
      throttlesSurfacedFate: surfacedFate,
      pacingDeferrals,
      failuresReturned,
      deadLettered: counts.deadLettered,
      peakBucketShare: shares,
      peakRateShare10s: rateShares,
      launchToVerifiedSeconds: launchToVerified,
      registrationToVerifiedSeconds: registrationToVerified,
      firstDatapointToHealthySeconds: percentiles(healthy.map((instance) => ((instance.verifiedAt as number) - (instance.firstDatapointAt as number)) / 1000)),
      verified: {
        healthy: healthy.length,
        alerted: verified.length - healthy.length,
        within15Minutes: verified.filter((instance) => (instance.verifiedAt as number) - instance.registeredAt <= targetMs).length,
      },
      unverified: size - verified.length,
      getMetricDataPerInstancePerCheckRound: {
        overall: round(checkRounds.calls / Math.max(1, checkRounds.instances), 4),
        firstRound: round(checkRounds.firstRoundCalls / Math.max(1, checkRounds.firstRoundInstances), 4),
      },
      lambdaInvocations: {
        onboardBatches,
        ...invocationCounts,
        coldStarts: { onboard: containers.onboard.length, check: containers.check.length },
        peakConcurrency: { ...peakConcurrency },
      },
      queue: {
        sent: counts.sent,
        receives: counts.receives,
        redeliveries: counts.redeliveries,
        returned: counts.returned,
        deleted: counts.deleted,
        failedBatches: counts.failedBatches,
        visibilityChanges: counts.visibilityChanges,
        visibilityChangeErrors: { ...counts.visibilityChangeErrors },
        maxReceiveCount: counts.maxReceiveCount,
        stillQueued: queue.pending,
      },
      schedules: { ...scheduleCounts, pending: pendingSchedules.size },
      associations: { withoutProfile: withoutProfile.length, associatedOnce, otherwise: withoutProfile.length - associatedOnce + instances.filter((instance) => instance.hadProfile && instance.associations > 0).length },
      reinstalled: instances.filter((instance) => instance.installs > 1).length,
      alertsPublished,
      simulatedMinutes: round(endedAt / 60_000, 1),
      simulation: { unmockedCalls: { ...unmockedCalls }, realWaits, abandonedInvocations: 0, pollers, registration, latencyMs },
      wallMs: 0,
    };
  };

  const quiet = muteHandlerLogs();
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    if (invocations.getStore()) realWaits += 1;
    return realSetTimeout(...args);
  }) as typeof setTimeout;
  replaceContainerPacers((place) => new ContainerPacer(place), (ms) => time.sleep(ms));
  // Each burst starts on the same simulated clock: a window schedule a container of an earlier burst created is none of this one's.
  replaceInstallWindowMemory(() => current('the install windows').container.windows);
  time.installDate();
  let result: BurstResult;
  try {
    for (const instance of instances) {
      const body = JSON.stringify({
        version: '0',
        id: `ev-${instance.instanceId}`,
        'detail-type': 'EC2 Instance State-change Notification',
        source: 'aws.ec2',
        account,
        time: epochOf(Math.floor(instance.launchAt / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        region,
        resources: [`arn:aws:ec2:${region}:${account}:instance/${instance.instanceId}`],
        detail: { 'instance-id': instance.instanceId, state: 'running' },
      });
      queue.send(`msg-${instance.instanceId}`, instance.instanceId, body, instance.eventAt);
    }
    const settled = () => verifiedCount === size && queue.pending === 0;
    const endedAt = await time.runUntil(settled, lastLaunchAt + runOnMs);
    result = report(endedAt);
    // Let the invocations still in flight finish (none starts now), so that none is left waiting on
    // a clock that no longer runs, with middy's real timeout timer pending behind it.
    draining = true;
    await time.runUntil(() => running.onboard + running.check === 0, endedAt + drainMs);
    result.simulation.abandonedInvocations = running.onboard + running.check;
  } finally {
    time.uninstallDate();
    replaceContainerPacers();
    replaceInstallWindowMemory();
    globalThis.setTimeout = realSetTimeout;
    quiet.restore();
    for (const mock of mocks) mock.restore();
  }

  result.wallMs = Math.round(performance.now() - started);
  return result;
}

/** The instances a check input is about: `instanceIds` (a batch) or `instanceId`. */
function instancesOf(input: unknown): string[] {
  const { instanceIds, instanceId } = (input ?? {}) as { instanceIds?: unknown; instanceId?: unknown };
  if (Array.isArray(instanceIds)) return instanceIds.filter((id): id is string => typeof id === 'string');
  return typeof instanceId === 'string' ? [instanceId] : [];
}

const maxAttemptsCache = new WeakMap<object, number>();

/** The client's `maxAttempts` (the SDK resolves it to a provider), 3 (the SDK's default) when unreadable. */
async function maxAttemptsOf(client: unknown): Promise<number> {
  if (typeof client !== 'object' || client === null) return 3;
  const cached = maxAttemptsCache.get(client);
  if (cached !== undefined) return cached;
  const provider = (client as { config?: { maxAttempts?: unknown } }).config?.maxAttempts;
  const value = typeof provider === 'function' ? Number(await (provider as () => Promise<unknown>)()) : typeof provider === 'number' ? provider : 3;
  const attempts = Number.isFinite(value) && value >= 1 ? value : 3;
  maxAttemptsCache.set(client, attempts);
  return attempts;
}

/** A container's retry quota for one SDK client (the strategy lives in the client, the client in the container). */
function quotaOf(container: Container, client: unknown): { capacity: number } {
  const key = typeof client === 'object' && client !== null ? client : container;
  let quota = container.retryQuotas.get(key);
  if (!quota) {
    quota = { capacity: initialRetryTokens };
    container.retryQuotas.set(key, quota);
  }
  return quota;
}

/** An error shaped as the SDK raises a service's (name = the error code). */
function awsError(name: string, message: string, httpStatusCode = 400): Error {
  return Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode } });
}

/** The throttling error of each service, as the register's N13 gives them. */
function throttlingError(service: string, api: string, n: number): Error {
  const message = `Rate exceeded (${api}; bench throttle #${n})`;
  if (service === 'ec2') return awsError('RequestLimitExceeded', `Request limit exceeded. (${api}; bench throttle #${n})`, 503);
  if (service === 'iam' || service === 'monitoring' || service === 'sts') return awsError('Throttling', message);
  if (service === 'scheduler') return awsError('ThrottlingException', message, 429);
  return awsError('ThrottlingException', message);
}

const cfnTags: Tags = ['!Ref', '!Sub', '!GetAtt', '!Not', '!Equals', '!Or', '!And', '!If', '!Split', '!Condition'].map((tag) => ({ tag, resolve: (value: unknown) => value }));

/** The queue's, the event source mapping's and the functions' figures, as serverless.yml gives them. */
function stackFigures(): StackFigures {
  const yml = parseDocument(readFileSync(new URL('../serverless.yml', import.meta.url), 'utf8'), { customTags: cfnTags }).toJS() as {
    params?: { default?: Record<string, unknown> };
    functions?: Record<string, { timeout?: number }>;
    resources?: { Resources?: Record<string, { Properties?: { VisibilityTimeout?: number; RedrivePolicy?: { maxReceiveCount?: number } } }> }[];
  };
  const params = yml.params?.default ?? {};
  const resources = Object.assign({}, ...(yml.resources ?? []).map((fragment) => fragment.Resources ?? {})) as Record<string, { Properties?: { VisibilityTimeout?: number; RedrivePolicy?: { maxReceiveCount?: number } } }>;
  const queue = resources.OnboardQueue?.Properties;
  const reserved = String(params.onboardReservedConcurrency ?? '');
  const figures: StackFigures = {
    visibilityTimeoutSeconds: Number(queue?.VisibilityTimeout),
    maxReceiveCount: Number(queue?.RedrivePolicy?.maxReceiveCount),
    batchSize: Number(params.onboardBatchSize),
    batchWindowSeconds: Number(params.onboardBatchWindowSeconds),
    maximumConcurrency: Number(params.onboardMaximumConcurrency),
    reservedConcurrency: reserved === '' ? undefined : Number(reserved),
    timeoutSeconds: { onboard: Number(yml.functions?.onboard?.timeout), check: Number(yml.functions?.check?.timeout) },
  };
  const unread = Object.entries({ ...figures, ...figures.timeoutSeconds }).filter(([name, value]) => name !== 'reservedConcurrency' && typeof value === 'number' && !(value >= 0));
  if (unread.length) throw new Error(`serverless.yml: could not read ${unread.map(([name]) => name).join(', ')}`);
  return figures;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function percentiles(values: number[]): Spread {
  if (values.length === 0) return { p50: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: Math.round(sorted[Math.floor((sorted.length - 1) / 2)] as number), max: Math.round(sorted.at(-1) as number) };
}

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

