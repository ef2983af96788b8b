import { afterAll, beforeAll, beforeEach, inject } from 'vitest';
import { startAwsProxy, type AwsCall, type AwsProxy } from './aws-proxy.js';
import { resetMoto } from './moto-server.js';

/** What a test file gets from {@link useAws}; valid inside tests and hooks (after beforeAll). */
export interface AwsTestEnvironment {
  /** The moto server (for /moto-api/* reads such as SNS messages). */
  readonly motoUrl: string;
  /** The proxy the SDK talks to (AWS_ENDPOINT_URL). */
  readonly proxy: AwsProxy;
  readonly ssm: AwsProxy['ssm'];
  readonly commands: AwsProxy['commands'];
  readonly agents: AwsProxy['agents'];
  readonly lambda: AwsProxy['lambda'];
  readonly faults: AwsProxy['faults'];
  calls(): AwsCall[];
}

// An address where nothing listens: a client that is used before beforeAll ran fails fast
// instead of reaching real AWS.
const nowhere = 'http://127.0.0.1:9';

/** Points every AWS SDK client of this process at a local address, with dummy credentials. */
export function isolateFromRealAws(): void {
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('AWS_ENDPOINT_URL_') || name === 'AWS_PROFILE' || name === 'AWS_SESSION_TOKEN') delete process.env[name];
  }
  delete process.env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS;
  process.env.AWS_ENDPOINT_URL = nowhere;
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_DEFAULT_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'testing';
  process.env.AWS_SECRET_ACCESS_KEY = 'testing';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
}

/**
 * Points the AWS SDK of this test file at moto through an in-process {@link AwsProxy}, and gives
 * every test a clean world: moto is reset and the proxy forgets registrations, command outcomes,
 * faults and calls before each test.
 *
 * @example
 * const aws = useAws();
 * it('...', async () => {
 *   aws.ssm.register(instanceId, { platformType: 'Linux' });
 *   expect(aws.calls().filter((c) => c.operation === 'SendCommand')).toHaveLength(1);
 * });
 */
export function useAws(): AwsTestEnvironment {
  const motoUrl = inject('motoUrl');
  if (!motoUrl) {
    throw new Error('useAws(): no moto server. Run the file in the "integration" project (vitest --project integration), whose globalSetup starts moto');
  }
  const saved = { ...process.env };
  // Set now, not in beforeAll: product modules create their SDK clients at import time.
  isolateFromRealAws();
  let proxy: AwsProxy | undefined;

  beforeAll(async () => {
    proxy = await startAwsProxy({ motoUrl });
    process.env.AWS_ENDPOINT_URL = proxy.url;
  });
  beforeEach(async () => {
    await resetMoto(motoUrl);
    proxy?.reset();
  });
  afterAll(async () => {
    await proxy?.stop();
    proxy = undefined;
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  });

  const started = (): AwsProxy => {
    if (!proxy) throw new Error('useAws(): the AWS proxy is available inside tests and hooks only');
    return proxy;
  };
  return {
    motoUrl,
    get proxy() {
      return started();
    },
    get ssm() {
      return started().ssm;
    },
    get commands() {
      return started().commands;
    },
    get agents() {
      return started().agents;
    },
    get lambda() {
      return started().lambda;
    },
    get faults() {
      return started().faults;
    },
    calls: () => started().calls(),
  };
}
