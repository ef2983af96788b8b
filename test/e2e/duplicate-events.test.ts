// EventBridge and the Scheduler deliver at least once, and not always in order: duplicated and
// out-of-order events through the real handlers end as a single, correct onboarding.
import { beforeEach, describe, expect, it } from 'vitest';
import { lookPlan } from '../../shared/checking/check-policy.js';
import { resetSimulationEnvironment } from '../simulator/environment.js';
import { FleetSimulator } from '../simulator/fleet-simulator.js';
import { planInstance, type InstanceFault } from '../simulator/scenarios.js';
import { SeededRandom } from '../simulator/random.js';
import { useSimulation } from '../simulator/vitest-simulation.js';

const simulation = useSimulation();
let simulator: FleetSimulator;

beforeEach(async () => {
  await resetSimulationEnvironment(simulation.environment);
  simulator?.destroy();
  simulator = new FleetSimulator(simulation.environment, simulation.clock);
});

const spec = (name: string, fault: InstanceFault = 'none', os: 'linux' | 'windows' = 'linux') =>
  // Online in SSM from the start, so the first onboarding sends the command.
  ({ ...planInstance({ name, os, fault }, new SeededRandom(name)), onlineAfterMs: 0 });

async function launched(name: string, fault: InstanceFault = 'none') {
  const instance = await simulator.launchNow(spec(name, fault), { deliverRunningEvent: false });
  await simulator.run({ maxSimulatedMs: 1000, settleMs: 0 }); // registers it with SSM
  return instance;
}

describe('duplicate and out-of-order events', () => {
  it('a running event delivered twice, one after the other, onboards once: one install, one check, healthy', async () => {
    const { instanceId } = await launched('dup-seq');
    simulator.deliver('onboard', simulator.stateChange(instanceId, 'running'), { origin: 'EventBridge running' });
    simulator.deliver('onboard', simulator.stateChange(instanceId, 'running'), { afterMs: 3000, origin: 'EventBridge running (again)' });
    await simulator.run();
    const [outcome] = await simulator.outcomes();
    expect(outcome?.installs).toBe(1);
    expect(outcome?.status).toBe('healthy');
    expect(outcome?.problems).toEqual([]);
    // One chain of checks: the second event adds nothing to the record, which has one claim by the
    // queue batch (a batch of one: it joins the install window, once) and one by the window's run,
    // one first look scheduled and one healthy. Each look of the batch's check schedule is one check
    // invocation (how many depends on when the agent first publishes), never more than the plan's looks.
    const steps = outcome?.record?.history.map((entry) => entry.step) ?? [];
    expect(steps.slice(0, 3)).toEqual(['claimed', 'profile:associated-agent-profile', 'install-window']);
    expect(steps.filter((step) => step === 'install-window')).toHaveLength(1);
    expect(steps.filter((step) => step === 'claimed')).toHaveLength(2);
    expect(steps.filter((step) => step === 'check-scheduled')).toHaveLength(1);
    expect(steps.filter((step) => step === 'healthy')).toHaveLength(1);
    expect(simulator.invocations.check).toBeGreaterThanOrEqual(1);
    expect(simulator.invocations.check).toBeLessThanOrEqual(lookPlan(simulation.environment.stack.settings).length);
  });

  it('a running event delivered twice at the same moment onboards once', async () => {
    const { instanceId } = await launched('dup-race');
    const results = await Promise.all([
      simulator.invokeNow('onboard', simulator.stateChange(instanceId, 'running'), 'EventBridge running'),
      simulator.invokeNow('onboard', simulator.stateChange(instanceId, 'running'), 'EventBridge running (duplicate)'),
    ]);
    expect(results.map((result) => (result as { action: string }).action).sort()).toEqual(['ignore', 'onboard']);
    await simulator.run();
    const [outcome] = await simulator.outcomes();
    expect(outcome?.installs).toBe(1);
    expect(outcome?.status).toBe('healthy');
    expect(outcome?.problems).toEqual([]);
  });

  it('stopped before its running event is processed: recorded stopped, nothing installed; started again, onboarded once', async () => {
    const { instanceId } = await launched('stopped-first');
    await simulator.setPower(instanceId, 'stop');
    await simulator.invokeNow('onboard', simulator.stateChange(instanceId, 'running'), 'EventBridge running (late)');
    let [outcome] = await simulator.outcomes();
    expect(outcome?.status).toBe('stopped');
    expect(outcome?.installs).toBe(0);

    await simulator.setPower(instanceId, 'start');
    simulator.deliver('onboard', simulator.stateChange(instanceId, 'running'), { afterMs: 5000, origin: 'EventBridge running' });
    await simulator.run();
    [outcome] = await simulator.outcomes();
    expect(outcome?.status).toBe('healthy');
    expect(outcome?.installs).toBe(1);
    expect(outcome?.alerts).toEqual([]);
  });

  it('terminated before its running event is processed: gone, nothing installed, nothing left behind', async () => {
    const { instanceId } = await launched('terminated-first');
    await simulator.terminateNow(instanceId); // offboard gets "terminated" 2 s later
    await simulator.run({ settleMs: 0 });
    await simulator.invokeNow('onboard', simulator.stateChange(instanceId, 'running'), 'EventBridge running (late)');
    await simulator.run({ settleMs: 0 });
    const [outcome] = await simulator.outcomes();
    expect(simulator.invocations.offboard).toBe(1);
    expect(outcome?.installs).toBe(0);
    expect(outcome?.status).toBe('gone');
    expect(outcome?.pendingSchedules).toEqual([]);
    expect(outcome?.alerts).toEqual([]);
  });

  it('a check delivered again after the alert (Scheduler at-least-once, or a person) sends no second alert', async () => {
    const { instanceId } = await launched('check-twice', 'agent-never-publishes');
    simulator.deliver('onboard', simulator.stateChange(instanceId, 'running'), { origin: 'EventBridge running' });
    await simulator.run({ settleMs: 0 });
    let [outcome] = await simulator.outcomes();
    expect(outcome?.alerts.map((alert) => alert.attributes.diagnosis)).toEqual(['no-datapoints']);
    const lastCheck = outcome?.record?.checkAttempts ?? 0;
    await simulator.invokeNow('check', { instanceId, attempt: lastCheck }, 'schedule (delivered again)');
    await simulator.invokeNow('check', { instanceId }, 'by hand');
    [outcome] = await simulator.outcomes();
    expect(outcome?.alerts).toHaveLength(1);
    expect(outcome?.status).toBe('alerted');
  });

  it('a scheduled SSM retry delivered twice sends one install command', async () => {
    const instance = await simulator.launchNow({ ...spec('retry-twice'), onlineAfterMs: 6 * 60_000 }, { deliverRunningEvent: false });
    await simulator.invokeNow('onboard', simulator.stateChange(instance.instanceId, 'running'), 'EventBridge running');
    await simulator.run({ maxSimulatedMs: 6.5 * 60_000, settleMs: 0 });
    expect(instance.online).toBe(true);
    // The first SSM retry has fired (attempt 2); the Scheduler delivers it again.
    await simulator.invokeNow('onboard', { instanceId: instance.instanceId, attempt: 2 }, 'schedule (delivered again)');
    await simulator.run();
    const [outcome] = await simulator.outcomes();
    expect(outcome?.installs).toBe(1);
    expect(outcome?.status).toBe('healthy');
  });
});
