import type { TestProject } from 'vitest/node';
import { startMotoServer } from './moto-server.js';

declare module 'vitest' {
  interface ProvidedContext {
    /** Base URL of the moto server shared by every integration test file. */
    motoUrl: string;
  }
}

/**
 * vitest globalSetup of the integration project: one moto server for the whole run, its URL
 * provided as `inject('motoUrl')`. Each test file puts its own proxy in front (see aws-env.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const moto = await startMotoServer();
  project.provide('motoUrl', moto.url);
  return async () => {
    await moto.stop();
  };
}
