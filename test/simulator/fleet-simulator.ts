import {
  CloudWatchClient,
  DescribeAlarmsCommand,
  PutMetricDataCommand,
  SetAlarmStateCommand,
  type MetricAlarm,
  type MetricDatum,
} from '@aws-sdk/client-cloudwatch';
import { EC2Client, StartInstancesCommand, StopInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { DeleteScheduleCommand, GetScheduleCommand, ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { metricsPublishedBy, renderedAgentConfigs, type ExpectedMetric } from '../../shared/agent-config.js';
import { recordKeyOf, type OnboardingRecord } from '../../shared/state/instance-record.js';
import type { AwsCall, InvocationState, SentCommand } from '../harness/aws-proxy.js';
import { placeLabel, samePlace, type Place } from '../../shared/aws/place.js';
import { localClientConfig, type LocalClientConfig } from '../harness/client-config.js';
import { createWorkloadProfile, launchInstance, stateChangeEvent, type AccountRegion, type InstanceState } from '../harness/fleet.js';
import type { SimulatedClock } from './clock.js';
import { lambdaContext, type SimulationEnvironment } from './environment.js';
import { publishedMessages, StateTableReader, type PublishedMessage } from './moto-state.js';
import { expectedOutcome, type ExpectedOutcome, type InstanceSpec } from './scenarios.js';
import { apiBuckets, type ApiBuckets, type ApiBucketsOptions } from './api-buckets.js';
import { OnboardQueue, type DeadLetteredMessage, type QueueBatch } from './onboard-queue.js';
import { replaceContainerPacers } from '../../shared/pacing/batch-pacing.js';
import { forgetScheduledInstallWindows } from '../../shared/onboarding/install-window.js';

const minute = 60_000;

/** A product function the simulator can invoke. */
export type ProductFunction = 'onboard' | 'check' | 'offboard';

/** One simulated instance while the simulation runs. */
export interface SimulatedInstance {
  spec: InstanceSpec;
  instanceId: string;
  /** The account and region it runs in (the spec's, default the hub's). */
  place: Place;
  /** Simulated time of its launch (ms since the epoch). */
  launchedAt: number;
  online: boolean;
  /** Install commands sent to it, in order, with how each ended on the instance (the invocation's status). */
  commands: { commandId: string; requestedAt: number; status: InvocationState['status'] }[];
  /** Simulated time of the agent's first datapoint; undefined while it does not publish. */
  publishingSince: number | undefined;
  /** Simulated time the agent stops publishing, if it does. */
  publishingUntil: number | undefined;
  terminated: boolean;
}

/** One line of the timeline: a step the product recorded, or something the simulated world did. */
export interface TimelineEntry {
  /** Simulated time, ms since the epoch. */
  at: number;
  /** The instance the line is about; undefined for a line about several (then `instanceIds`) or none. */
  instanceId: string | undefined;
  /**
   * Every instance a line about several is about: a batch of the onboard queue, a batch check.
   * Use {@link isAbout} to find an instance's lines.
   */
  instanceIds?: string[];
  /** `i-0abc (web-1, linux)`, or a function name for lines about no one instance. */
  subject: string;
  /** `queue`: a batch of the onboard queue delivered (or a message dead-lettered); `lambda`: a failed invocation. */
  source: 'product' | 'world' | 'lambda' | 'queue' | 'alert' | 'alarm';
  step: string;
  detail: string;
}

/** An instance, by id and place (ids are unique per account only). */
interface InstanceRef {
  instanceId: string;
  place: Place;
}

/** An invocation Lambda (or the Scheduler, through Lambda) will make. */
interface Delivery {
  at: number;
  seq: number;
  target: ProductFunction;
  /** undefined: the `running` event of `about[0]`, built at delivery (stamped with that time). */
  input: unknown;
  /** 1 for the first delivery, 2 and 3 for Lambda's asynchronous retries. */
  attempt: number;
  origin: string;
  /** The instances the input is about: one, several (a batch check's `instanceIds`), or none known. */
  about: InstanceRef[];
}

interface WorldEvent {
  at: number;
  seq: number;
  /** Recurring events (the minute tick) do not keep a simulation alive. */
  recurring: boolean;
  run: () => Promise<void>;
}

interface KnownSchedule {
  name: string;
  dueAt: number;
  /** ActionAfterCompletion DELETE: the Scheduler deletes it after its one run; NONE keeps it. */
  deleteAfterRun: boolean;
  /** State DISABLED: the Scheduler does not run it. */
  enabled: boolean;
  /** A one-time schedule runs once; a kept one (NONE) stays listed afterwards. */
  ran: boolean;
  target: ProductFunction | undefined;
  targetArn: string;
  input: unknown;
}

/** What an invocation failed with, and what happened to the event. */
export interface FailedDelivery {
  target: ProductFunction;
  input: unknown;
  origin: string;
  attempt: number;
  error: string;
  /** True when Lambda gave up (after its 2 retries): the event is lost unless a DLQ keeps it. */
  dropped: boolean;
}

/** How one instance ended, compared with what the product should have done. */
export interface InstanceOutcome {
  spec: InstanceSpec;
  instanceId: string;
  label: string;
  record: OnboardingRecord | undefined;
  status: string;
  /** healthy, alerted, skipped or gone: nothing left to happen. */
  definite: boolean;
  diagnosis: string | undefined;
  /** The product's alerts about this instance (SNS attribute event=alert). */
  alerts: PublishedMessage[];
  recoveries: PublishedMessage[];
  /** Notifications of this instance's alarms that the simulated CloudWatch set off. */
  alarmNotifications: PublishedMessage[];
  /** Install commands the product sent to it. */
  installs: number;
  /** Schedules still pending for it in the Scheduler. */
  pendingSchedules: string[];
  expected: ExpectedOutcome;
  /** What differs from the expected outcome; empty when it is right. */
  problems: string[];
}

/** Options of {@link FleetSimulator}; every one has a default. */
export interface FleetSimulatorOptions {
  /** Called for every timeline line as it happens (the demo prints them). */
  onTimeline?: (entry: TimelineEntry) => void;
  /** Lambda's asynchronous retries after a failed invocation. Default 2, as on AWS. */
  lambdaRetries?: number;
  /** Evaluate the product's missing-data alarms (moto never does). Default true. */
  evaluateAlarms?: boolean;
  /**
   * How EC2 `running` events reach the onboard function. `queue`: as deployed, through the onboard
   * queue and Lambda's event source mapping (batches of `onboardBatchSize`, `onboardBatchWindowSeconds`,
   * partial batch responses, the visibility timeout, the dead-letter queue: {@link OnboardQueue},
   * figures from serverless.yml). `direct`: each event invokes the function on its own, as before
   * the queue existed. Stopped and terminated events go to offboard directly either way, and
   * {@link FleetSimulator.invokeNow} is always direct. Default `queue`, as deployed.
   */
  onboardDelivery?: 'queue' | 'direct';
  /**
   * The API rate limits (test/simulator/api-buckets.ts) on the product's calls through the proxy for
   * this run, refilled on the simulated clock: `true`, or the buckets' options (figures, placeOf).
   * The simulator's own calls go to moto directly and take no token. Default off.
   */
  apiBuckets?: boolean | Omit<ApiBucketsOptions, 'now'>;
}

/** What went through the onboard queue in a run. */
export interface QueueReport {
  /** Batches the event source mapping delivered (each one onboard invocation). */
  batches: number;
  /** Messages sent to the queue (EC2 running events). */
  messages: number;
  /** Deliveries of a message after its first (returned by a partial batch response, or a failed batch). */
  redelivered: number;
  /** Messages SQS moved to the dead-letter queue after maxReceiveCount receives. */
  deadLettered: DeadLetteredMessage[];
}

/** Options of {@link FleetSimulator.run}. */
export interface RunOptions {
  /** Stop at this much simulated time from now, even with work pending. Default 3 hours. */
  maxSimulatedMs?: number;
  /**
   * Once nothing is pending, keep the world running this long (agents publish, alarms evaluate)
   * before stopping. Default: the missing-data alarm's minutes plus 3.
   */
  settleMs?: number;
}

/** What a run did. */
export interface RunReport {
  simulatedMs: number;
  invocations: Record<ProductFunction, number>;
  failedDeliveries: FailedDelivery[];
  /** True when the run stopped at `maxSimulatedMs` with work still pending. */
  timedOut: boolean;
  /** The onboard queue since the simulator started (all zero with direct delivery). */
  queue: QueueReport;
}

const stateEventDetailType = 'EC2 Instance State-change Notification';

/**
 * Stands in for the parts of AWS that moto does not run, around the product's real handlers:
 * instances that come online in Systems Manager after a delay (the proxy's SSM registry), agents
 * that publish the deployed config's series to moto once an install command succeeded, EventBridge
 * delivering state-change events, the Scheduler firing due one-time schedules (by invoking the
 * target function with the stored input, then deleting the schedule), Lambda's asynchronous
 * retries, and CloudWatch evaluating the product's missing-data alarms.
 *
 * Time is a {@link SimulatedClock}: `run()` jumps from one due thing to the next.
 *
 * @example
 * const sim = new FleetSimulator(environment, clock, { onTimeline: print });
 * await sim.launch(mixedFleet({ size: 12, seed: 7 }));
 * await sim.run();
 * const outcomes = await sim.outcomes();
 */
export class FleetSimulator {
  readonly instances: SimulatedInstance[] = [];
  readonly timeline: TimelineEntry[] = [];
  readonly failedDeliveries: FailedDelivery[] = [];
  readonly invocations: Record<ProductFunction, number> = { onboard: 0, check: 0, offboard: 0 };
  /** The onboard queue and its event source mapping (used with `onboardDelivery: 'queue'`). */
  readonly queue: OnboardQueue;
  /** The API buckets of this run (`apiBuckets` option), undefined when off. */
  readonly buckets: ApiBuckets | undefined;

  readonly #env: SimulationEnvironment;
  readonly #clock: SimulatedClock;
  readonly #options: Required<Pick<FleetSimulatorOptions, 'lambdaRetries' | 'evaluateAlarms' | 'onboardDelivery'>> & Pick<FleetSimulatorOptions, 'onTimeline'>;
  /** The proxy's buckets before this simulator set its own (put back by destroy). */
  readonly #bucketsBefore: ApiBuckets | undefined;
  #redelivered = 0;
  readonly #published: Record<'linux' | 'windows', ExpectedMetric[]>;
  readonly #ec2: EC2Client;
  readonly #scheduler: SchedulerClient;
  readonly #cloudwatch: CloudWatchClient;
  readonly #sns: SNSClient;
  /** EC2 and CloudWatch of the places other than the hub's, built on first use. */
  #placeClients = new Map<string, { ec2: EC2Client; cloudwatch: CloudWatchClient }>();
  readonly #table: StateTableReader;
  #seq = 0;
  #world: WorldEvent[] = [];
  #deliveries: Delivery[] = [];
  #schedules = new Map<string, KnownSchedule>();
  #commandsSeen = 0;
  /** How far the simulator has read the proxy's call log, and what it counted there. */
  #callLog: CallLogCounts = { read: 0, alarmWrites: 0, scheduleWrites: 0 };
  /** The product's successful SNS publishes read from the call log and not yet on the timeline. */
  #newPublishes: NonNullable<AwsCall['published']>[] = [];
  /** The product's schedule writes when the Scheduler was last listed (undefined: list it again). */
  #schedulesListedAt: number | undefined;
  #printed = new Map<string, Set<string>>();
  #tickRunning = false;
  #alarmStates = new Map<string, 'OK' | 'ALARM'>();
  #alarmFirstSeen = new Map<string, number>();
  /** When each series (place, namespace, metric, exact dimension set) last got a datapoint from a simulated agent. */
  #lastDatapoint = new Map<string, number>();
  /** The alarms last read per place, with the count of the product's alarm writes then. */
  #alarmsRead = new Map<string, { changes: number; alarms: MetricAlarm[] }>();

  constructor(env: SimulationEnvironment, clock: SimulatedClock, options: FleetSimulatorOptions = {}) {
    this.#env = env;
    this.#clock = clock;
    this.#options = {
      lambdaRetries: options.lambdaRetries ?? 2,
      evaluateAlarms: options.evaluateAlarms ?? true,
      onboardDelivery: options.onboardDelivery ?? 'queue',
      onTimeline: options.onTimeline,
    };
    this.queue = new OnboardQueue(env.stack.onboardQueue);
    this.#bucketsBefore = env.proxy.buckets.current();
    if (options.apiBuckets) {
      this.buckets = apiBuckets({ ...(options.apiBuckets === true ? {} : options.apiBuckets), now: () => this.#clock.now() });
      env.proxy.buckets.set(this.buckets);
    }
    // A fresh container: it has created no install window schedule (a scenario's clock may start at
    // an earlier scenario's window).
    forgetScheduledInstallWindows();
    if (this.#options.onboardDelivery === 'queue') {
      // A fresh container's pacers (the batch path's), whose waits pass on the simulated clock: the
      // handlers run one at a time, so moving the clock for a wait is what a real sleep would do,
      // without the wall time. Concurrent waits of one batch overlap: the clock moves to the
      // latest end asked for, not by their sum.
      replaceContainerPacers(undefined, async (ms) => {
        const until = this.#clock.now() + ms;
        await Promise.resolve();
        const now = this.#clock.now();
        if (until > now) this.#clock.advance(until - now);
      });
    }
    const configs = renderedAgentConfigs(env.stack.settings.metrics);
    this.#published = { linux: metricsPublishedBy(configs.linux, 'linux'), windows: metricsPublishedBy(configs.windows, 'windows') };
    // The simulator's own calls go to moto directly: injected faults are for the product.
    const config = localClientConfig(env.motoUrl);
    this.#ec2 = new EC2Client(config);
    this.#scheduler = new SchedulerClient(config);
    // moto cannot read a gzip-compressed PutMetricData body (the SDK compresses bodies over 10 KB):
    // the agents' shared PutMetricData calls go uncompressed.
    this.#cloudwatch = new CloudWatchClient({ ...config, disableRequestCompression: true });
    this.#sns = new SNSClient(config);
    this.#table = new StateTableReader(env.motoUrl, env.stack.settings.stateTable);
  }

  /** Releases the simulator's SDK clients, and puts back the proxy's buckets and the product's pacers. */
  destroy(): void {
    if (this.buckets) this.#env.proxy.buckets.set(this.#bucketsBefore);
    if (this.#options.onboardDelivery === 'queue') replaceContainerPacers();
    this.#ec2.destroy();
    this.#scheduler.destroy();
    this.#cloudwatch.destroy();
    for (const clients of this.#placeClients.values()) {
      clients.ec2.destroy();
      clients.cloudwatch.destroy();
    }
    this.#sns.destroy();
    this.#table.destroy();
  }

  /** `i-0abc (web-1, linux)`, with `111111111111/eu-west-1` before the id outside the hub's place. */
  label(instance: SimulatedInstance): string {
    const where = samePlace(instance.place, this.#env.hubPlace) ? '' : `${placeLabel(instance.place)} `;
    return `${where}${instance.instanceId} (${instance.spec.name}, ${instance.spec.os})`;
  }

  /** The instance with this id (in `place` when given: ids are unique per account only). */
  instance(instanceId: string, place?: Place): SimulatedInstance | undefined {
    return this.instances.find((candidate) => candidate.instanceId === instanceId && (!place || samePlace(candidate.place, place)));
  }

  /** The proxy's simulated Systems Manager of a place. */
  #ssmOf(place: Place) {
    return this.#env.proxy.place(place);
  }

  /** Where an account is reached from the simulator: its region and that account's credentials (none: moto's default account). */
  #accountRegion(place: Place): AccountRegion | undefined {
    if (samePlace(place, this.#env.hubPlace)) return undefined;
    const credentials = this.#env.organization?.credentials.get(place.account);
    if (!credentials && place.account !== this.#env.hubPlace.account) throw new Error(`${placeLabel(place)} is not an account of this simulation's organization`);
    return { region: place.region, credentials: credentials ?? localClientConfig(this.#env.motoUrl).credentials };
  }

  /** The simulator's EC2 and CloudWatch clients in a place (moto directly, as that account). */
  #clientsOf(place: Place): { ec2: EC2Client; cloudwatch: CloudWatchClient } {
    const where = this.#accountRegion(place);
    if (!where) return { ec2: this.#ec2, cloudwatch: this.#cloudwatch };
    const key = placeLabel(place);
    let clients = this.#placeClients.get(key);
    if (!clients) {
      const config: LocalClientConfig = { ...localClientConfig(this.#env.motoUrl), region: where.region, credentials: where.credentials };
      clients = { ec2: new EC2Client(config), cloudwatch: new CloudWatchClient({ ...config, disableRequestCompression: true }) };
      this.#placeClients.set(key, clients);
    }
    return clients;
  }

  /**
   * Plans the launch of each instance at its `launchAfterMs` (from now). Each launch then delivers
   * its `running` event, registers with SSM, and so on, as `run()` advances the clock.
   */
  launch(specs: InstanceSpec[]): void {
    for (const spec of specs) {
      this.#addWorld(this.#clock.now() + spec.launchAfterMs, () => this.#launchOne(spec).then(() => undefined));
    }
    this.#ensureTick();
  }

  /** Launches one instance now (moto RunInstances); its world events are planned from now. */
  async launchNow(spec: InstanceSpec, options: { deliverRunningEvent?: boolean } = {}): Promise<SimulatedInstance> {
    return this.#launchOne(spec, options.deliverRunningEvent ?? true);
  }

  /**
   * Queues an invocation as EventBridge or a person would make it (asynchronous, retried by Lambda).
   * With `onboardDelivery: 'queue'`, an EC2 `running` event for onboard goes to the onboard queue
   * instead, as the stack's rule sends it.
   */
  deliver(target: ProductFunction, input: unknown, options: { afterMs?: number; origin?: string; instanceId?: string } = {}): void {
    const at = this.#clock.now() + (options.afterMs ?? 0);
    const place = placeOfInput(input, this.#env.hubPlace);
    const about = options.instanceId ? [{ instanceId: options.instanceId, place }] : this.#aboutInput(input);
    if (target === 'onboard' && this.#options.onboardDelivery === 'queue' && isStateChange(input, 'running')) {
      this.queue.send({ body: JSON.stringify(input), instanceId: about[0]?.instanceId, place, origin: options.origin ?? 'by hand' }, at);
      return;
    }
    this.#deliveries.push({ at, seq: this.#seq++, target, input, attempt: 1, origin: options.origin ?? 'by hand', about });
  }

  /** The instances an input is about, each in the input's place. */
  #aboutInput(input: unknown): InstanceRef[] {
    const place = placeOfInput(input, this.#env.hubPlace);
    return instanceIdsOf(input).map((instanceId) => ({ instanceId, place }));
  }

  /**
   * The instances a schedule's input is about: those of the input, or, for an install window's run
   * (`{ installWindow }`, which names none), those that joined the window (its state table item).
   */
  async #aboutScheduled(input: unknown): Promise<InstanceRef[]> {
    const windowEnd = typeof input === 'object' && input !== null ? (input as { installWindow?: unknown }).installWindow : undefined;
    if (typeof windowEnd !== 'number') return this.#aboutInput(input);
    const place = placeOfInput(input, this.#env.hubPlace);
    return (await this.#table.windowInstances(windowEnd, place)).map((instanceId) => ({ instanceId, place }));
  }

  /** This instance's lines of the timeline (its own, and those of the batches it was in). */
  timelineOf(instanceId: string): TimelineEntry[] {
    return this.timeline.filter((entry) => isAbout(entry, instanceId));
  }

  /**
   * The state-change event EventBridge sends for an instance. A member's event reaches the hub's
   * functions through the hub bus with the member's `account` and `region` (the forwarding rule
   * sends the event as it is).
   */
  stateChange(instanceId: string, state: InstanceState, place: Place = this.instance(instanceId)?.place ?? this.#env.hubPlace): unknown {
    return stateChangeEvent(instanceId, state, new Date(), place);
  }

  /**
   * Stops (or starts) an instance in EC2 now, as a person would. A stop sends EventBridge's
   * `stopped` event to offboard 2 s later, as the stack's rule does; the `running` event follows a
   * start (the caller delivers it, to choose its timing).
   */
  async setPower(instanceId: string, power: 'stop' | 'start', place?: Place): Promise<void> {
    const instance = this.instance(instanceId, place);
    const where = instance?.place ?? place ?? this.#env.hubPlace;
    const { ec2 } = this.#clientsOf(where);
    if (power === 'stop') await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    else await ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
    if (instance && power === 'stop') {
      instance.publishingUntil = this.#clock.now();
      this.#ssmOf(where).ssm.unregister(instanceId);
      instance.online = false;
    }
    // The SSM agent registers again once the started instance has booted (assumed: 30 s).
    if (instance && power === 'start' && instance.spec.onlineAfterMs !== undefined) {
      this.#addWorld(this.#clock.now() + 30_000, async () => {
        if (instance.terminated) return;
        instance.online = true;
        this.#ssmOf(where).ssm.register(instanceId, { platformType: instance.spec.os === 'windows' ? 'Windows' : 'Linux' });
      });
    }
    // The agent is a service: an installed agent starts again with the instance, a minute later
    // (an agent whose fault is to stop publishing stays stopped).
    if (instance && power === 'start' && instance.publishingSince !== undefined && instance.spec.agentStopsAfterMs === undefined) {
      instance.publishingSince = this.#clock.now() + 60_000;
      instance.publishingUntil = undefined;
    }
    this.#worldLine(instance, power === 'stop' ? 'stopped' : 'started', power === 'stop' ? 'StopInstances; EventBridge sends "stopped" to offboard' : 'StartInstances');
    if (power === 'stop') {
      this.deliver('offboard', stateChangeEvent(instanceId, 'stopped', new Date(), where), { afterMs: 2000, origin: 'EventBridge stopped', instanceId });
    }
  }

  /**
   * Runs the world until nothing is pending (then `settleMs` more), or `maxSimulatedMs`: each step
   * jumps the clock to the next due thing and does it, invoking the real handlers one at a time
   * (one at a time keeps a seeded run reproducible).
   */
  async run(options: RunOptions = {}): Promise<RunReport> {
    const startedAt = this.#clock.now();
    const deadline = startedAt + (options.maxSimulatedMs ?? 3 * 3600_000);
    const settle = options.settleMs ?? (this.#env.stack.settings.alarms.missingDataMinutes + 3) * minute;
    let quietSince: number | undefined;
    let timedOut = false;
    this.#ensureTick();
    await this.#refreshSchedules(true);
    for (;;) {
      await this.#refreshSchedules();
      const now = this.#clock.now();
      const queueDue = this.queue.nextDue();
      const nextWork = minOf([
        ...this.#world.filter((event) => !event.recurring).map((event) => event.at),
        ...this.#deliveries.map((delivery) => delivery.at),
        ...[...this.#schedules.values()].filter(isDue).map((schedule) => schedule.dueAt),
        ...(queueDue === undefined ? [] : [queueDue]),
      ]);
      let next: number;
      if (nextWork === undefined) {
        quietSince ??= now;
        const end = quietSince + settle;
        if (now >= end) break;
        next = Math.min(end, minOf(this.#world.map((event) => event.at)) ?? end);
      } else {
        quietSince = undefined;
        next = Math.min(nextWork, minOf(this.#world.map((event) => event.at)) ?? nextWork);
      }
      if (next > deadline) {
        timedOut = nextWork !== undefined;
        break;
      }
      if (next > now) this.#clock.advance(next - now);
      await this.#processDue();
    }
    return {
      simulatedMs: this.#clock.now() - startedAt,
      invocations: { ...this.invocations },
      failedDeliveries: [...this.failedDeliveries],
      timedOut,
      queue: { batches: this.queue.counts.batches, messages: this.queue.counts.sent, redelivered: this.#redelivered, deadLettered: [...this.queue.deadLettered] },
    };
  }

  /** Invokes a product function now, with Lambda's retries on failure, and everything that follows it observed. */
  async invokeNow(target: ProductFunction, input: unknown, origin = 'by hand'): Promise<unknown> {
    return this.#invoke({ at: this.#clock.now(), seq: this.#seq++, target, input, attempt: 1, origin, about: this.#aboutInput(input) });
  }

  /** The schedules pending in the Scheduler now (names). */
  async pendingSchedules(): Promise<string[]> {
    await this.#refreshSchedules(true);
    return [...this.#schedules.keys()];
  }

  /** Every instance's end state, compared with the right one for its fault. */
  async outcomes(): Promise<InstanceOutcome[]> {
    const messages = await publishedMessages(this.#env.motoUrl);
    const sent = this.#env.proxy.commands.sent();
    await this.#refreshSchedules(true);
    const schedules = [...this.#schedules.values()];
    const alarmPrefix = this.#env.stack.settings.alarms.prefix;
    const outcomes: InstanceOutcome[] = [];
    for (const instance of this.instances) {
      const { instanceId } = instance;
      const record = await this.#table.record(instanceId, instance.place);
      const mine = messages.filter((message) => message.attributes.instanceId === instanceId && aboutPlace(message, instance.place));
      const alerts = mine.filter((message) => message.attributes.event === 'alert');
      const recoveries = mine.filter((message) => message.attributes.event === 'recovery');
      const alarmNotifications = messages.filter(
        (message) =>
          message.attributes.event === undefined &&
          message.message.includes(`"AlarmName":"${alarmPrefix}-${instanceId}-`) &&
          message.message.includes(`"AWSAccountId":"${instance.place.account}"`),
      );
      const installs = sent.filter(
        (command) => command.instanceIds.includes(instanceId) && samePlace(command, instance.place) && command.documentName === this.#env.stack.settings.agentDocumentName,
      ).length;
      const status = record?.status ?? 'no record';
      const outcome: InstanceOutcome = {
        spec: instance.spec,
        instanceId,
        label: this.label(instance),
        record,
        status,
        definite: ['healthy', 'alerted', 'skipped', 'gone'].includes(status),
        diagnosis: record?.diagnosis?.code ?? record?.alertedDiagnosis ?? (record?.reason && status !== 'healthy' ? record.reason : undefined),
        alerts,
        recoveries,
        alarmNotifications,
        installs,
        // By the schedule's input (a batch check names its instances in `instanceIds`, not in its name).
        pendingSchedules: schedules
          .filter((schedule) => instanceIdsOf(schedule.input).includes(instanceId) && samePlace(placeOfInput(schedule.input, this.#env.hubPlace), instance.place))
          .map((schedule) => schedule.name),
        expected: expectedOutcome(instance.spec.fault),
        problems: [],
      };
      outcome.problems = judge(outcome);
      outcomes.push(outcome);
    }
    return outcomes;
  }

  // --- the world ---------------------------------------------------------------------------

  #addWorld(at: number, run: () => Promise<void>, recurring = false): void {
    this.#world.push({ at, seq: this.#seq++, recurring, run });
  }

  #ensureTick(): void {
    if (this.#tickRunning) return;
    this.#tickRunning = true;
    const tick = async (): Promise<void> => {
      const began = performance.now();
      await this.#publishAll();
      profile('publish', began);
      const alarms = performance.now();
      if (this.#options.evaluateAlarms) await this.#evaluateAlarms();
      profile('alarms', alarms);
      this.#addWorld(this.#clock.now() + minute, tick, true);
    };
    this.#addWorld(this.#clock.now() + minute, tick, true);
  }

  async #launchOne(spec: InstanceSpec, deliverRunningEvent = true): Promise<SimulatedInstance> {
    const place = spec.place ?? this.#env.hubPlace;
    const where = this.#accountRegion(place);
    let profileName: string | undefined;
    if (spec.fault === 'workload-profile' || spec.workloadProfilePolicies) {
      // A workload's own profile: by default its role has S3 read access and none of the agent's policies.
      const profile = await createWorkloadProfile(`${spec.name}-app`, {
        policies: spec.workloadProfilePolicies ?? ['arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess'],
        endpoint: this.#env.motoUrl,
        ...(where ? { in: where } : {}),
      });
      profileName = profile.profileName;
    }
    const launched = await launchInstance({
      os: spec.os,
      tags: spec.tags,
      endpoint: this.#env.motoUrl,
      ...(profileName ? { profileName } : {}),
      ...(where ? { in: where } : {}),
    });
    const ssm = this.#ssmOf(place);
    const instance: SimulatedInstance = {
      spec,
      instanceId: launched.instanceId,
      place,
      launchedAt: this.#clock.now(),
      online: false,
      commands: [],
      publishingSince: undefined,
      publishingUntil: undefined,
      terminated: false,
    };
    this.instances.push(instance);
    ssm.commands.setOutcome(instance.instanceId, ...spec.commandOutcomes);
    if (spec.agentAtLaunch) ssm.agents.set(instance.instanceId, spec.agentAtLaunch);
    this.#worldLine(
      instance,
      'launched',
      `${spec.fault === 'none' ? 'no fault' : `fault: ${spec.fault}`}${profileName ? `; profile ${profileName}` : ''}`,
    );
    if (deliverRunningEvent && this.#options.onboardDelivery === 'queue') {
      // The rule's SendMessage to the onboard queue, when EventBridge delivers the event.
      const at = this.#clock.now() + spec.eventDelayMs;
      const event = stateChangeEvent(instance.instanceId, 'running', new Date(at), place);
      this.queue.send({ body: JSON.stringify(event), instanceId: instance.instanceId, place, origin: 'EventBridge running' }, at);
    } else if (deliverRunningEvent) {
      this.#deliveries.push({
        at: this.#clock.now() + spec.eventDelayMs,
        seq: this.#seq++,
        target: 'onboard',
        input: undefined, // built at delivery, stamped with that time
        attempt: 1,
        origin: 'EventBridge running',
        about: [{ instanceId: instance.instanceId, place }],
      });
    }
    if (spec.onlineAfterMs !== undefined) {
      this.#addWorld(this.#clock.now() + spec.onlineAfterMs, async () => {
        if (instance.terminated) return;
        instance.online = true;
        ssm.ssm.register(instance.instanceId, { platformType: spec.os === 'windows' ? 'Windows' : 'Linux' });
        this.#worldLine(instance, 'ssm-online', 'the SSM agent registered (PingStatus Online)');
      });
    }
    return instance;
  }

  /** Terminates an instance in EC2 now; EventBridge's `terminated` event reaches offboard 2 s later. */
  async terminateNow(instanceId: string, place?: Place): Promise<void> {
    const instance = this.instance(instanceId, place);
    if (!instance) throw new Error(`${instanceId} is not an instance of this simulation`);
    await this.#terminate(instance);
  }

  async #terminate(instance: SimulatedInstance): Promise<void> {
    if (instance.terminated) return;
    instance.terminated = true;
    instance.publishingUntil = Math.min(instance.publishingUntil ?? Infinity, this.#clock.now());
    await this.#clientsOf(instance.place).ec2.send(new TerminateInstancesCommand({ InstanceIds: [instance.instanceId] }));
    // DescribeInstanceInformation "does not return information for nodes that are either Stopped or
    // Terminated" (API reference), and SendCommand refuses them.
    this.#ssmOf(instance.place).ssm.unregister(instance.instanceId);
    this.#worldLine(instance, 'terminated', 'TerminateInstances; EventBridge sends "terminated" to offboard');
    this.deliver('offboard', stateChangeEvent(instance.instanceId, 'terminated', new Date(), instance.place), {
      afterMs: 2000,
      origin: 'EventBridge terminated',
      instanceId: instance.instanceId,
    });
  }

  /** Notices install commands the product sent, and makes each instance's agent behave as its outcome says. */
  #observeCommands(): void {
    const sent: SentCommand[] = this.#env.proxy.commands.sent();
    for (const command of sent.slice(this.#commandsSeen)) {
      for (const instanceId of command.instanceIds) {
        const instance = this.instance(instanceId, command);
        if (!instance) continue;
        // How the command really ran on the instance, by the SSM agent's rules (the proxy's model).
        const invocation = this.#env.proxy.commands.invocation(command.commandId, instanceId);
        const status = invocation?.status ?? 'Success';
        instance.commands.push({ commandId: command.commandId, requestedAt: command.requestedAt.getTime(), status });
        const failedStep = invocation?.steps.find((step) => step.status === 'Failed' || step.status === 'TimedOut');
        const words = failedStep ? `${failedStep.status} at ${failedStep.name}` : status;
        this.#worldLineAt(command.requestedAt.getTime(), instance, 'command-runs', `${command.documentName} ${command.commandId.slice(0, 8)} on the instance: ${words}`);
        if (instance.commands.length === 1 && instance.spec.terminateAfterCommandMs !== undefined) {
          this.#addWorld(this.#clock.now() + instance.spec.terminateAfterCommandMs, () => this.#terminate(instance));
        }
        // The agent publishes once a configure step ran on an installed agent.
        const configured = invocation ? invocation.steps.some((step) => step.name === 'configureAgent' && step.status === 'Success' && step.statusDetails === 'Success') : true;
        if (status === 'Success' && configured && instance.publishingSince === undefined && instance.spec.agentStartMs !== undefined && !instance.terminated) {
          const start = command.requestedAt.getTime() + instance.spec.agentStartMs;
          instance.publishingSince = start;
          if (instance.spec.agentStopsAfterMs !== undefined) instance.publishingUntil = start + instance.spec.agentStopsAfterMs;
          this.#addWorld(start, async () => {
            if (instance.terminated) return;
            await this.#publish(instance);
            this.#worldLine(
              instance,
              'agent-publishes',
              `first datapoints of ${this.#published[instance.spec.os].map((metric) => metric.metricName).join(', ')}${
                instance.publishingUntil !== undefined ? `; the agent will stop at ${this.#clock.label(instance.publishingUntil)}` : ''
              }`,
            );
          });
        }
      }
    }
    this.#commandsSeen = sent.length;
  }

  #isPublishing(instance: SimulatedInstance, at: number): boolean {
    if (instance.terminated || instance.publishingSince === undefined || at < instance.publishingSince) return false;
    return instance.publishingUntil === undefined || at < instance.publishingUntil;
  }

  /** One collection interval of the agent: the {InstanceId} series of the deployed config, plus its full-dimension disk series. */
  async #publish(instance: SimulatedInstance): Promise<void> {
    const { namespace, data } = this.#datapointsOf(instance);
    await this.#putMetricData(instance.place, namespace, data);
  }

  /** Puts datapoints in a place's CloudWatch (moto), 1,000 a call, and notes when each series last got one. */
  async #putMetricData(place: Place, namespace: string, data: MetricDatum[]): Promise<void> {
    const { cloudwatch } = this.#clientsOf(place);
    for (let start = 0; start < data.length; start += maxDataPerPut) {
      await cloudwatch.send(new PutMetricDataCommand({ Namespace: namespace, MetricData: data.slice(start, start + maxDataPerPut) }));
    }
    for (const datum of data) {
      this.#lastDatapoint.set(seriesKey(place, namespace, datum.MetricName ?? '', datum.Dimensions ?? []), datum.Timestamp instanceof Date ? datum.Timestamp.getTime() : this.#clock.now());
    }
  }

  /** The datapoints of one collection interval of an instance's agent. */
  #datapointsOf(instance: SimulatedInstance): { namespace: string; data: MetricDatum[] } {
    const at = new Date(Math.floor(this.#clock.now() / 1000) * 1000);
    const instanceDimension = { Name: 'InstanceId', Value: instance.instanceId };
    const data: MetricDatum[] = [];
    for (const metric of this.#published[instance.spec.os]) {
      const value = metric.measures === 'disk-free-percent' ? 58 : metric.measures === 'memory-used-percent' ? 37 : 42;
      data.push({ MetricName: metric.metricName, Dimensions: [instanceDimension], Timestamp: at, Value: value, Unit: 'Percent' });
      if (metric.measures !== 'memory-used-percent') {
        // The per-disk series the agent also sends: a query on exactly {InstanceId} must not count it.
        const disk =
          instance.spec.os === 'windows'
            ? [{ Name: 'instance', Value: 'C:' }, { Name: 'objectname', Value: 'LogicalDisk' }]
            : [{ Name: 'path', Value: '/' }, { Name: 'fstype', Value: 'xfs' }];
        data.push({ MetricName: metric.metricName, Dimensions: [instanceDimension, ...disk], Timestamp: at, Value: value, Unit: 'Percent' });
      }
    }
    const namespace = this.#published[instance.spec.os][0]?.namespace ?? this.#env.stack.settings.metrics.namespace;
    return { namespace, data };
  }

  /**
   * Every publishing agent's datapoints of this minute. The agents of one place and namespace go
   * in shared PutMetricData calls (the simulator's own calls to moto, not the product's: what
   * CloudWatch stores is the same as with one call per agent, and a burst's fleet costs a few
   * calls a minute instead of one per instance).
   */
  async #publishAll(): Promise<void> {
    const now = this.#clock.now();
    const batches = new Map<string, { place: Place; namespace: string; data: MetricDatum[] }>();
    for (const instance of this.instances) {
      const wasPublishing = instance.publishingSince !== undefined && instance.publishingSince < now - minute && !instance.terminated;
      if (this.#isPublishing(instance, now)) {
        const { namespace, data } = this.#datapointsOf(instance);
        const key = `${placeLabel(instance.place)} ${namespace}`;
        const batch = batches.get(key) ?? { place: instance.place, namespace, data: [] };
        batch.data.push(...data);
        batches.set(key, batch);
      } else if (wasPublishing && instance.publishingUntil !== undefined && instance.publishingUntil > now - minute && instance.publishingUntil <= now) {
        this.#worldLine(instance, 'agent-stops', 'the agent stops publishing (no more datapoints)');
      }
    }
    for (const { place, namespace, data } of batches.values()) await this.#putMetricData(place, namespace, data);
  }

  /**
   * CloudWatch's part that moto lacks: the product's missing-data alarms (TreatMissingData
   * breaching) go to ALARM when their series had no datapoint for EvaluationPeriods x Period, and
   * back to OK when datapoints return; each change is published to the alarm's actions in
   * CloudWatch's notification format. Threshold alarms are not evaluated.
   */
  async #evaluateAlarms(): Promise<void> {
    const places = [this.#env.hubPlace];
    for (const instance of this.instances) if (!places.some((place) => samePlace(place, instance.place))) places.push(instance.place);
    for (const place of places) await this.#evaluateAlarmsIn(place);
  }

  /**
   * The product's alarms of one place, as moto holds them: read again only after the product put or
   * deleted alarms (its PutMetricAlarm / DeleteAlarms calls through the proxy), else the last read.
   */
  async #alarmsOf(place: Place): Promise<MetricAlarm[]> {
    const changes = this.#readCallLog().alarmWrites;
    const key = placeLabel(place);
    const known = this.#alarmsRead.get(key);
    if (known && known.changes === changes) return known.alarms;
    const { cloudwatch } = this.#clientsOf(place);
    const alarms: MetricAlarm[] = [];
    let token: string | undefined;
    do {
      const page = await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNamePrefix: `${this.#env.stack.settings.alarms.prefix}-`, NextToken: token }));
      alarms.push(...(page.MetricAlarms ?? []));
      token = page.NextToken;
    } while (token);
    this.#alarmsRead.set(key, { changes, alarms });
    return alarms;
  }

  /**
   * The alarms of one account and region, evaluated as that region's CloudWatch would. Whether a
   * series had a datapoint in the alarm's window is read from what the simulated agents put (the
   * only datapoints there are), matched on the exact dimension set as CloudWatch matches them:
   * querying moto's GetMetricData for every alarm each minute costs seconds a minute once a burst's
   * fleet publishes (moto scans every datapoint of the window once per query and period).
   */
  async #evaluateAlarmsIn(place: Place): Promise<void> {
    const { cloudwatch } = this.#clientsOf(place);
    const alarms = await this.#alarmsOf(place);
    const missingData = alarms.filter((alarm) => alarm.TreatMissingData === 'breaching' && alarm.Statistic === 'SampleCount' && alarm.AlarmName);
    if (missingData.length === 0) return;
    const now = this.#clock.now();
    for (const alarm of missingData) {
      const name = alarm.AlarmName as string;
      const key = `${placeLabel(place)} ${name}`;
      const windowStart = now - (alarm.Period ?? 60) * (alarm.EvaluationPeriods ?? 1) * 1000;
      const last = this.#lastDatapoint.get(seriesKey(place, alarm.Namespace ?? '', alarm.MetricName ?? '', alarm.Dimensions ?? []));
      const recent = last !== undefined && last >= windowStart && last <= now;
      // A new alarm starts as INSUFFICIENT_DATA; give it its evaluation window before judging.
      // (moto dates alarms with its own, real clock: the simulated time it was first seen counts.)
      const created = this.#alarmFirstSeen.get(key) ?? now;
      this.#alarmFirstSeen.set(key, created);
      const state: 'OK' | 'ALARM' = recent || created > windowStart ? 'OK' : 'ALARM';
      const previous = this.#alarmStates.get(key);
      if (previous === state || (previous === undefined && state === 'OK')) {
        this.#alarmStates.set(key, state);
        continue;
      }
      this.#alarmStates.set(key, state);
      const reason =
        state === 'ALARM'
          ? `Threshold Crossed: no datapoints were received for ${alarm.EvaluationPeriods} periods and ${alarm.EvaluationPeriods} missing datapoints were treated as [Breaching].`
          : 'Threshold Crossed: datapoints were received again.';
      await cloudwatch.send(new SetAlarmStateCommand({ AlarmName: name, StateValue: state, StateReason: reason }));
      const topics = (state === 'ALARM' ? alarm.AlarmActions : alarm.OKActions) ?? [];
      const regionName = regionNames[place.region] ?? place.region;
      const subject = `${state}: "${name}" in ${regionName}`;
      for (const topicArn of topics.filter((arn) => arn.startsWith('arn:aws:sns:'))) {
        await this.#sns.send(
          new PublishCommand({
            TopicArn: topicArn,
            Subject: subject.slice(0, 100),
            Message: JSON.stringify({
              AlarmName: name,
              AlarmDescription: alarm.AlarmDescription,
              NewStateValue: state,
              NewStateReason: reason,
              StateChangeTime: new Date(now).toISOString(),
              AWSAccountId: place.account,
              Region: regionName,
              OldStateValue: previous ?? 'INSUFFICIENT_DATA',
              Trigger: { MetricName: alarm.MetricName, Namespace: alarm.Namespace, Dimensions: alarm.Dimensions },
            }),
          }),
        );
      }
      const instanceId = alarm.Dimensions?.find((dimension) => dimension.Name === 'InstanceId')?.Value;
      const instance = instanceId ? this.instance(instanceId, place) : undefined;
      this.#line({ at: now, instanceId, subject: instance ? this.label(instance) : name, source: 'alarm', step: `alarm ${state}`, detail: `${name}: ${reason}` });
    }
  }

  // --- the Scheduler and Lambda -----------------------------------------------------------

  /**
   * Lists the Scheduler's schedules again when the product wrote one since the last listing (its
   * Create/Update/DeleteSchedule calls through the proxy), or always with `force` (schedules made
   * in moto by other means). The simulator's own deletions update what it knows as it makes them.
   */
  async #refreshSchedules(force = false): Promise<void> {
    const writes = this.#readCallLog().scheduleWrites;
    if (!force && this.#schedulesListedAt === writes) return;
    const began = performance.now();
    try {
      await this.#refreshSchedulesNow();
      this.#schedulesListedAt = writes;
    } finally {
      profile('refresh-schedules', began);
    }
  }

  async #refreshSchedulesNow(): Promise<void> {
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const page = await this.#scheduler.send(new ListSchedulesCommand({ GroupName: this.#env.stack.settings.scheduleGroup, NextToken: token }));
      for (const summary of page.Schedules ?? []) if (summary.Name) names.add(summary.Name);
      token = page.NextToken;
    } while (token);
    for (const name of this.#schedules.keys()) if (!names.has(name)) this.#schedules.delete(name);
    const { settings } = this.#env.stack;
    for (const name of names) {
      if (this.#schedules.has(name)) continue;
      const schedule = await this.#scheduler.send(new GetScheduleCommand({ Name: name, GroupName: settings.scheduleGroup }));
      const at = /^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$/.exec(schedule.ScheduleExpression ?? '');
      if (!at?.[1]) throw new Error(`schedule ${name}: not a one-time at(...) expression: ${schedule.ScheduleExpression}`);
      const timezone = schedule.ScheduleExpressionTimezone ?? 'UTC';
      if (timezone !== 'UTC') throw new Error(`schedule ${name}: the simulator reads at(...) in UTC only, got ${timezone}`);
      const targetArn = schedule.Target?.Arn ?? '';
      const target: ProductFunction | undefined =
        targetArn === settings.onboardFunctionArn ? 'onboard' : targetArn === settings.checkFunctionArn ? 'check' : undefined;
      this.#schedules.set(name, {
        name,
        dueAt: Date.parse(`${at[1]}Z`),
        deleteAfterRun: schedule.ActionAfterCompletion === 'DELETE',
        enabled: schedule.State !== 'DISABLED',
        ran: false,
        target,
        targetArn,
        input: JSON.parse(schedule.Target?.Input ?? '{}'),
      });
    }
  }

  async #fireSchedule(schedule: KnownSchedule): Promise<void> {
    // Scheduler deletes a one-time schedule after its run only with ActionAfterCompletion DELETE
    // ("Configuring automatic deletion", Scheduler user guide); with NONE it stays, and piles up.
    if (schedule.deleteAfterRun) {
      await this.#scheduler.send(new DeleteScheduleCommand({ Name: schedule.name, GroupName: this.#env.stack.settings.scheduleGroup })).catch(() => undefined);
      this.#schedules.delete(schedule.name);
    } else {
      schedule.ran = true;
    }
    if (!schedule.target) {
      this.#line({ at: this.#clock.now(), instanceId: undefined, subject: schedule.name, source: 'lambda', step: 'unknown-target', detail: `schedule targets ${schedule.targetArn}, which is none of the product's functions` });
      return;
    }
    await this.#invoke({
      at: this.#clock.now(),
      seq: this.#seq++,
      target: schedule.target,
      input: schedule.input,
      attempt: 1,
      origin: `schedule ${schedule.name}`,
      about: await this.#aboutScheduled(schedule.input),
    });
  }

  /**
   * Lambda's on-failure destination (the stack sends every function's to the alert topic): after the
   * last retry Lambda publishes an invocation record ("Capturing records of Lambda asynchronous
   * invocations", Lambda developer guide: requestContext.condition RetriesExhausted,
   * approximateInvokeCount, requestPayload, responsePayload with errorType and errorMessage).
   */
  async #sendInvocationRecord(delivery: Delivery, input: unknown, message: string): Promise<void> {
    const functionName = `cw-agent-autopilot-${delivery.target}`;
    const [errorType, ...rest] = message.split(': ');
    const record = {
      version: '1.0',
      timestamp: new Date(this.#clock.now()).toISOString(),
      requestContext: {
        requestId: `sim-${delivery.seq}`,
        functionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}:$LATEST`,
        condition: 'RetriesExhausted',
        approximateInvokeCount: delivery.attempt,
      },
      requestPayload: input,
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorType, errorMessage: rest.join(': ') },
    };
    await this.#sns.send(new PublishCommand({ TopicArn: this.#env.stack.alertTopicArn, Message: JSON.stringify(record) }));
  }

  async #invoke(delivery: Delivery): Promise<unknown> {
    const [first] = delivery.about;
    const input = delivery.input ?? (first ? stateChangeEvent(first.instanceId, 'running', new Date(), first.place) : undefined);
    delivery.input = input;
    const handler = this.#env.handlers[delivery.target];
    this.invocations[delivery.target] += 1;
    let result: unknown;
    const began = performance.now();
    try {
      result = await handler(input, lambdaContext(`cw-agent-autopilot-${delivery.target}`));
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const retries = this.#options.lambdaRetries;
      const dropped = delivery.attempt > retries;
      this.failedDeliveries.push({ target: delivery.target, input, origin: delivery.origin, attempt: delivery.attempt, error: message, dropped });
      const retryAt = this.#clock.now() + (delivery.attempt === 1 ? 1 : 2) * minute;
      if (!dropped) this.#deliveries.push({ ...delivery, at: retryAt, seq: this.#seq++, attempt: delivery.attempt + 1 });
      else await this.#sendInvocationRecord(delivery, input, message);
      this.#line({
        at: this.#clock.now(),
        ...this.#subjectOf(delivery.about, delivery.target),
        source: 'lambda',
        step: `${delivery.target} failed`,
        detail: `${truncate(message, 160)}; ${dropped ? `Lambda gave up after ${delivery.attempt} attempts (event lost)` : `Lambda retries at ${this.#clock.label(retryAt)}`}`,
      });
    }
    profile(`invoke ${delivery.target}`, began);
    const after = performance.now();
    await this.#afterInvocation(delivery.about);
    profile('after-invocation', after);
    return result;
  }

  /**
   * The event source mapping invokes onboard with a batch of the queue (synchronously, as it
   * does), then deletes the messages the answer does not return.
   */
  async #invokeBatch(batch: QueueBatch): Promise<void> {
    const event = this.queue.eventOf(batch);
    const about: InstanceRef[] = [];
    for (const message of batch.messages) {
      if (message.instanceId && !about.some((ref) => ref.instanceId === message.instanceId && samePlace(ref.place, message.place))) {
        about.push({ instanceId: message.instanceId, place: message.place });
      }
    }
    const redelivered = batch.messages.filter((message) => message.receiveCount > 1).length;
    this.#redelivered += redelivered;
    this.invocations.onboard += 1;
    const began = performance.now();
    let answer: { error: string } | { response: unknown };
    try {
      answer = { response: await this.#env.handlers.onboard(event, lambdaContext('cw-agent-autopilot-onboard')) };
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      answer = { error: message };
      const attempt = Math.max(...batch.messages.map((queued) => queued.receiveCount));
      this.failedDeliveries.push({ target: 'onboard', input: event, origin: `onboard queue batch ${batch.number}`, attempt, error: message, dropped: false });
    }
    const settled = this.queue.settle(batch, answer);
    const back = settled.returned.length;
    const visibleAgain = minOf(settled.returned.map((message) => message.visibleAt));
    this.#line({
      at: batch.closedAt,
      ...this.#subjectOf(about, 'onboard queue'),
      source: settled.wholeBatch ? 'lambda' : 'queue',
      step: settled.wholeBatch ? 'queue batch failed' : 'queue batch',
      detail:
        `batch ${batch.number}: ${batch.messages.length} message(s), closed by the ${batch.closedBy}${redelivered ? `, ${redelivered} delivered again` : ''}; ` +
        (settled.wholeBatch ? `${truncate(settled.wholeBatch, 140)}: all ${back} back in the queue` : `${settled.deleted} deleted, ${back} back in the queue (batchItemFailures)`) +
        (visibleAgain !== undefined ? `, visible again at ${this.#clock.label(visibleAgain)}` : ''),
    });
    profile('invoke onboard batch', began);
    const after = performance.now();
    await this.#afterInvocation(about);
    profile('after-invocation', after);
  }

  /** A timeline line's instance fields: one instance's label, or `fallback` with every instance listed. */
  #subjectOf(about: InstanceRef[], fallback: string): Pick<TimelineEntry, 'instanceId' | 'instanceIds' | 'subject'> {
    const [only] = about;
    if (only && about.length === 1) {
      const instance = this.instance(only.instanceId, only.place);
      return { instanceId: only.instanceId, subject: instance ? this.label(instance) : only.instanceId };
    }
    return { instanceId: undefined, ...(about.length > 0 ? { instanceIds: about.map((ref) => ref.instanceId) } : {}), subject: about.length > 0 ? `${fallback} (${about.length} instances)` : fallback };
  }

  async #afterInvocation(about: InstanceRef[]): Promise<void> {
    if (about.length === 1 && about[0]) await this.#printHistory(about[0], await this.#table.record(about[0].instanceId, about[0].place));
    else if (about.length > 1) {
      const records = await this.#table.records(about);
      for (const ref of about) await this.#printHistory(ref, records.get(recordKeyOf(ref.place, ref.instanceId)));
    }
    this.#observeCommands();
    await this.#printNewMessages();
  }

  async #printHistory({ instanceId, place }: InstanceRef, record: OnboardingRecord | undefined): Promise<void> {
    if (!record) return;
    const instance = this.instance(instanceId, place);
    const printedKey = `${placeLabel(place)} ${instanceId}`;
    const seen = this.#printed.get(printedKey) ?? new Set<string>();
    this.#printed.set(printedKey, seen);
    for (const entry of record.history) {
      const key = `${entry.at}|${entry.step}|${entry.detail ?? ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      this.#line({
        at: Date.parse(entry.at),
        instanceId,
        subject: instance ? this.label(instance) : instanceId,
        source: 'product',
        step: entry.step,
        detail: entry.detail ?? '',
      });
    }
  }

  /**
   * The product's alerts and recoveries published since the last look, as its Publish calls
   * through the proxy carried them (subject and attributes; moto stored them as sent). Reading
   * them from the call log spares a dump of moto's whole state (`/moto-api/data.json`, seconds
   * once a burst's fleet is in it) after every invocation that published.
   */
  async #printNewMessages(): Promise<void> {
    this.#readCallLog();
    const published = this.#newPublishes.splice(0);
    for (const { subject, attributes } of published) {
      if (attributes.event === undefined) continue;
      const message = { attributes } as Pick<PublishedMessage, 'attributes'>;
      const instance = this.instances.find((candidate) => candidate.instanceId === attributes.instanceId && aboutPlace(message, candidate.place));
      this.#line({
        at: this.#clock.now(),
        instanceId: instance?.instanceId,
        subject: instance ? this.label(instance) : (attributes.instanceId ?? 'sns'),
        source: 'alert',
        step: attributes.event === 'recovery' ? 'RECOVERY' : 'ALERT',
        detail: subject ?? '',
      });
    }
  }

  async #processDue(): Promise<void> {
    for (;;) {
      const now = this.#clock.now();
      const world = this.#world.filter((event) => event.at <= now).sort(byTime)[0];
      if (world) {
        this.#world = this.#world.filter((event) => event !== world);
        await world.run();
        continue;
      }
      const delivery = this.#deliveries.filter((candidate) => candidate.at <= now).sort(byTime)[0];
      if (delivery) {
        this.#deliveries = this.#deliveries.filter((candidate) => candidate !== delivery);
        await this.#invoke(delivery);
        await this.#refreshSchedules();
        continue;
      }
      const { batch, deadLettered } = this.queue.take(now);
      for (const dead of deadLettered) {
        this.#line({
          at: dead.at,
          ...this.#subjectOf(dead.instanceId ? [{ instanceId: dead.instanceId, place: dead.place }] : [], 'onboard queue'),
          source: 'queue',
          step: 'dead-lettered',
          detail: `message ${dead.messageId.slice(-8)} (${dead.origin}) received ${dead.receiveCount} times (maxReceiveCount): SQS moved it to ${this.queue.settings.deadLetterQueueName}`,
        });
      }
      if (batch) {
        await this.#invokeBatch(batch);
        await this.#refreshSchedules();
        continue;
      }
      const schedule = [...this.#schedules.values()]
        .filter((candidate) => isDue(candidate) && candidate.dueAt <= now)
        .sort((a, b) => a.dueAt - b.dueAt || this.#order(a) - this.#order(b))[0];
      if (schedule) {
        await this.#fireSchedule(schedule);
        await this.#refreshSchedules();
        continue;
      }
      return;
    }
  }

  /**
   * Reads the product's calls made since the last time: its SNS publishes (for the timeline), and
   * counts of the calls that change what the simulator must read again (alarm and schedule writes).
   */
  #readCallLog(): CallLogCounts {
    const log = this.#callLog;
    // The proxy was reset (its log is shorter than what was read): start again from its first call.
    if (this.#env.proxy.callCount() < log.read) log.read = 0;
    const calls = this.#env.proxy.callsSince(log.read);
    for (const call of calls) {
      if (call.service === 'sns' && call.operation === 'Publish' && call.status === 200) {
        if (call.published) this.#newPublishes.push(call.published);
      }
      else if (call.service === 'monitoring' && (call.operation === 'PutMetricAlarm' || call.operation === 'DeleteAlarms')) log.alarmWrites += 1;
      else if (call.service === 'scheduler' && /^(Create|Update|Delete)Schedule$/.test(call.operation)) log.scheduleWrites += 1;
    }
    log.read += calls.length;
    return log;
  }

  /** Schedules due at the same second fire in fleet order (instance ids are random; names are not). */
  #order(schedule: KnownSchedule): number {
    const [instanceId] = instanceIdsOf(schedule.input);
    const place = placeOfInput(schedule.input, this.#env.hubPlace);
    const index = this.instances.findIndex((instance) => instance.instanceId === instanceId && samePlace(instance.place, place));
    return index < 0 ? Number.MAX_SAFE_INTEGER : index;
  }

  #worldLine(instance: SimulatedInstance | undefined, step: string, detail: string): void {
    this.#worldLineAt(this.#clock.now(), instance, step, detail);
  }

  #worldLineAt(at: number, instance: SimulatedInstance | undefined, step: string, detail: string): void {
    this.#line({
      at,
      instanceId: instance?.instanceId,
      subject: instance ? this.label(instance) : 'world',
      source: 'world',
      step,
      detail,
    });
  }

  #line(entry: TimelineEntry): void {
    this.timeline.push(entry);
    this.#options.onTimeline?.(entry);
  }
}

/** Wall time spent per activity, when SIMULATOR_PROFILE is set (printed by {@link profileReport}). */
const profiled = new Map<string, { count: number; ms: number }>();
function profile(name: string, began: number): void {
  if (!process.env.SIMULATOR_PROFILE) return;
  const entry = profiled.get(name) ?? { count: 0, ms: 0 };
  entry.count += 1;
  entry.ms += performance.now() - began;
  profiled.set(name, entry);
}

/** Where the wall time went (SIMULATOR_PROFILE=1). */
export function profileReport(): string {
  return [...profiled].map(([name, { count, ms }]) => `${name}: ${count} x, ${Math.round(ms)} ms`).join('; ');
}

/** Where the simulator is in the proxy's call log, and the product's calls it counted there. */
interface CallLogCounts {
  read: number;
  alarmWrites: number;
  scheduleWrites: number;
}

/** PutMetricData takes at most 1,000 datapoints a call (CloudWatch API reference). */
const maxDataPerPut = 1000;

/** A series as CloudWatch matches it: place, namespace, metric name and the exact dimension set. */
function seriesKey(place: Place, namespace: string, metricName: string, dimensions: readonly { Name?: string | undefined; Value?: string | undefined }[]): string {
  const dims = dimensions.map((dimension) => `${dimension.Name}=${dimension.Value}`).sort();
  return `${placeLabel(place)}|${namespace}|${metricName}|${dims.join(',')}`;
}

function byTime(a: { at: number; seq: number }, b: { at: number; seq: number }): number {
  return a.at - b.at || a.seq - b.seq;
}

function minOf(values: number[]): number | undefined {
  return values.length ? Math.min(...values) : undefined;
}

function truncate(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 3)}...`;
}

/** The instance an invocation's input is about: `{ instanceId }` or a state-change event. */
export /** A schedule the Scheduler will still run: enabled and not yet run. */
function isDue(schedule: KnownSchedule): boolean {
  return schedule.enabled && !schedule.ran;
}

/**
 * Where the instance of an input lives: an event's `account` and `region`, or the product's own
 * input's (schedules carry them outside the hub's place); else the hub's.
 */
function placeOfInput(input: unknown, hubPlace: Place): Place {
  if (typeof input !== 'object' || input === null) return hubPlace;
  const { account, region } = input as { account?: unknown; region?: unknown };
  return typeof account === 'string' && typeof region === 'string' ? { account, region } : hubPlace;
}

/**
 * Whether a published message is about an instance of `place`: its `account` and `region`
 * attributes (the payload's envelope: the instance's place) when it has them, else yes. Instance
 * ids are unique per account only.
 */
function aboutPlace(message: Pick<PublishedMessage, 'attributes'>, place: Place): boolean {
  const { account, region } = message.attributes;
  if (account === undefined || region === undefined) return true;
  return account === place.account && region === place.region;
}

/** The region names CloudWatch writes in alarm notifications (the regions the simulations use). */
const regionNames: Record<string, string> = {
  'us-east-1': 'US East (N. Virginia)',
  'us-west-2': 'US West (Oregon)',
  'eu-west-1': 'EU (Ireland)',
  'eu-central-1': 'EU (Frankfurt)',
  'ap-southeast-2': 'Asia Pacific (Sydney)',
};

/**
 * The instances an invocation's input is about: `{ instanceId }`, a batch check's
 * `{ instanceIds: [...] }`, a state-change event, or an SQS batch of state-change events.
 */
export function instanceIdsOf(input: unknown): string[] {
  if (typeof input !== 'object' || input === null) return [];
  const value = input as { instanceId?: unknown; instanceIds?: unknown; detail?: { 'instance-id'?: unknown }; 'detail-type'?: unknown; Records?: unknown };
  if (Array.isArray(value.instanceIds)) return value.instanceIds.filter((id): id is string => typeof id === 'string');
  if (typeof value.instanceId === 'string') return [value.instanceId];
  if (value['detail-type'] === stateEventDetailType && typeof value.detail?.['instance-id'] === 'string') return [value.detail['instance-id']];
  if (Array.isArray(value.Records)) {
    return value.Records.flatMap((record: unknown) => {
      const body = typeof record === 'object' && record !== null ? (record as { body?: unknown }).body : undefined;
      if (typeof body !== 'string') return [];
      try {
        return instanceIdsOf(JSON.parse(body));
      } catch {
        return [];
      }
    });
  }
  return [];
}

/** Whether an input is an EC2 state-change event for `state`. */
function isStateChange(input: unknown, state: string): boolean {
  if (typeof input !== 'object' || input === null) return false;
  const value = input as { 'detail-type'?: unknown; detail?: { state?: unknown } };
  return value['detail-type'] === stateEventDetailType && value.detail?.state === state;
}

/** Whether a timeline line is about an instance: its own line, or a batch's that lists it. */
export function isAbout(entry: TimelineEntry, instanceId: string): boolean {
  return entry.instanceId === instanceId || (entry.instanceIds?.includes(instanceId) ?? false);
}

/** What differs between an instance's end state and the expected one; empty when it is right. */
export function judge(outcome: InstanceOutcome): string[] {
  const problems: string[] = [];
  const { expected } = outcome;
  if (outcome.status !== expected.status) problems.push(`status ${outcome.status}, expected ${expected.status}`);
  const alertCodes = outcome.alerts.map((alert) => alert.attributes.diagnosis ?? '?');
  if (expected.alert === undefined || expected.alert === 'missing-data-alarm') {
    if (alertCodes.length > 0) problems.push(`unexpected alert(s): ${alertCodes.join(', ')}`);
  } else {
    if (alertCodes.length === 0) problems.push(`no alert, expected one with diagnosis ${expected.alert}`);
    else if (alertCodes.length > 1) problems.push(`${alertCodes.length} alerts (${alertCodes.join(', ')}), expected exactly one`);
    else if (alertCodes[0] !== expected.alert) problems.push(`alert diagnosis ${alertCodes[0]}, expected ${expected.alert}`);
    if (expected.alertMentions && outcome.alerts[0] && !outcome.alerts[0].message.includes(expected.alertMentions)) {
      problems.push(`the alert does not name ${expected.alertMentions}`);
    }
  }
  const missingAlarm = outcome.alarmNotifications.some((message) => message.subject.startsWith('ALARM') && message.message.includes('-missing'));
  if (expected.alert === 'missing-data-alarm' && !missingAlarm) problems.push('no missing-data alarm went off');
  if (expected.alert !== 'missing-data-alarm' && missingAlarm) problems.push('a missing-data alarm went off');
  const reinstalls = outcome.record?.reinstalls ?? 0;
  if (outcome.installs > 0 && outcome.installs !== 1 + reinstalls) {
    problems.push(`${outcome.installs} install commands sent, the record accounts for ${1 + reinstalls}`);
  }
  if (outcome.definite && outcome.pendingSchedules.length > 0) problems.push(`schedules left pending: ${outcome.pendingSchedules.join(', ')}`);
  return problems;
}

export { stateEventDetailType };
