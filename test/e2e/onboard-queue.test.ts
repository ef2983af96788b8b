// The onboard queue as the fleet simulator plays it, through the real onboard handler: a message
// the function keeps returning (partial batch response) is received again after the visibility
// timeout, maxReceiveCount times, then moved to the dead-letter queue, and the run says so; its
// neighbour in the same batch is onboarded once and its message deleted.
import { beforeAll, describe, expect, it } from 'vitest';
import { FleetSimulator, type InstanceOutcome, type RunReport, type SimulatedInstance } from '../simulator/fleet-simulator.js';
import { planInstance } from '../simulator/scenarios.js';
import { SeededRandom } from '../simulator/random.js';
import { useSimulation } from '../simulator/vitest-simulation.js';

const simulation = useSimulation();
/** An instance id EC2 never knew: onboarding returns its message at every delivery ("not visible yet"). */
const unknownId = 'i-0123456789abcdef0';

let simulator: FleetSimulator;
let neighbour: SimulatedInstance;
let report: RunReport;
let outcome: InstanceOutcome | undefined;

beforeAll(async () => {
  simulator = new FleetSimulator(simulation.environment, simulation.clock);
  neighbour = await simulator.launchNow({ ...planInstance({ name: 'neighbour', os: 'linux', fault: 'none' }, new SeededRandom('neighbour')), onlineAfterMs: 0 }, { deliverRunningEvent: false });
  simulator.deliver('onboard', simulator.stateChange(unknownId, 'running'), { origin: 'EventBridge running' });
  simulator.deliver('onboard', simulator.stateChange(neighbour.instanceId, 'running'), { afterMs: 1000, origin: 'EventBridge running' });
  report = await simulator.run({ settleMs: 0 });
  [outcome] = await simulator.outcomes();
}, 180_000);

describe('the onboard queue of the fleet simulator', () => {
  it('both events went in one batch; the neighbour was onboarded once from it and is healthy', () => {
    const [first] = simulator.timeline.filter((entry) => entry.step === 'queue batch');
    expect(first?.instanceIds?.sort()).toEqual([neighbour.instanceId, unknownId].sort());
    expect(simulator.timelineOf(neighbour.instanceId).filter((entry) => entry.step === 'queue batch')).toHaveLength(1);
    expect(outcome?.status).toBe('healthy');
    expect(outcome?.installs).toBe(1);
    expect(outcome?.problems).toEqual([]);
  });

  it('the returned message is received maxReceiveCount times, a visibility timeout apart, then dead-lettered, and the run reports it', () => {
    const { maxReceiveCount, visibilityTimeoutSeconds, batchWindowSeconds } = simulation.environment.stack.onboardQueue;
    expect(report.timedOut).toBe(false);
    expect(report.queue.messages).toBe(2);
    expect(report.queue.redelivered).toBe(maxReceiveCount - 1);
    expect(report.queue.deadLettered.map((dead) => [dead.instanceId, dead.receiveCount])).toEqual([[unknownId, maxReceiveCount]]);
    expect(simulator.queue.waiting()).toEqual([]);
    const lines = simulator.timelineOf(unknownId);
    const deliveries = lines.filter((entry) => entry.step === 'queue batch').map((entry) => entry.at);
    expect(deliveries).toHaveLength(maxReceiveCount);
    for (let i = 1; i < deliveries.length; i++) expect((deliveries[i] as number) - (deliveries[i - 1] as number)).toBeGreaterThanOrEqual(visibilityTimeoutSeconds * 1000);
    // Hidden from its last receive (when the batch opened, a batching window before it closed), then moved.
    const lastReceive = (deliveries.at(-1) as number) - batchWindowSeconds * 1000;
    expect(lines.filter((entry) => entry.step === 'dead-lettered').map((entry) => entry.at)).toEqual([lastReceive + visibilityTimeoutSeconds * 1000]);
    // A returned message is no failed invocation: the batches themselves succeeded.
    expect(report.failedDeliveries).toEqual([]);
  });
});
