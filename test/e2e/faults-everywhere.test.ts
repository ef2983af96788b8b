// A mixed fleet while 20% of the product's AWS calls, on every service, fail (throttling, 500, 503)
// or are slowed down. The product's SDK retries and Lambda's re-deliveries must absorb them: every
// instance ends in a definite state, nothing stuck, nothing lost, no duplicate alert, no second
// install for one launch.
import { beforeAll, describe, expect, it } from 'vitest';
import { randomFaults, type RandomFaults } from '../simulator/fault-injection.js';
import { FleetSimulator, type InstanceOutcome, type RunReport } from '../simulator/fleet-simulator.js';
import { instanceFaults, mixedFleet } from '../simulator/scenarios.js';
import { useSimulation } from '../simulator/vitest-simulation.js';

const simulation = useSimulation();
const services = ['ec2', 'iam', 'ssm', 'monitoring', 'dynamodb', 'scheduler', 'sns'] as const;
let outcomes: InstanceOutcome[];
let report: RunReport;
let faults: RandomFaults;

beforeAll(async () => {
  faults = randomFaults({ rate: 0.2, seed: 20 });
  simulation.environment.proxy.faults.set(faults.injector);
  const simulator = new FleetSimulator(simulation.environment, simulation.clock);
  simulator.launch(mixedFleet({ size: 8, faultRate: 0.85, seed: 20, faults: instanceFaults.filter((fault) => fault !== 'none') }));
  report = await simulator.run();
  simulation.environment.proxy.faults.clear();
  outcomes = await simulator.outcomes();
}, 240_000);

describe('with 20% injected faults on every service', () => {
  it('faults were injected on every service the product called often', () => {
    const hit = new Set(faults.injected().map((fault) => fault.service));
    const seen = faults.callsSeen();
    for (const service of services) if ((seen[service] ?? 0) >= 15) expect(hit, `${service} (${seen[service]} calls)`).toContain(service);
    expect(Object.keys(seen).filter((service) => !services.includes(service as (typeof services)[number]))).toEqual([]);
    expect(faults.injected().length).toBeGreaterThan(20);
  });

  it('the run ends with nothing pending: no schedule left, no event lost', () => {
    expect(report.timedOut).toBe(false);
    expect(report.failedDeliveries.filter((failure) => failure.dropped)).toEqual([]);
    for (const outcome of outcomes) expect(outcome.pendingSchedules, outcome.label).toEqual([]);
  });

  it('every instance ends in a definite state: healthy, alerted, skipped or gone', () => {
    const states = outcomes.map((outcome) => `${outcome.spec.name}: ${outcome.status}`);
    expect(outcomes.filter((outcome) => !outcome.definite).map((outcome) => `${outcome.label} ${outcome.status}`), states.join(', ')).toEqual([]);
  });

  it('each instance ends as its fault says, with the right alert or none', () => {
    expect(outcomes.flatMap((outcome) => outcome.problems.map((problem) => `${outcome.label} [${outcome.spec.fault}]: ${problem}`))).toEqual([]);
  });

  it('no duplicate alert, and no install command that the record does not account for', () => {
    for (const outcome of outcomes) {
      expect(outcome.alerts.length, outcome.label).toBeLessThanOrEqual(1);
      expect(outcome.installs, outcome.label).toBe(outcome.installs === 0 ? 0 : 1 + (outcome.record?.reinstalls ?? 0));
      if (outcome.spec.commandOutcomes[0]?.status === 'Success') expect(outcome.installs, `${outcome.label}: one install for one launch`).toBeLessThanOrEqual(1);
    }
  });
});
