// A launch burst, as an Auto Scaling scale-out makes one: 200 instances within 60 simulated seconds,
// Linux and Windows, about 10% of them faulty, some with a workload's own instance profile (one
// whose role lacks the agent's policies, one that has them). Their running events reach the real
// onboard handler through the onboard queue in batches, as deployed, and every call the product
// makes draws on the account's API token buckets. Every instance must end where it should, with one
// alert per faulty launch and no second install, and no throttling error may get past the retries.
import { beforeAll, describe, expect, it } from 'vitest';
import { DescribeIamInstanceProfileAssociationsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { localClientConfig } from '../harness/client-config.js';
import { agentManagedPolicies } from '../harness/stack.js';
import { FleetSimulator, profileReport, type InstanceOutcome, type RunReport } from '../simulator/fleet-simulator.js';
import { publishedMessages, type PublishedMessage } from '../simulator/moto-state.js';
import { SeededRandom } from '../simulator/random.js';
import { planInstance, type InstanceFault, type InstanceSpec } from '../simulator/scenarios.js';
import { useSimulation } from '../simulator/vitest-simulation.js';

const simulation = useSimulation();

const size = 200;
const spreadMs = 60_000;
/** The faults the simulator offers that are failures of a launch (not a workload profile: that one is set below). */
const faults: InstanceFault[] = [
  'never-online',
  'online-late',
  'install-fails',
  'install-fails-once',
  'configure-fails',
  'agent-never-publishes',
  'agent-stops-publishing',
  'terminated-mid-onboarding',
  'older-agent-from-distributor',
  'opt-out',
];
const s3ReadOnly = 'arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess';
const compliantPolicies = [...agentManagedPolicies, s3ReadOnly];

/**
 * The burst: one launch every 300 ms; every 4th instance Windows; every 10th faulty (20, each fault
 * twice, once on each OS); 10 with a workload profile lacking the agent's policies, 10 with a
 * compliant one.
 */
function burstFleet(): InstanceSpec[] {
  const random = new SeededRandom('burst-200');
  const specs: InstanceSpec[] = [];
  for (let i = 0; i < size; i++) {
    const os = i % 4 === 1 ? 'windows' : 'linux';
    const launchAfterMs = Math.round((i * spreadMs) / size);
    if (i % 10 === 7) {
      const fault = faults[Math.floor(i / 10) % faults.length] as InstanceFault;
      // Each fault once on Linux and once on Windows (the first and second time it comes round).
      const faultOs = Math.floor(i / 100) === 0 ? 'linux' : 'windows';
      specs.push(planInstance({ name: `${fault}-${i}`, os: faultOs, fault, launchAfterMs }, random));
    } else if (i % 20 === 3) {
      specs.push(planInstance({ name: `workload-${i}`, os, fault: 'workload-profile', launchAfterMs }, random));
    } else if (i % 20 === 13) {
      specs.push({ ...planInstance({ name: `compliant-${i}`, os, fault: 'none', launchAfterMs }, random), workloadProfilePolicies: compliantPolicies });
    } else {
      specs.push(planInstance({ name: `${os === 'windows' ? 'win' : 'web'}-${i}`, os, fault: 'none', launchAfterMs }, random));
    }
  }
  return specs;
}

const throttling = /RequestLimitExceeded|Throttl|Rate exceeded|TooManyRequests|SlowDown/i;

/**
 * Every bucket at its register figure but CloudWatch's PutMetricAlarm (3 a second, register N8),
 * lifted here. The checker puts 4 alarms per instance it finds healthy, unpaced: about 750 for this
 * burst, over four minutes of the account's whole PutMetricAlarm rate. The simulator runs the
 * checks one after the other and the SDK's back-off sleeps in real time, so that quota would be
 * played out in wall time (measured here for 200 healthy launches: 447 s with it, 116 s without),
 * while this test is about the onboarding's calls (EC2, Systems Manager, IAM, Scheduler).
 * Concurrent checks on AWS would meet throttling there: a gap of the product, not tested here.
 */
const bucketFigures = { 'monitoring:PutMetricAlarm': { capacity: 1000, refillPerSecond: 1000 } };

let simulator: FleetSimulator;
let report: RunReport;
let outcomes: InstanceOutcome[];
let messages: PublishedMessage[];
let wallSeconds: number;

beforeAll(async () => {
  const began = performance.now();
  simulator = new FleetSimulator(simulation.environment, simulation.clock, { onboardDelivery: 'queue', apiBuckets: { figures: bucketFigures } });
  simulator.launch(burstFleet());
  report = await simulator.run();
  outcomes = await simulator.outcomes();
  messages = await publishedMessages(simulation.environment.motoUrl);
  wallSeconds = (performance.now() - began) / 1000;
  if (process.env.BURST_E2E_REPORT) {
    const throttled = (simulator.buckets?.stats() ?? []).filter((bucket) => bucket.throttles > 0).map((bucket) => `${bucket.bucket} ${bucket.throttles}/${bucket.calls}`);
    const perInstance = new Map<string, number>();
    for (const call of simulation.environment.proxy.calls()) if (call.status === 200) perInstance.set(`${call.service}:${call.operation}`, (perInstance.get(`${call.service}:${call.operation}`) ?? 0) + 1);
    const calls = [...perInstance].filter(([api]) => /^(ec2|ssm|iam|scheduler|monitoring):/.test(api)).map(([api, n]) => `${api} ${(n / size).toFixed(2)}`);
    console.log(
      `burst e2e: ${wallSeconds.toFixed(1)} s wall, ${Math.round(report.simulatedMs / 60_000)} simulated minutes; invocations ${JSON.stringify(report.invocations)}; ` +
        `queue ${report.queue.batches} batches, ${report.queue.messages} messages, ${report.queue.redelivered} delivered again; throttled attempts: ${throttled.join(', ') || 'none'}\n` +
        `calls per instance: ${calls.join(', ')}` +
        (process.env.SIMULATOR_PROFILE ? `\nwall time: ${profileReport()}` : ''),
    );
  }
}, 600_000);

const faultyLaunch = (outcome: InstanceOutcome) => outcome.expected.alert !== undefined && outcome.expected.alert !== 'missing-data-alarm';
const outcomeOf = (name: string) => {
  const found = outcomes.find((outcome) => outcome.spec.name === name);
  if (!found) throw new Error(`no instance ${name}`);
  return found;
};

describe('a burst of 200 launches within a minute, through the onboard queue and within the API buckets', () => {
  it('the fleet is the burst it should be: 200 launches within 60 s, both OSes, ~10% faulty, both kinds of workload profile', () => {
    expect(outcomes).toHaveLength(size);
    const launched = simulator.instances.map((instance) => instance.launchedAt);
    expect(Math.max(...launched) - Math.min(...launched)).toBeLessThan(spreadMs);
    expect(new Set(outcomes.map((outcome) => outcome.spec.os))).toEqual(new Set(['linux', 'windows']));
    expect(outcomes.filter((outcome) => outcome.spec.fault !== 'none' && outcome.spec.fault !== 'workload-profile')).toHaveLength(20);
    expect(outcomes.filter((outcome) => outcome.spec.fault === 'workload-profile')).toHaveLength(10);
    expect(outcomes.filter((outcome) => outcome.spec.workloadProfilePolicies)).toHaveLength(10);
  });

  it('the running events went through the queue in batches, every message was processed, none was dead-lettered', () => {
    expect(report.timedOut).toBe(false);
    expect(report.queue.messages).toBe(size);
    // 200 launches over a minute, a 10 s batching window: a handful of batches, not one invocation per launch.
    expect(report.queue.batches).toBeGreaterThan(1);
    expect(report.queue.batches).toBeLessThan(size / 10);
    expect(simulator.queue.waiting()).toEqual([]);
    // Each instance's timeline shows the batch that brought its event.
    for (const instance of simulator.instances) {
      expect(simulator.timelineOf(instance.instanceId).filter((entry) => entry.step === 'queue batch').length, simulator.label(instance)).toBeGreaterThanOrEqual(1);
    }
    expect(report.queue.deadLettered).toEqual([]);
    expect(simulator.timeline.filter((entry) => entry.step === 'dead-lettered')).toEqual([]);
  });

  it('the product\'s calls drew on the account buckets (the buckets were on)', () => {
    const stats = simulator.buckets?.stats() ?? [];
    const calls = (bucket: string) => stats.filter((entry) => entry.bucket === bucket).reduce((sum, entry) => sum + entry.calls, 0);
    expect(calls('ec2:AssociateIamInstanceProfile')).toBeGreaterThanOrEqual(outcomes.filter((outcome) => !outcome.spec.workloadProfilePolicies && outcome.spec.fault !== 'workload-profile' && outcome.spec.fault !== 'opt-out').length);
    expect(calls('ssm:SendCommand')).toBeGreaterThan(0);
  });

  it('every instance ends where it should: healthy, or alerted with the right diagnosis (or gone, or skipped)', () => {
    expect(outcomes.flatMap((outcome) => outcome.problems.map((problem) => `${outcome.label} [${outcome.spec.fault}]: ${problem}`))).toEqual([]);
    expect(outcomes.filter((outcome) => !outcome.definite).map((outcome) => `${outcome.label}: ${outcome.status}`)).toEqual([]);
    for (const outcome of outcomes) expect(outcome.pendingSchedules, outcome.label).toEqual([]);
  });

  it('exactly one alert per faulty launch, none for the others, and no alert the product did not mean', () => {
    for (const outcome of outcomes) expect(outcome.alerts.length, outcome.label).toBe(faultyLaunch(outcome) ? 1 : 0);
    const alerts = messages.filter((message) => message.attributes.event === 'alert');
    expect(alerts).toHaveLength(outcomes.filter(faultyLaunch).length);
    // Lambda's invocation records (an on-failure destination) carry no event attribute and name a requestContext.
    expect(messages.filter((message) => message.message.includes('"requestContext"'))).toEqual([]);
  });

  it('one install command per instance, unless its diagnosis calls for a reinstall', () => {
    // A failed command (install or configure step) is sent again by each check, up to CHECK_MAX_ATTEMPTS.
    const max = simulation.environment.stack.settings.checkMaxAttempts;
    const expectedInstalls: Partial<Record<InstanceFault, number>> = { 'never-online': 0, 'opt-out': 0, 'install-fails': max, 'configure-fails': max, 'install-fails-once': 2 };
    for (const outcome of outcomes) {
      expect(outcome.installs, `${outcome.label} [${outcome.spec.fault}]`).toBe(expectedInstalls[outcome.spec.fault] ?? 1);
      expect(outcome.installs, outcome.label).toBe(outcome.installs === 0 ? 0 : 1 + (outcome.record?.reinstalls ?? 0));
    }
  });

  it('no throttling error got past the retries: no failed invocation, no recorded error, no alert about throttling', () => {
    expect(report.failedDeliveries.map((failure) => `${failure.origin}: ${failure.error}`)).toEqual([]);
    for (const outcome of outcomes) {
      expect(outcome.record?.lastError ?? '', outcome.label).not.toMatch(throttling);
      const throttledSteps = (outcome.record?.history ?? []).filter((entry) => throttling.test(`${entry.step} ${entry.detail ?? ''}`));
      expect(throttledSteps, outcome.label).toEqual([]);
    }
    expect(messages.filter((message) => throttling.test(message.message)).map((message) => message.subject)).toEqual([]);
  });

  it('workload profiles are kept: never replaced; a role lacking the agent policies gets them, a compliant one is left as it was', async () => {
    const ec2 = new EC2Client(localClientConfig(simulation.environment.motoUrl));
    const iam = new IAMClient(localClientConfig(simulation.environment.motoUrl));
    try {
      const profiled = outcomes.filter((outcome) => outcome.spec.fault === 'workload-profile' || outcome.spec.workloadProfilePolicies);
      expect(profiled).toHaveLength(20);
      for (const outcome of profiled) {
        const associations = await ec2.send(new DescribeIamInstanceProfileAssociationsCommand({ Filters: [{ Name: 'instance-id', Values: [outcome.instanceId] }] }));
        expect(associations.IamInstanceProfileAssociations?.map((association) => association.IamInstanceProfile?.Arn), outcome.label).toEqual([
          expect.stringMatching(new RegExp(`instance-profile/${outcome.spec.name}-app$`)),
        ]);
        const policies = (await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: `${outcome.spec.name}-app` }))).AttachedPolicies?.map((policy) => policy.PolicyArn);
        if (outcome.spec.workloadProfilePolicies) expect(policies?.sort(), outcome.label).toEqual([...compliantPolicies].sort());
        else expect(policies?.sort(), outcome.label).toEqual([...agentManagedPolicies, s3ReadOnly].sort());
      }
      expect(outcomeOf('compliant-13').status).toBe('healthy');
    } finally {
      ec2.destroy();
      iam.destroy();
    }
  });

  it('AssociateIamInstanceProfile succeeded exactly once for each instance launched without a profile, and was never called for the others', () => {
    const associations = simulation.environment.proxy.calls().filter((call) => call.service === 'ec2' && call.operation === 'AssociateIamInstanceProfile');
    for (const outcome of outcomes) {
      const mine = associations.filter((call) => call.instanceIds?.includes(outcome.instanceId));
      const withoutProfile = outcome.spec.fault !== 'workload-profile' && !outcome.spec.workloadProfilePolicies;
      if (withoutProfile && outcome.spec.fault !== 'opt-out') expect(mine.filter((call) => call.status === 200), outcome.label).toHaveLength(1);
      else expect(mine, `${outcome.label} [${outcome.spec.fault}]`).toEqual([]);
    }
  });
});
