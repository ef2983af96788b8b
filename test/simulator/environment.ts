import type { Context } from 'aws-lambda';
import { startAwsProxy, type AwsProxy } from '../harness/aws-proxy.js';
import { resetMoto, startMotoServer, type MotoServer } from '../harness/moto-server.js';
import { deployStack, type DeployedStack } from '../harness/stack.js';
import { isolateFromRealAws } from '../harness/aws-env.js';

/** A product function as the simulator invokes it. */
export type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

/** The product's functions, imported in this process with the stack's environment. */
export interface ProductHandlers {
  onboard: LambdaHandler;
  check: LambdaHandler;
  offboard: LambdaHandler;
}

/** Everything a simulation runs on: moto, the proxy in front of it, the deployed stack and the handlers. */
export interface SimulationEnvironment {
  motoUrl: string;
  proxy: AwsProxy;
  stack: DeployedStack;
  handlers: ProductHandlers;
  /** Stops the proxy (and moto, when this environment started it). */
  stop(): Promise<void>;
}

/** Options of {@link startSimulationEnvironment}; every one has a default. */
export interface SimulationEnvironmentOptions {
  /** A running moto server to use (it is reset). Default: start one (MotoNotInstalledError when python3 is missing or moto cannot be installed). */
  motoUrl?: string;
  /** The serverless stage the resources are named after (`cwap-<stage>-...`). Default `test`. */
  stage?: string;
  /** Settings that replace the stack's defaults (any variable parseSettings reads). */
  env?: Record<string, string>;
  /** Powertools log level of the handlers. Default SILENT: the timeline says what they did. */
  logLevel?: string;
}

/**
 * Starts (or resets) moto, puts the fault-injecting proxy in front of it, creates the stack's
 * resources from the stack's own files, sets the functions' environment and imports the real
 * handlers. The handlers reach AWS through the proxy (AWS_ENDPOINT_URL); the simulator talks to
 * moto directly, so injected faults hit the product only.
 *
 * Call once per process: the handlers parse their settings at import.
 */
export async function startSimulationEnvironment(options: SimulationEnvironmentOptions = {}): Promise<SimulationEnvironment> {
  isolateFromRealAws();
  let moto: MotoServer | undefined;
  let motoUrl = options.motoUrl;
  if (motoUrl) await resetMoto(motoUrl);
  else {
    moto = await startMotoServer();
    motoUrl = moto.url;
  }
  const proxy = await startAwsProxy({ motoUrl });
  const restoreWarnings = muteEmptyMetricsWarning();
  try {
    process.env.AWS_ENDPOINT_URL = proxy.url;
    const stack = await deployStack({ endpoint: motoUrl, ...(options.stage ? { stage: options.stage } : {}), ...(options.env ? { env: options.env } : {}) });
    Object.assign(process.env, stack.env, {
      POWERTOOLS_LOG_LEVEL: options.logLevel ?? 'SILENT',
      POWERTOOLS_METRICS_DISABLED: 'true',
      // Powertools Metrics then writes through the global console (see the demo's warning filter).
      POWERTOOLS_DEV: 'true',
    });
    const handlers: ProductHandlers = {
      onboard: (await import('../../functions/onboard.js')).handler as unknown as LambdaHandler,
      check: (await import('../../functions/check.js')).handler as unknown as LambdaHandler,
      offboard: (await import('../../functions/offboard.js')).handler as unknown as LambdaHandler,
    };
    return {
      motoUrl,
      proxy,
      stack,
      handlers,
      async stop() {
        restoreWarnings();
        await proxy.stop();
        await moto?.stop();
      },
    };
  } catch (error) {
    restoreWarnings();
    await proxy.stop();
    await moto?.stop();
    throw error;
  }
}

/** Re-creates the stack in a reset moto, for the next scenario of the same process. */
export async function resetSimulationEnvironment(environment: SimulationEnvironment): Promise<void> {
  await resetMoto(environment.motoUrl);
  environment.proxy.reset();
  await deployStack({ endpoint: environment.motoUrl, env: environment.stack.env });
}

/**
 * Drops Powertools Metrics' "No application metrics to publish" warning, which the check function's
 * metrics middleware writes after every invocation that counted nothing (with POWERTOOLS_DEV set,
 * Powertools writes through the global console). Returns the function that puts console.warn back.
 */
export function muteEmptyMetricsWarning(): () => void {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].startsWith('No application metrics to publish')) return;
    warn(...args);
  };
  return () => {
    console.warn = warn;
  };
}

let requestCount = 0;

/** A Lambda context for one invocation of a product function. */
export function lambdaContext(functionName: string): Context {
  requestCount += 1;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: `sim-${requestCount}`,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'simulated',
    getRemainingTimeInMillis: () => 60_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
