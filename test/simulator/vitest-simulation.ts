import { afterAll, beforeAll, inject } from 'vitest';
import { SimulatedClock } from './clock.js';
import { startSimulationEnvironment, type SimulationEnvironment, type SimulationEnvironmentOptions } from './environment.js';

/** What an e2e test file gets from {@link useSimulation}; valid inside tests and hooks. */
export interface SimulationFixture {
  readonly environment: SimulationEnvironment;
  readonly clock: SimulatedClock;
}

/**
 * For an e2e file of the "integration" project: the shared moto (reset), the proxy, the stack and
 * the real handlers, and the simulated clock installed for the file (the real `Date` comes back in
 * afterAll). Call at the top level of the file.
 */
export function useSimulation(options: Omit<SimulationEnvironmentOptions, 'motoUrl'> = {}): SimulationFixture {
  const motoUrl = inject('motoUrl');
  if (!motoUrl) throw new Error('useSimulation(): no moto server. Run the file in the "integration" project, whose globalSetup starts moto');
  const saved = { ...process.env };
  const clock = new SimulatedClock();
  let environment: SimulationEnvironment | undefined;
  beforeAll(async () => {
    environment = await startSimulationEnvironment({ ...options, motoUrl });
    clock.install();
    clock.markStart();
  });
  afterAll(async () => {
    clock.uninstall();
    await environment?.stop();
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  });
  return {
    get environment() {
      if (!environment) throw new Error('useSimulation(): the environment is available inside tests and hooks only');
      return environment;
    },
    clock,
  };
}
