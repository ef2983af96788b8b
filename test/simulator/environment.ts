import type { Context } from 'aws-lambda';
import { startAwsProxy, type AwsProxy } from '../harness/aws-proxy.js';
import { resetMoto, startMotoServer, type MotoServer } from '../harness/moto-server.js';
import { deployStack, type DeployedStack } from '../harness/stack.js';
import { isolateFromRealAws } from '../harness/aws-env.js';
import { accountCredentials, deployMemberStacks, roleCredentials, type AccountCredentials, type MemberPlace } from '../harness/member-stacks.js';
import { placeLabel, samePlace, type Place } from '../../shared/aws/place.js';

/** A product function as the simulator invokes it. */
export type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

/** The product's functions, imported in this process with the stack's environment. */
export interface ProductHandlers {
  onboard: LambdaHandler;
  check: LambdaHandler;
  offboard: LambdaHandler;
}

/** The hub's functions the simulator runs, each with its own execution role. */
export const productFunctions = ['onboard', 'check', 'offboard'] as const;

/**
 * A hub covering several accounts and regions, each with the member stack (test/harness/member-stacks.ts):
 * the hub's own account is always one of them.
 */
export interface OrganizationOptions {
  /** Every account covered, the hub's (moto's default, 123456789012) among them. */
  accounts: string[];
  /** Every region covered, the hub's (us-east-1) among them. */
  regions: string[];
  /** Places left without the member stack: the hub functions' execution roles do not exist there. */
  withoutMemberStack?: Place[];
  /**
   * Places whose member stack trusts another hub account's roles (as a stack deployed for another
   * hub would): the roles exist and deny the hub's functions.
   */
  untrustingMemberStack?: Place[];
}

/** The organization a simulation runs in, as deployed. */
export interface SimulatedOrganization {
  accounts: string[];
  regions: string[];
  /** Every covered account x region, the hub's own place first. */
  places: Place[];
  /** The member stacks created (not in the places left without one). */
  memberStacks: MemberPlace[];
  /** Credentials moto serves as each covered account (for the simulator's launches and reads). */
  credentials: Map<string, AccountCredentials>;
  /** The execution role ARN each hub function runs as (`cwap-<stage>-<hubRegion>-<fn>`, as serverless.yml names it). */
  functionRoles: Record<ProductFunction, string>;
}

/** Everything a simulation runs on: moto, the proxy in front of it, the deployed stack and the handlers. */
export interface SimulationEnvironment {
  motoUrl: string;
  proxy: AwsProxy;
  stack: DeployedStack;
  handlers: ProductHandlers;
  /** The hub's own account and region. */
  hubPlace: Place;
  /** Set when the hub covers member accounts and regions ({@link SimulationEnvironmentOptions.organization}). */
  organization: SimulatedOrganization | undefined;
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
  /** Covers several accounts and regions through member stacks. Default: the hub's own place only, as before. */
  organization?: OrganizationOptions;
}

type ProductFunction = (typeof productFunctions)[number];

const hubPlaceOfTests: Place = { account: '123456789012', region: 'us-east-1' };

/**
 * The hub's settings for an organization, as serverless.yml sets them: ACCOUNTS, REGIONS, and the
 * agent profile as the hub stack names it (`cwap-<stage>-<region>-agent`: the member stacks'
 * us-east-1 profile has the same name, IAM names being global to an account).
 */
function organizationEnvironment(stage: string, organization: OrganizationOptions): Record<string, string> {
  return {
    ACCOUNTS: organization.accounts.join(','),
    REGIONS: organization.regions.join(','),
    AGENT_PROFILE_NAME: `cwap-${stage}-${hubPlaceOfTests.region}-agent`,
  };
}

/**
 * Creates the member stacks of an organization in moto (not in the places left without one; with
 * another hub's trust in the untrusting ones) and the credentials of each account.
 */
async function deployOrganization(motoUrl: string, stage: string, organization: OrganizationOptions): Promise<SimulatedOrganization> {
  const places = organization.accounts.flatMap((account) => organization.regions.map((region) => ({ account, region })));
  places.sort((a, b) => Number(!samePlace(a, hubPlaceOfTests)) - Number(!samePlace(b, hubPlaceOfTests)));
  const listed = (list: Place[] | undefined, place: Place) => (list ?? []).some((other) => samePlace(other, place));
  const memberStacks: MemberPlace[] = [];
  for (const place of places) {
    if (listed(organization.withoutMemberStack, place)) continue;
    const hubAccountId = listed(organization.untrustingMemberStack, place) ? '999999999999' : hubPlaceOfTests.account;
    memberStacks.push(...(await deployMemberStacks({ endpoint: motoUrl, stage, hubAccountId, hubRegion: hubPlaceOfTests.region, accounts: [place.account], regions: [place.region] })));
  }
  const credentials = new Map<string, AccountCredentials>();
  for (const account of organization.accounts) credentials.set(account, await accountCredentials(account, motoUrl));
  const functionRoles = Object.fromEntries(
    productFunctions.map((fn) => [fn, `arn:aws:iam::${hubPlaceOfTests.account}:role/cwap-${stage}-${hubPlaceOfTests.region}-${fn}`]),
  ) as Record<ProductFunction, string>;
  return { accounts: [...organization.accounts], regions: [...organization.regions], places, memberStacks, credentials, functionRoles };
}

/**
 * Runs a handler as Lambda runs a function: with its execution role's credentials in
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (Lambda developer guide, "Defined
 * runtime environment variables"). The simulator invokes one handler at a time, so swapping the
 * process's variables for the call is safe.
 */
function withExecutionRole(handler: LambdaHandler, credentials: AccountCredentials): LambdaHandler {
  return async (event, context) => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY, token: process.env.AWS_SESSION_TOKEN };
    process.env.AWS_ACCESS_KEY_ID = credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = credentials.secretAccessKey;
    process.env.AWS_SESSION_TOKEN = credentials.sessionToken;
    try {
      return await handler(event, context);
    } finally {
      for (const [name, value] of [['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret], ['AWS_SESSION_TOKEN', saved.token]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  };
}

/**
 * Imports the three handlers. In an organization each gets its own MEMBER_ROLE_NAME
 * (`cwap-<stage>-member-<fn>`, serverless.yml's per-function environment; the flows append the
 * region), read by its module's parseSettings at import, and runs with its own execution role.
 */
async function importHandlers(motoUrl: string, stage: string, organization: SimulatedOrganization | undefined): Promise<ProductHandlers> {
  const modules: Record<ProductFunction, () => Promise<{ handler: unknown }>> = {
    onboard: () => import('../../functions/onboard.js'),
    check: () => import('../../functions/check.js'),
    offboard: () => import('../../functions/offboard.js'),
  };
  const handlers: Partial<ProductHandlers> = {};
  // Credentials straight from moto: the proxy would check the function roles, which only Lambda assumes.
  for (const fn of productFunctions) {
    if (organization) process.env.MEMBER_ROLE_NAME = `cwap-${stage}-member-${fn}`;
    const handler = (await modules[fn]()).handler as unknown as LambdaHandler;
    handlers[fn] = organization ? withExecutionRole(handler, await roleCredentials(organization.functionRoles[fn], motoUrl)) : handler;
  }
  if (organization) delete process.env.MEMBER_ROLE_NAME;
  return handlers as ProductHandlers;
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
    const stage = options.stage ?? 'test';
    const env = { ...(options.organization ? organizationEnvironment(stage, options.organization) : {}), ...options.env };
    const stack = await deployStack({ endpoint: motoUrl, stage, env });
    const organization = options.organization ? await deployOrganization(motoUrl, stage, options.organization) : undefined;
    Object.assign(process.env, stack.env, {
      POWERTOOLS_LOG_LEVEL: options.logLevel ?? 'SILENT',
      POWERTOOLS_METRICS_DISABLED: 'true',
      // Powertools Metrics then writes through the global console (see the demo's warning filter).
      POWERTOOLS_DEV: 'true',
    });
    const handlers = await importHandlers(motoUrl, stage, organization);
    return {
      motoUrl,
      proxy,
      stack,
      handlers,
      hubPlace: { ...hubPlaceOfTests },
      organization,
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
  if (environment.organization) {
    throw new Error('resetSimulationEnvironment: an organization is deployed once per file (its handlers hold credentials a moto reset forgets)');
  }
  await resetMoto(environment.motoUrl);
  environment.proxy.reset();
  await deployStack({ endpoint: environment.motoUrl, env: environment.stack.env });
}

/** `111111111111/eu-west-1`, or `hub` for the hub's own place: how the simulator names a place. */
export function placeName(environment: Pick<SimulationEnvironment, 'hubPlace'>, place: Place): string {
  return samePlace(place, environment.hubPlace) ? 'hub' : placeLabel(place);
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
