import { defineConfig } from 'vitest/config';

// Two projects: fast tests with no server (unit + aws-sdk-client-mock), and the suite that runs the
// real handlers against a moto server that test/harness/global-setup.ts starts and stops.
export default defineConfig({
  test: {
    // Quiet runs: the SDK's notice about Node 20 and the handlers' structured logs say nothing
    // about the result (tests assert on records, calls and messages, not on log lines).
    env: {
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
    },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/integration/**', 'test/e2e/**', 'node_modules/**'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/harness/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // One moto server is shared; files run one after another so resets do not collide.
          fileParallelism: false,
        },
      },
    ],
  },
});
