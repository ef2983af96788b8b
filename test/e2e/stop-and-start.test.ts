// A person stops a healthy instance and starts it again later. Stopping is normal: it must not set
// off the instance's missing-data alarms. Starting again must give a fresh check and the alarms
// back, without reinstalling the agent.
import { beforeEach, describe, expect, it } from 'vitest';
import { resetSimulationEnvironment } from '../simulator/environment.js';
import { FleetSimulator } from '../simulator/fleet-simulator.js';
import { planInstance } from '../simulator/scenarios.js';
import { SeededRandom } from '../simulator/random.js';
import { useSimulation } from '../simulator/vitest-simulation.js';

const simulation = useSimulation();
let simulator: FleetSimulator;

beforeEach(async () => {
  await resetSimulationEnvironment(simulation.environment);
  simulator?.destroy();
  simulator = new FleetSimulator(simulation.environment, simulation.clock);
});

describe('stopping and starting a monitored instance', () => {
  it('a stop removes the alarms (no missing-data alarm goes off); a start re-checks, restores them, and installs nothing', async () => {
    const { instanceId } = await simulator.launchNow({ ...planInstance({ name: 'stop-start', os: 'linux', fault: 'none' }, new SeededRandom('stop-start')), onlineAfterMs: 0 });
    await simulator.run();
    let [outcome] = await simulator.outcomes();
    expect(outcome?.status).toBe('healthy');
    const alarmsWhileRunning = outcome?.record?.alarmNames ?? [];
    expect(alarmsWhileRunning.length).toBeGreaterThan(0);

    await simulator.setPower(instanceId, 'stop');
    // Long enough for a missing-data alarm to go off, had it been left in place.
    await simulator.run();
    [outcome] = await simulator.outcomes();
    expect(simulator.invocations.offboard).toBe(1);
    expect(outcome?.status).toBe('stopped');
    expect(outcome?.record?.alarmNames).toBeUndefined();
    expect(outcome?.alarmNotifications).toEqual([]);
    expect(outcome?.alerts).toEqual([]);

    await simulator.setPower(instanceId, 'start');
    simulator.deliver('onboard', simulator.stateChange(instanceId, 'running'), { afterMs: 5000, origin: 'EventBridge running' });
    await simulator.run();
    [outcome] = await simulator.outcomes();
    expect(outcome?.status).toBe('healthy');
    expect(outcome?.record?.history.map((entry) => entry.step)).toContain('restarted');
    expect(outcome?.installs).toBe(1);
    expect(outcome?.record?.alarmNames).toEqual(alarmsWhileRunning);
    expect(outcome?.alarmNotifications).toEqual([]);
    expect(outcome?.alerts).toEqual([]);
    expect(outcome?.pendingSchedules).toEqual([]);
  });
});
