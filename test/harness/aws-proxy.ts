import { randomUUID } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiBuckets } from '../simulator/api-buckets.js';
import {
  documentStepsOf,
  runCommand,
  type AgentOnInstance,
  type CommandOutcome,
  type DocumentStep,
  type InvocationState,
  type StepState,
} from './command-execution.js';

import { accountOfArn, placeLabel, type Place } from '../../shared/aws/place.js';

export type { AgentOnInstance, CommandOutcome, InvocationState, StepState } from './command-execution.js';

// A small HTTP server between the SDK (AWS_ENDPOINT_URL) and moto. Every request goes to moto
// unchanged, except the SSM calls moto does not implement (or implements too loosely for the
// product's tests), which are answered here from a simulated Systems Manager the tests control:
// - DescribeInstanceInformation, ListCommandInvocations: not implemented by moto (HTTP 500 HTML).
// - SendCommand: moto accepts any instance id and also targets every other instance of the
//   region; here an instance must be registered (not Inactive), like AWS (InvalidInstanceId),
//   and the command is recorded for the instances asked for only.
// - GetCommandInvocation: moto always answers Success with plugin "aws:runShellScript"; here a
//   multi-step document's invocation is answered per step. Each command runs, at SendCommand time,
//   by the SSM agent's rules (command-execution.ts: onFailure read from a step's inputs only,
//   Distributor's install types over the agent each simulated instance has), and tests can make a
//   step fail or time out.
// - STS AssumeRole: moto mints credentials for any role ARN, existing or not; here the role must
//   exist in its account and trust the caller, else AccessDenied as STS answers.
// Every simulated call acts in the place of its request: the account of its credentials (as moto
// itself attributes them: a key minted by AssumeRole belongs to the role's account) and the region
// of its signature. Each account and region has its own SSM registry, command outcomes and agents.
// It also injects faults (throttling, 5xx, delays) and logs every AWS call.

/** SSM agent ping status, as DescribeInstanceInformation reports it. */
export type PingStatus = 'Online' | 'ConnectionLost' | 'Inactive';
/** SSM platform type of a managed instance. */
export type SsmPlatformType = 'Linux' | 'Windows';

/** What Systems Manager knows about one instance's SSM agent. */
export interface SsmRegistration {
  platformType: SsmPlatformType;
  /** Default `Online`. */
  pingStatus?: PingStatus;
  /** Default `3.3.1142.0`. */
  agentVersion?: string;
  /** Default true. */
  isLatestVersion?: boolean;
  /** Default: now. */
  lastPing?: Date;
  /** Default `Amazon Linux` / `Microsoft Windows Server 2022 Datacenter`. */
  platformName?: string;
}

/** A registered instance, as the simulated Systems Manager holds it. */
export interface ManagedInstance {
  instanceId: string;
  platformType: SsmPlatformType;
  pingStatus: PingStatus;
  agentVersion: string;
  isLatestVersion: boolean;
  lastPing: Date;
  platformName: string;
}

/** The simulated Systems Manager instance registry. */
export interface SimulatedSsm {
  /** The instance's SSM agent has registered (DescribeInstanceInformation lists it). */
  register(instanceId: string, registration: SsmRegistration): void;
  /** Changes the ping status of a registered instance (throws if it is not registered). */
  setPing(instanceId: string, pingStatus: PingStatus, at?: Date): void;
  /** Forgets the instance: DescribeInstanceInformation no longer lists it. */
  unregister(instanceId: string): void;
  /** The registration of one instance, if any. */
  get(instanceId: string): ManagedInstance | undefined;
  /**
   * Whether SendCommand refuses instances that are not registered (or are Inactive) with
   * InvalidInstanceId, as AWS does. Default true; false lets every SendCommand through to moto.
   */
  requireRegistration(required: boolean): void;
  /**
   * What DescribeInstanceInformation does with an `InstanceIds` filter value SSM does not know:
   * `omit` it from the list (default), or answer `InvalidInstanceId` (the API reference's words
   * allow both readings).
   */
  unknownInstanceIds(mode: 'omit' | 'error'): void;
}

/** A SendCommand the proxy saw succeed. */
export interface SentCommand {
  commandId: string;
  /** The account and region the command was sent in (its caller's). */
  account: string;
  region: string;
  documentName: string;
  /** The instances asked for (moto itself would target every instance of the region). */
  instanceIds: string[];
  parameters: Record<string, string[]>;
  comment: string;
  requestedAt: Date;
  /** The document's step names (`mainSteps[].name`), when the proxy could read the document. */
  steps: string[] | undefined;
}

/** Outcomes of the commands sent to each instance. */
export interface SimulatedCommands {
  /**
   * Sets how commands sent to an instance end. With several outcomes, each SendCommand takes the
   * next one and the last one repeats: `setOutcome(id, failed, failed, success)` fails twice.
   * Without an outcome a command succeeds on every step.
   */
  setOutcome(instanceId: string, ...outcomes: CommandOutcome[]): void;
  clearOutcome(instanceId: string): void;
  /** Every SendCommand that succeeded through the proxy, oldest first. */
  sent(): SentCommand[];
  /**
   * How a command ran on an instance, step by step (what GetCommandInvocation reports once the
   * invocation is visible); undefined for an instance it did not target, or a one-step document
   * moto answers for.
   */
  invocation(commandId: string, instanceId: string): InvocationState | undefined;
}

/** A product function the proxy runs in this process when Lambda's Invoke names it. */
export type InvokedFunction = (payload: unknown) => Promise<unknown>;

/**
 * Lambda functions the proxy answers `Invoke` for (moto cannot run the product's code without
 * docker): each runs in this process, as the CLI's `check` or the audit's remediation would reach
 * the deployed function. Any other function name goes to moto.
 */
export interface SimulatedLambda {
  /** Answers Invoke of `functionName` (its name or ARN) by running `run` with the payload. */
  register(functionName: string, run: InvokedFunction): void;
}

/**
 * The CloudWatch agent on each simulated instance: none until a command installs it, or a test
 * says the instance came with one (an AMI with the agent baked in, an rpm/msi install, or an
 * older Distributor install from months ago).
 */
export interface SimulatedAgents {
  /** The agent on the instance now, if any. */
  get(instanceId: string): AgentOnInstance | undefined;
  /** Puts an agent on the instance (or removes it with undefined), as if installed before the product saw it. */
  set(instanceId: string, agent: AgentOnInstance | undefined): void;
}

/** An injected fault: `throttle` (the service's throttling error), `5xx` (HTTP 500), `503`, or a delay. */
export type Fault = 'throttle' | '5xx' | '503' | { delayMs: number };
/**
 * Decides the fault for one call. `service` is the SigV4 signing name (`ec2`, `iam`, `ssm`,
 * `monitoring` for CloudWatch, `scheduler`, `dynamodb`, `sns`), `operation` the API name.
 */
export type FaultInjector = (service: string, operation: string) => Fault | undefined;

/** One AWS call that reached the proxy. */
export interface AwsCall {
  service: string;
  operation: string;
  /** HTTP status returned to the caller. */
  status: number;
  /**
   * The instance ids an EC2 call names (`InstanceId` or `InstanceId.N` of its query form), so that a
   * test can count the calls per instance (AssociateIamInstanceProfile once per instance). Absent
   * for other services, and for EC2 calls that name none.
   */
  instanceIds?: string[];
  /** An SNS Publish as the caller sent it (topic, subject, string attributes), so that a reader need not dump moto's state. */
  published?: { topicArn: string | undefined; subject: string | undefined; attributes: Record<string, string> };
}

/** The simulated Systems Manager of one account and region. */
export interface PlaceSimulation {
  ssm: SimulatedSsm;
  /** `sent()` lists the commands sent in this place only. */
  commands: SimulatedCommands;
  agents: SimulatedAgents;
}

/** A running proxy. */
export interface AwsProxy {
  /** Set AWS_ENDPOINT_URL to this. */
  url: string;
  motoUrl: string;
  /** moto's default account in us-east-1: where `ssm`, `commands` and `agents` act. */
  defaultPlace: Place;
  /** The SSM registry, command outcomes and agents of the default place; `commands.sent()` lists every place's. */
  ssm: SimulatedSsm;
  commands: SimulatedCommands;
  agents: SimulatedAgents;
  /** The simulated Systems Manager of another account and region. */
  place(place: Place): PlaceSimulation;
  lambda: SimulatedLambda;
  faults: { set(injector: FaultInjector | undefined): void; clear(): void };
  /**
   * The API rate limits in force (test/simulator/api-buckets.ts), from the `buckets` option or set
   * later (a fleet run turns them on for itself); `set(undefined)` turns them off.
   */
  buckets: { set(buckets: ApiBuckets | undefined): void; current(): ApiBuckets | undefined };
  /** The AWS calls made so far (since start or the last reset), oldest first. */
  calls(): AwsCall[];
  /**
   * The calls from the `start`th on (0-based, in {@link calls} order), for a reader that keeps its
   * place in the log instead of copying all of it each time; `calls().length` is where it ends.
   */
  callsSince(start: number): AwsCall[];
  /** How many calls {@link calls} holds. */
  callCount(): number;
  resetCalls(): void;
  /** Forgets registrations, outcomes, recorded commands, faults and calls (not moto's state); the buckets go back to the `buckets` option's. */
  reset(): void;
  stop(): Promise<void>;
}

/** moto's default account (credentials it has not minted act there) and the harness's region. */
const defaultPlace: Place = { account: '123456789012', region: 'us-east-1' };
const defaultAgentVersion = '3.3.1142.0';

/** What the simulated Systems Manager holds in one account and region. */
interface PlaceState {
  registry: Map<string, ManagedInstance>;
  outcomeQueues: Map<string, CommandOutcome[]>;
  agents: Map<string, AgentOnInstance>;
}

/** Who signed a request, as moto's GetCallerIdentity names the key's owner. */
interface CallerIdentity {
  account: string;
  arn: string;
}

interface CommandRecord extends SentCommand {
  /** Outcome bound at SendCommand time, per instance (for `invisibleForPolls`). */
  outcomes: Map<string, CommandOutcome>;
  /** How the command ran on each instance, decided at SendCommand time. */
  runs: Map<string, InvocationState>;
  /** Polls seen per instance (for `invisibleForPolls`). */
  polls: Map<string, number>;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

type Protocol = 'json' | 'query' | 'ec2' | 'rest-json';

interface CallInfo {
  service: string;
  operation: string;
  /** The access key and region of the SigV4 credential scope. */
  accessKeyId: string;
  region: string;
  protocol: Protocol;
  /** JSON content type of a JSON-protocol call (application/x-amz-json-1.0 or 1.1). */
  jsonContentType: string;
}

// ---------------------------------------------------------------------------------------------
// Small typed readers for untrusted JSON.

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

function parseJson(text: string): Json {
  if (!text) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return isObject(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Which service and operation a request is.

/** Scheduler is REST-JSON: the operation is the method plus the path's first segment. */
function restOperation(service: string, method: string, path: string): string {
  const segments = path.split('?')[0]?.split('/').filter(Boolean) ?? [];
  const [resource, name] = segments;
  if (service === 'scheduler') {
    const noun = resource === 'schedule-groups' ? 'ScheduleGroup' : resource === 'tags' ? 'Tags' : 'Schedule';
    if (noun === 'Tags') {
      return method === 'GET' ? 'ListTagsForResource' : method === 'DELETE' ? 'UntagResource' : 'TagResource';
    }
    if (!name) return `List${noun}s`;
    const verb = { POST: 'Create', GET: 'Get', PUT: 'Update', DELETE: 'Delete' }[method] ?? method;
    return `${verb}${noun}`;
  }
  return `${method} ${segments.join('/')}`;
}

/** An SNS Publish of the query form: TopicArn, Subject, and `MessageAttributes.entry.N.{Name,Value.StringValue}`. */
function snsPublish(body: string): NonNullable<AwsCall['published']> {
  const form = new URLSearchParams(body);
  const attributes: Record<string, string> = {};
  for (let n = 1; form.has(`MessageAttributes.entry.${n}.Name`); n++) {
    const name = form.get(`MessageAttributes.entry.${n}.Name`) ?? '';
    const value = form.get(`MessageAttributes.entry.${n}.Value.StringValue`);
    if (value !== null) attributes[name] = value;
  }
  return { topicArn: form.get('TopicArn') ?? undefined, subject: form.get('Subject') ?? undefined, attributes };
}

/** The instance ids of an EC2 query-form request: `InstanceId` and `InstanceId.N`, in order. */
function ec2InstanceIds(body: string): string[] {
  const ids: string[] = [];
  for (const [key, value] of new URLSearchParams(body)) if (/^InstanceId(\.\d+)?$/.test(key)) ids.push(value);
  return ids;
}

function identify(method: string, path: string, headers: IncomingHttpHeaders, body: string): CallInfo | undefined {
  const authorization = headers.authorization;
  const scope = typeof authorization === 'string' ? /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(authorization) : null;
  const service = scope?.[3];
  if (!scope || !service) return undefined; // not an AWS call (moto-api, browser)
  const signer = { accessKeyId: scope[1] ?? '', region: scope[2] ?? '' };
  const target = headers['x-amz-target'];
  const contentType = String(headers['content-type'] ?? '');
  if (typeof target === 'string' && target.length > 0) {
    return {
      service,
      ...signer,
      operation: target.slice(target.lastIndexOf('.') + 1),
      protocol: 'json',
      jsonContentType: contentType.startsWith('application/x-amz-json') ? contentType : 'application/x-amz-json-1.1',
    };
  }
  if (contentType.startsWith('application/x-www-form-urlencoded') || path.includes('Action=')) {
    const form = new URLSearchParams(contentType.startsWith('application/x-www-form-urlencoded') ? body : path.split('?')[1] ?? '');
    return {
      service,
      ...signer,
      operation: form.get('Action') ?? 'Unknown',
      protocol: service === 'ec2' ? 'ec2' : 'query',
      jsonContentType: '',
    };
  }
  return { service, ...signer, operation: restOperation(service, method, path), protocol: 'rest-json', jsonContentType: '' };
}

// ---------------------------------------------------------------------------------------------
// Error answers in each protocol's shape.

function xmlEscape(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function awsError(call: CallInfo, status: number, code: string, message: string, queryCode = code): Answer {
  const requestId = randomUUID();
  switch (call.protocol) {
    case 'json': {
      const headers: Record<string, string> = {
        'content-type': call.jsonContentType,
        'x-amzn-requestid': requestId,
      };
      // CloudWatch's JSON protocol is "awsQueryCompatible": the SDK takes the error code from
      // this header (the code of the query protocol era).
      if (call.service === 'monitoring') headers['x-amzn-query-error'] = `${queryCode};${status >= 500 ? 'Receiver' : 'Sender'}`;
      return { status, headers, body: JSON.stringify({ __type: code, message }) };
    }
    case 'ec2':
      return {
        status,
        headers: { 'content-type': 'text/xml;charset=UTF-8' },
        body:
          `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${xmlEscape(code)}</Code>` +
          `<Message>${xmlEscape(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
      };
    case 'query':
      return {
        status,
        headers: { 'content-type': 'text/xml' },
        body:
          `<ErrorResponse><Error><Type>${status >= 500 ? 'Receiver' : 'Sender'}</Type><Code>${xmlEscape(code)}</Code>` +
          `<Message>${xmlEscape(message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      };
    case 'rest-json':
      return {
        status,
        headers: { 'content-type': 'application/json', 'x-amzn-errortype': code, 'x-amzn-requestid': requestId },
        body: JSON.stringify({ Message: message }),
      };
  }
}

function faultAnswer(call: CallInfo, fault: 'throttle' | '5xx' | '503'): Answer {
  const byProtocol: Record<Protocol, Record<typeof fault, [number, string]>> = {
    // EC2 answers RequestLimitExceeded with HTTP 503.
    ec2: { throttle: [503, 'RequestLimitExceeded'], '5xx': [500, 'InternalError'], '503': [503, 'Unavailable'] },
    // SNS (query protocol) throttles with Throttled, HTTP 429 (SNS service model: ThrottledException).
    query: { throttle: [400, 'Throttling'], '5xx': [500, 'InternalFailure'], '503': [503, 'ServiceUnavailable'] },
    json: { throttle: [400, 'ThrottlingException'], '5xx': [500, 'InternalServerError'], '503': [503, 'ServiceUnavailable'] },
    'rest-json': {
      throttle: [429, 'ThrottlingException'],
      '5xx': [500, 'InternalServerException'],
      '503': [503, 'ServiceUnavailableException'],
    },
  };
  const [status, code] =
    call.service === 'sns' && fault === 'throttle' ? ([429, 'Throttled'] as [number, string]) : byProtocol[call.protocol][fault];
  const queryCode = call.service === 'sns' && fault === 'throttle' ? 'Throttled' : { throttle: 'Throttling', '5xx': 'InternalFailure', '503': 'ServiceUnavailable' }[fault];
  // EC2's own throttling message ("Request limit exceeded."); the other services say "Rate exceeded".
  const message = fault === 'throttle' ? (call.protocol === 'ec2' ? 'Request limit exceeded.' : 'Rate exceeded') : `injected fault: ${code}`;
  return awsError(call, status, code, message, queryCode);
}

function jsonAnswer(call: CallInfo, payload: Json): Answer {
  return {
    status: 200,
    headers: { 'content-type': call.jsonContentType, 'x-amzn-requestid': randomUUID() },
    body: JSON.stringify(payload),
  };
}

// ---------------------------------------------------------------------------------------------
// STS: who a key is, and whether a role trusts it.

/** The text of the first `<tag>` of an XML answer, entities decoded. */
function xmlText(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  return match?.[1]?.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&');
}

/**
 * Whether a trust policy (IAM's URL-encoded JSON) lets the caller assume the role: an Allow
 * statement for sts:AssumeRole whose AWS principal is the caller's role (an assumed-role session
 * is its role, IAM JSON policy reference, "AWS principals: role sessions"), the caller's ARN, its
 * account root or its account id.
 */
function trustsCaller(encoded: string, caller: CallerIdentity): boolean {
  let text = encoded;
  try {
    text = decodeURIComponent(encoded);
  } catch {
    // already plain JSON
  }
  const policy = parseJson(text);
  const session = /^arn:([^:]+):sts::(\d{12}):assumed-role\/([^/]+)\//.exec(caller.arn);
  const names = new Set([caller.arn, `arn:aws:iam::${caller.account}:root`, caller.account]);
  if (session) names.add(`arn:${session[1]}:iam::${session[2]}:role/${session[3]}`);
  const statements = Array.isArray(policy.Statement) ? policy.Statement : isObject(policy.Statement) ? [policy.Statement] : [];
  return statements.some((statement) => {
    if (!isObject(statement) || statement.Effect !== 'Allow') return false;
    const actions = typeof statement.Action === 'string' ? [statement.Action] : strings(statement.Action);
    if (!actions.some((action) => ['sts:AssumeRole', 'sts:*', '*'].includes(action))) return false;
    const principal = statement.Principal;
    if (principal === '*') return true;
    if (!isObject(principal)) return false;
    const aws = typeof principal.AWS === 'string' ? [principal.AWS] : strings(principal.AWS);
    return aws.some((name) => name === '*' || names.has(name));
  });
}

// ---------------------------------------------------------------------------------------------
// The simulated Systems Manager.

const pageToken = {
  encode: (offset: number) => Buffer.from(JSON.stringify({ offset })).toString('base64'),
  decode(token: string | undefined): number | undefined {
    if (token === undefined) return 0;
    try {
      const parsed: unknown = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
      const offset = isObject(parsed) ? parsed.offset : undefined;
      return typeof offset === 'number' && Number.isInteger(offset) && offset >= 0 ? offset : undefined;
    } catch {
      return undefined;
    }
  },
};

/** Checks MaxResults against an API's range; returns the error answer when out of range. */
function checkMaxResults(call: CallInfo, value: unknown, min: number, max: number): Answer | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || value < min || value > max) {
    const bound = typeof value === 'number' && value < min ? `greater than or equal to ${min}` : `less than or equal to ${max}`;
    return awsError(
      call,
      400,
      'ValidationException',
      `1 validation error detected: Value '${String(value)}' at 'maxResults' failed to satisfy constraint: Member must have value ${bound}`,
    );
  }
  return undefined;
}

// The two filter lists name the platform differently (SSM API reference: InstanceInformationStringFilter
// key "PlatformType"; the legacy InstanceInformationFilter key "PlatformTypes").
const filterKeys: Record<string, (instance: ManagedInstance) => string> = {
  InstanceIds: (i) => i.instanceId,
  PingStatus: (i) => i.pingStatus,
  PlatformType: (i) => i.platformType,
  ResourceType: () => 'EC2Instance',
  AgentVersion: (i) => i.agentVersion,
};
const legacyFilterKeys: Record<string, (instance: ManagedInstance) => string> = {
  InstanceIds: (i) => i.instanceId,
  PingStatus: (i) => i.pingStatus,
  PlatformTypes: (i) => i.platformType,
  ResourceType: () => 'EC2Instance',
  AgentVersion: (i) => i.agentVersion,
};

function describeInstanceInformation(
  call: CallInfo,
  input: Json,
  registry: Map<string, ManagedInstance>,
  unknownIds: 'omit' | 'error',
): Answer {
  const tooMany = checkMaxResults(call, input.MaxResults, 5, 50);
  if (tooMany) return tooMany;
  const filters = Array.isArray(input.Filters) ? input.Filters : [];
  const legacy = Array.isArray(input.InstanceInformationFilterList) ? input.InstanceInformationFilterList : [];
  if (filters.length > 0 && legacy.length > 0) {
    // API reference: "Attempting to use InstanceInformationFilterList and Filters leads to an
    // exception error." (the error code is not documented: assumed ValidationException).
    return awsError(call, 400, 'ValidationException', 'InstanceInformationFilterList and Filters cannot be used together.');
  }
  const conditions: { key: string; values: string[]; read: ((instance: ManagedInstance) => string) | undefined }[] = [];
  for (const filter of filters) {
    if (isObject(filter)) conditions.push({ key: str(filter.Key) ?? '', values: strings(filter.Values), read: filterKeys[str(filter.Key) ?? ''] });
  }
  for (const filter of legacy) {
    if (isObject(filter)) conditions.push({ key: str(filter.key) ?? '', values: strings(filter.valueSet), read: legacyFilterKeys[str(filter.key) ?? ''] });
  }
  for (const condition of conditions) {
    if (!condition.read) {
      return awsError(call, 400, 'InvalidFilterKey', `The harness does not simulate the filter key "${condition.key}"`);
    }
    if (condition.values.length === 0) {
      return awsError(call, 400, 'InvalidInstanceInformationFilterValue', `Filter ${condition.key} has no values`);
    }
    // Seen from AWS (boto/boto3#3027): "ResourceType filter may contain only one value."
    if (condition.key === 'ResourceType' && condition.values.length > 1) {
      return awsError(call, 400, 'InvalidInstanceInformationFilterValue', 'ResourceType filter may contain only one value.');
    }
    // API reference: "If you specify a node ID that isn't valid or a node that you don't own, you
    // receive an error." What AWS answers for a well-formed id it has never seen is unverified, so
    // both are simulated: left out (default) or InvalidInstanceId.
    if (condition.key === 'InstanceIds' && unknownIds === 'error') {
      const unknown = condition.values.filter((id) => !registry.has(id));
      if (unknown.length > 0) return awsError(call, 400, 'InvalidInstanceId', `Instance ids not valid: ${unknown.join(', ')}`);
    }
  }
  const matching = [...registry.values()].filter((instance) =>
    conditions.every((condition) => condition.values.includes(condition.read?.(instance) ?? '')),
  );
  const offset = pageToken.decode(str(input.NextToken));
  if (offset === undefined) return awsError(call, 400, 'InvalidNextToken', 'The specified token is not valid.');
  // AWS does not document the default page size; a small one makes missing pagination visible.
  const pageSize = typeof input.MaxResults === 'number' ? input.MaxResults : 10;
  const page = matching.slice(offset, offset + pageSize);
  const next = offset + pageSize < matching.length ? pageToken.encode(offset + pageSize) : undefined;
  return jsonAnswer(call, {
    InstanceInformationList: page.map((instance) => ({
      InstanceId: instance.instanceId,
      PingStatus: instance.pingStatus,
      LastPingDateTime: instance.lastPing.getTime() / 1000,
      AgentVersion: instance.agentVersion,
      IsLatestVersion: instance.isLatestVersion,
      PlatformType: instance.platformType,
      PlatformName: instance.platformName,
      ResourceType: 'EC2Instance',
      AssociationStatus: 'Success',
    })),
    ...(next ? { NextToken: next } : {}),
  });
}

// ---------------------------------------------------------------------------------------------

/** Options of {@link startAwsProxy}. */
export interface AwsProxyOptions {
  /** The moto server every request is forwarded to. */
  motoUrl: string;
  /**
   * API rate limits (test/simulator/api-buckets.ts): each call whose API has a bucket takes a
   * token in its account and region, and is answered with the service's throttling error when the
   * bucket is empty. Default: none, every call goes through.
   */
  buckets?: ApiBuckets;
}

/**
 * Starts the proxy on a free port of 127.0.0.1.
 *
 * @example
 * const proxy = await startAwsProxy({ motoUrl });
 * process.env.AWS_ENDPOINT_URL = proxy.url;
 * proxy.ssm.register('i-0123456789abcdef0', { platformType: 'Linux' });
 * proxy.commands.setOutcome('i-0123456789abcdef0', { status: 'Failed', step: 'installAgent', output: 'no space left' });
 * proxy.faults.set((service, operation) => (operation === 'SendCommand' ? 'throttle' : undefined));
 */
export async function startAwsProxy(options: AwsProxyOptions): Promise<AwsProxy> {
  const moto = new URL(options.motoUrl);
  const agent = new Agent({ keepAlive: true });

  const places = new Map<string, PlaceState>();
  let registrationRequired = true;
  let unknownInstanceIds: 'omit' | 'error' = 'omit';
  const commands = new Map<string, CommandRecord>();
  const identities = new Map<string, Promise<CallerIdentity>>();
  const accountKeys = new Map<string, Promise<string>>();
  const functions = new Map<string, InvokedFunction>();
  let injector: FaultInjector | undefined;
  let buckets = options.buckets;
  let callLog: AwsCall[] = [];

  /** The simulated Systems Manager state of one account and region, created on first use. */
  function stateOf(place: Place): PlaceState {
    const key = placeLabel(place);
    let state = places.get(key);
    if (!state) places.set(key, (state = { registry: new Map(), outcomeQueues: new Map(), agents: new Map() }));
    return state;
  }

  /** A request moto attributes to the owner of `accessKeyId` (moto does not check signatures). */
  function signedAs(accessKeyId: string, service: string, region: string): IncomingHttpHeaders {
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
    return {
      host: `${moto.hostname}:${moto.port}`,
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${day}/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`,
    };
  }

  async function queryMoto(accessKeyId: string, service: string, parameters: Record<string, string>): Promise<{ status: number; text: string }> {
    const body = Buffer.from(new URLSearchParams(parameters).toString());
    const { response, body: answer } = await toMoto('POST', '/', { ...signedAs(accessKeyId, service, defaultPlace.region), 'content-length': String(body.length) }, body);
    return { status: response.statusCode ?? 502, text: answer.toString('utf8') };
  }

  /**
   * The account and ARN moto serves a key as (STS GetCallerIdentity): its default account for a key
   * it never minted, the role's account for one from AssumeRole. Cached per key.
   */
  function identityOf(accessKeyId: string): Promise<CallerIdentity> {
    let identity = identities.get(accessKeyId);
    if (!identity) {
      identity = queryMoto(accessKeyId, 'sts', { Action: 'GetCallerIdentity', Version: '2011-06-15' }).then(({ text }) => ({
        account: xmlText(text, 'Account') ?? defaultPlace.account,
        arn: xmlText(text, 'Arn') ?? `arn:aws:iam::${defaultPlace.account}:root`,
      }));
      identity.catch(() => identities.delete(accessKeyId));
      identities.set(accessKeyId, identity);
    }
    return identity;
  }

  /** The account and region a call acts in. */
  async function placeOfCall(call: CallInfo): Promise<Place> {
    return { account: (await identityOf(call.accessKeyId)).account, region: call.region || defaultPlace.region };
  }

  /** A key moto serves as `account`, for the proxy's own reads there (minted once per account). */
  function keyOfAccount(account: string): Promise<string> {
    let key = accountKeys.get(account);
    if (!key) {
      key = queryMoto('testing', 'sts', {
        Action: 'AssumeRole',
        Version: '2011-06-15',
        RoleArn: `arn:aws:iam::${account}:role/cwap-aws-proxy`,
        RoleSessionName: 'cwap-aws-proxy',
      }).then(({ text }) => {
        const id = xmlText(text, 'AccessKeyId');
        if (!id) throw new Error(`aws-proxy: moto minted no key for ${account}: ${text.slice(0, 200)}`);
        return id;
      });
      key.catch(() => accountKeys.delete(account));
      accountKeys.set(account, key);
    }
    return key;
  }

  /**
   * STS AssumeRole (API reference, Errors: AccessDenied is not listed, but IAM's "Troubleshoot IAM
   * roles" shows it: "User: ... is not authorized to perform: sts:AssumeRole on resource: ..." when
   * the role does not exist or its trust policy does not name the caller). moto mints credentials
   * for any ARN; here the role must exist in its account (GetRole as that account) and one Allow
   * statement of its trust policy must name the caller's role (or its account) for sts:AssumeRole.
   * Conditions are not evaluated (assumed: the harness has no organization to test them against).
   */
  async function assumeRole(call: CallInfo, body: Buffer): Promise<Answer | 'forward'> {
    const form = new URLSearchParams(body.toString('utf8'));
    const roleArn = form.get('RoleArn') ?? '';
    const account = accountOfArn(roleArn);
    const roleName = roleArn.slice(roleArn.lastIndexOf('/') + 1);
    if (!account || !roleArn.includes(':role/')) return 'forward';
    const caller = await identityOf(call.accessKeyId);
    const denied = () =>
      awsError(call, 403, 'AccessDenied', `User: ${caller.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`);
    const role = await queryMoto(await keyOfAccount(account), 'iam', { Action: 'GetRole', Version: '2010-05-08', RoleName: roleName });
    if (role.status !== 200) return denied();
    const document = xmlText(role.text, 'AssumeRolePolicyDocument');
    return document !== undefined && trustsCaller(document, caller) ? 'forward' : denied();
  }

  /** Sends a request to moto and buffers the answer. */
  function toMoto(method: string, path: string, headers: IncomingHttpHeaders, body: Buffer): Promise<{ response: IncomingMessage; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const outgoing = httpRequest(
        { host: moto.hostname, port: moto.port, method, path, headers, agent },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ response, body: Buffer.concat(chunks) }));
          response.on('error', reject);
        },
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  /** Forwards a request to moto and streams its answer back unchanged. */
  function forward(req: IncomingMessage, res: ServerResponse, body: Buffer, done: (status: number) => void): void {
    const outgoing = httpRequest(
      { host: moto.hostname, port: moto.port, method: req.method, path: req.url, headers: req.headers, agent },
      (response) => {
        res.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(res);
        response.on('end', () => done(response.statusCode ?? 502));
      },
    );
    outgoing.on('error', (error) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`aws-proxy: moto did not answer: ${error.message}`);
      done(502);
    });
    outgoing.end(body);
  }

  /** The document's steps, read from moto with the caller's own credentials scope. */
  async function documentSteps(name: string, headers: IncomingHttpHeaders): Promise<DocumentStep[] | undefined> {
    const body = Buffer.from(JSON.stringify({ Name: name }));
    const { response, body: answer } = await toMoto(
      'POST',
      '/',
      {
        host: headers.host,
        authorization: headers.authorization,
        'x-amz-target': 'AmazonSSM.GetDocument',
        'content-type': 'application/x-amz-json-1.1',
        'content-length': String(body.length),
      },
      body,
    );
    if (response.statusCode !== 200) return undefined;
    const content = str(parseJson(answer.toString('utf8')).Content);
    if (!content) return undefined;
    return documentStepsOf(content);
  }

  function nextOutcome(state: PlaceState, instanceId: string): CommandOutcome | undefined {
    const queue = state.outcomeQueues.get(instanceId);
    if (!queue || queue.length === 0) return undefined;
    return queue.length > 1 ? queue.shift() : queue[0];
  }

  async function sendCommand(call: CallInfo, req: IncomingMessage, body: Buffer, place: Place): Promise<Answer> {
    const { registry, agents } = stateOf(place);
    const input = parseJson(body.toString('utf8'));
    const requested = strings(input.InstanceIds);
    // SendCommand API reference: InstanceIds, "up to 50 IDs".
    if (requested.length > 50) {
      return awsError(
        call,
        400,
        'ValidationException',
        `1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50`,
      );
    }
    if (registrationRequired && requested.length > 0) {
      const unreachable = requested.filter((id) => {
        const instance = registry.get(id);
        return !instance || instance.pingStatus === 'Inactive';
      });
      if (unreachable.length > 0) {
        return awsError(
          call,
          400,
          'InvalidInstanceId',
          `Instances [[${unreachable.join(', ')}]] not in a valid state for account ${place.account}`,
        );
      }
    }
    const { response, body: answer } = await toMoto(req.method ?? 'POST', req.url ?? '/', req.headers, body);
    const status = response.statusCode ?? 502;
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(response.headers)) {
      if (typeof value === 'string' && key !== 'content-length' && key !== 'transfer-encoding') headers[key] = value;
    }
    if (status !== 200) return { status, headers, body: answer.toString('utf8') };
    const output = parseJson(answer.toString('utf8'));
    const command = isObject(output.Command) ? output.Command : undefined;
    const commandId = str(command?.CommandId);
    if (!command || !commandId) return { status, headers, body: answer.toString('utf8') };
    const instanceIds = requested.length > 0 ? requested : strings(command.InstanceIds);
    // moto adds every instance of the region to the command: report only the ones asked for.
    command.InstanceIds = instanceIds;
    // A real SendCommand answers with the counts at 0 (moto's own note; the CLI's documented output).
    command.TargetCount = 0;
    command.CompletedCount = 0;
    command.Status = 'Pending';
    command.StatusDetails = 'Pending';
    const documentName = str(input.DocumentName) ?? '';
    const parameters: Record<string, string[]> = {};
    if (isObject(input.Parameters)) for (const [key, value] of Object.entries(input.Parameters)) parameters[key] = strings(value);
    const record: CommandRecord = {
      commandId,
      account: place.account,
      region: place.region,
      documentName,
      instanceIds,
      parameters,
      comment: str(input.Comment) ?? '',
      requestedAt: new Date(),
      steps: undefined,
      outcomes: new Map(),
      runs: new Map(),
      polls: new Map(),
    };
    const plan = await documentSteps(documentName, req.headers).catch(() => undefined);
    record.steps = plan?.map((step) => step.name);
    for (const instanceId of instanceIds) {
      // An agent that is not connected never gets the command ("Understanding command statuses"),
      // so the instance's next outcome is kept for a command it does get.
      const outcome: CommandOutcome | undefined =
        registry.get(instanceId)?.pingStatus === 'ConnectionLost' ? { status: 'DeliveryTimedOut' } : nextOutcome(stateOf(place), instanceId);
      if (outcome) record.outcomes.set(instanceId, outcome);
      // One-step documents behave as moto has them unless the test set an outcome.
      if (!outcome && (!plan || plan.length < 2)) continue;
      const run = runCommand(plan ?? [{ name: 'aws:runShellScript', action: 'aws:runShellScript', inputs: {} }], outcome, agents.get(instanceId));
      record.runs.set(instanceId, run.invocation);
      if (run.agent) agents.set(instanceId, run.agent);
      else agents.delete(instanceId);
    }
    commands.set(commandId, record);
    return { status, headers, body: JSON.stringify(output) };
  }


  /** Counts a poll; true while the invocation should still look absent. */
  function stillInvisible(record: CommandRecord, instanceId: string): boolean {
    const polls = (record.polls.get(instanceId) ?? 0) + 1;
    record.polls.set(instanceId, polls);
    return polls <= (record.outcomes.get(instanceId)?.invisibleForPolls ?? 0);
  }

  function isoTime(date: Date): string {
    return date.toISOString();
  }

  const inPlace = (record: CommandRecord, place: Place) => record.account === place.account && record.region === place.region;

  function getCommandInvocation(call: CallInfo, input: Json, place: Place): Answer | 'forward' {
    const commandId = str(input.CommandId) ?? '';
    const instanceId = str(input.InstanceId) ?? '';
    const pluginName = str(input.PluginName);
    const record = commands.get(commandId);
    if (!record) return 'forward';
    const notFound = () =>
      awsError(call, 400, 'InvocationDoesNotExist', `Command ${commandId} has no invocation on ${instanceId}`);
    // Commands are per account and region: another place's command id is unknown here.
    if (!inPlace(record, place) || !record.instanceIds.includes(instanceId)) return notFound();
    if (stillInvisible(record, instanceId)) return notFound();
    const state = record.runs.get(instanceId);
    if (!state) return 'forward';
    let step: StepState | undefined;
    if (pluginName !== undefined) {
      step = state.steps.find((candidate) => candidate.name === pluginName);
      if (!step) return awsError(call, 400, 'InvalidPluginName', `The plugin name ${pluginName} is not valid.`);
    } else if (state.steps.length > 1) {
      // AWS: "If the document contains more than one plugin, you must specify the name of the
      // plugin for which you want to view details."
      return awsError(call, 400, 'InvalidPluginName', 'The document has several steps: specify PluginName.');
    } else {
      step = state.steps[0];
    }
    const start = record.requestedAt;
    const finished = step && !['Pending', 'InProgress'].includes(step.status);
    return jsonAnswer(call, {
      CommandId: commandId,
      InstanceId: instanceId,
      Comment: record.comment,
      DocumentName: record.documentName,
      DocumentVersion: '$DEFAULT',
      PluginName: step?.name ?? '',
      ResponseCode: step?.responseCode ?? state.responseCode,
      ExecutionStartDateTime: isoTime(start),
      ExecutionElapsedTime: finished ? 'PT1M' : '',
      ExecutionEndDateTime: finished ? isoTime(new Date(start.getTime() + 60_000)) : '',
      Status: step?.status ?? state.status,
      StatusDetails: step?.statusDetails ?? state.statusDetails,
      StandardOutputContent: step?.output ?? '',
      StandardOutputUrl: '',
      StandardErrorContent: step?.errorOutput ?? '',
      StandardErrorUrl: '',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    });
  }

  function listCommandInvocations(call: CallInfo, input: Json, place: Place): Answer {
    const tooMany = checkMaxResults(call, input.MaxResults, 1, 50);
    if (tooMany) return tooMany;
    const commandId = str(input.CommandId);
    const instanceId = str(input.InstanceId);
    const details = input.Details === true;
    const rows: Json[] = [];
    const newestFirst = [...commands.values()].reverse();
    for (const record of newestFirst) {
      if (!inPlace(record, place)) continue;
      if (commandId !== undefined && record.commandId !== commandId) continue;
      for (const target of record.instanceIds) {
        if (instanceId !== undefined && target !== instanceId) continue;
        if (stillInvisible(record, target)) continue;
        const state = record.runs.get(target) ?? runCommand([{ name: 'aws:runShellScript', action: 'aws:runShellScript', inputs: {} }], undefined, undefined).invocation;
        const requested = record.requestedAt.getTime() / 1000;
        rows.push({
          CommandId: record.commandId,
          InstanceId: target,
          InstanceName: '',
          Comment: record.comment,
          DocumentName: record.documentName,
          DocumentVersion: '$DEFAULT',
          RequestedDateTime: requested,
          Status: state.status,
          StatusDetails: state.statusDetails,
          TraceOutput: '',
          StandardOutputUrl: '',
          StandardErrorUrl: '',
          ServiceRole: '',
          CommandPlugins: details
            ? state.steps.map((step) => ({
                Name: step.name,
                Status: step.status,
                StatusDetails: step.statusDetails,
                ResponseCode: step.responseCode,
                ResponseStartDateTime: requested,
                ...(['Pending', 'InProgress'].includes(step.status) ? {} : { ResponseFinishDateTime: requested + 60 }),
                Output: step.errorOutput && step.errorOutput !== step.output ? `${step.output}\n${step.errorOutput}` : step.output,
                StandardOutputUrl: '',
                StandardErrorUrl: '',
                OutputS3Region: 'us-east-1',
                OutputS3BucketName: '',
                OutputS3KeyPrefix: '',
              }))
            : [],
          CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
        });
      }
    }
    const offset = pageToken.decode(str(input.NextToken));
    if (offset === undefined) return awsError(call, 400, 'InvalidNextToken', 'The specified token is not valid.');
    const pageSize = typeof input.MaxResults === 'number' ? input.MaxResults : 50;
    const next = offset + pageSize < rows.length ? pageToken.encode(offset + pageSize) : undefined;
    return jsonAnswer(call, { CommandInvocations: rows.slice(offset, offset + pageSize), ...(next ? { NextToken: next } : {}) });
  }

  /**
   * Lambda Invoke (API reference): `POST /2015-03-31/functions/{FunctionName}/invocations`; a
   * RequestResponse call answers 200 with the function's result, or 200 with
   * `X-Amz-Function-Error: Unhandled` and `{errorType, errorMessage}` when it throws; an `Event`
   * call answers 202 at once and runs the function after.
   */
  async function invoke(call: CallInfo, req: IncomingMessage, body: Buffer): Promise<Answer | 'forward'> {
    const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(req.url ?? '');
    if (req.method !== 'POST' || !match?.[1]) return 'forward';
    const name = decodeURIComponent(match[1]);
    const run = functions.get(name) ?? functions.get(name.slice(name.lastIndexOf(':') + 1));
    if (!run) return 'forward';
    const payload: unknown = body.length > 0 ? JSON.parse(body.toString('utf8')) : {};
    const headers = { 'content-type': 'application/json', 'x-amz-executed-version': '$LATEST', 'x-amzn-requestid': randomUUID() };
    if (req.headers['x-amz-invocation-type'] === 'Event') {
      setImmediate(() => void run(payload).catch(() => undefined));
      return { status: 202, headers, body: '' };
    }
    try {
      const result = await run(payload);
      return { status: 200, headers, body: JSON.stringify(result ?? null) };
    } catch (error) {
      const failure = error instanceof Error ? { errorType: error.name, errorMessage: error.message, trace: [] } : { errorType: 'Error', errorMessage: String(error), trace: [] };
      return { status: 200, headers: { ...headers, 'x-amz-function-error': 'Unhandled' }, body: JSON.stringify(failure) };
    }
  }

  /** The simulated answer for a call, or 'forward' to let moto answer. */
  async function simulate(call: CallInfo, req: IncomingMessage, body: Buffer): Promise<Answer | 'forward'> {
    if (call.service === 'lambda') return invoke(call, req, body);
    if (call.service === 'sts' && call.operation === 'AssumeRole') return assumeRole(call, body);
    if (call.service !== 'ssm' || call.protocol !== 'json') return 'forward';
    const input = () => parseJson(body.toString('utf8'));
    switch (call.operation) {
      case 'DescribeInstanceInformation':
        return describeInstanceInformation(call, input(), stateOf(await placeOfCall(call)).registry, unknownInstanceIds);
      case 'ListCommandInvocations':
        return listCommandInvocations(call, input(), await placeOfCall(call));
      case 'SendCommand':
        return sendCommand(call, req, body, await placeOfCall(call));
      case 'GetCommandInvocation':
        return getCommandInvocation(call, input(), await placeOfCall(call));
      default:
        return 'forward';
    }
  }

  function send(res: ServerResponse, answer: Answer): void {
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(Buffer.byteLength(answer.body)) });
    res.end(answer.body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const call = identify(req.method ?? 'GET', req.url ?? '/', req.headers, body.toString('utf8'));
    if (!call) {
      forward(req, res, body, () => undefined);
      return;
    }
    const instanceIds = call.protocol === 'ec2' ? ec2InstanceIds(body.toString('utf8')) : [];
    const published = call.service === 'sns' && call.operation === 'Publish' && call.protocol === 'query' ? snsPublish(body.toString('utf8')) : undefined;
    const log = (status: number) =>
      callLog.push({ service: call.service, operation: call.operation, status, ...(instanceIds.length > 0 ? { instanceIds } : {}), ...(published ? { published } : {}) });
    // API rate limits: an empty bucket answers as the service does, before anything else happens.
    // The bucket is the caller's account's (its access key's), in the signing region.
    const taken = buckets
      ? buckets.take({
          service: call.service,
          operation: call.operation,
          body: body.toString('utf8'),
          authorization: req.headers.authorization,
          place: await placeOfCall(call),
        })
      : undefined;
    if (taken?.ok === false) {
      const answer = faultAnswer(call, 'throttle');
      log(answer.status);
      send(res, answer);
      return;
    }
    const fault = injector?.(call.service, call.operation);
    if (typeof fault === 'object') {
      await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
    } else if (fault) {
      const answer = faultAnswer(call, fault);
      log(answer.status);
      send(res, answer);
      return;
    }
    const answer = await simulate(call, req, body);
    if (answer === 'forward') {
      forward(req, res, body, log);
      return;
    }
    log(answer.status);
    send(res, answer);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`aws-proxy: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const sentCommands = (place?: Place): SentCommand[] =>
    [...commands.values()]
      .filter((record) => !place || inPlace(record, place))
      .map(({ outcomes: _outcomes, runs: _runs, polls: _polls, ...sent }) => ({ ...sent, instanceIds: [...sent.instanceIds] }));

  /** The simulated Systems Manager of one place, as tests and the simulator drive it. */
  function simulationOf(place: Place, allPlacesSent: boolean): PlaceSimulation {
    const state = () => stateOf(place);
    const requireRegistered = (instanceId: string): ManagedInstance => {
      const instance = state().registry.get(instanceId);
      if (!instance) throw new Error(`aws-proxy: ${instanceId} is not registered with the simulated SSM of ${placeLabel(place)}`);
      return instance;
    };
    return {
      ssm: {
        register(instanceId, registration) {
          state().registry.set(instanceId, {
            instanceId,
            platformType: registration.platformType,
            pingStatus: registration.pingStatus ?? 'Online',
            agentVersion: registration.agentVersion ?? defaultAgentVersion,
            isLatestVersion: registration.isLatestVersion ?? true,
            lastPing: registration.lastPing ?? new Date(),
            platformName:
              registration.platformName ??
              (registration.platformType === 'Windows' ? 'Microsoft Windows Server 2022 Datacenter' : 'Amazon Linux'),
          });
        },
        setPing(instanceId, pingStatus, at = new Date()) {
          const instance = requireRegistered(instanceId);
          instance.pingStatus = pingStatus;
          instance.lastPing = at;
        },
        unregister(instanceId) {
          state().registry.delete(instanceId);
        },
        get(instanceId) {
          const instance = state().registry.get(instanceId);
          return instance ? { ...instance } : undefined;
        },
        requireRegistration(required) {
          registrationRequired = required;
        },
        unknownInstanceIds(mode) {
          unknownInstanceIds = mode;
        },
      },
      commands: {
        setOutcome(instanceId, ...outcomes) {
          if (outcomes.length === 0) throw new Error('aws-proxy: setOutcome needs at least one outcome');
          state().outcomeQueues.set(instanceId, [...outcomes]);
        },
        clearOutcome(instanceId) {
          state().outcomeQueues.delete(instanceId);
        },
        sent: () => sentCommands(allPlacesSent ? undefined : place),
        invocation(commandId, instanceId) {
          const run = commands.get(commandId)?.runs.get(instanceId);
          return run ? structuredClone(run) : undefined;
        },
      },
      agents: {
        get(instanceId) {
          const agent = state().agents.get(instanceId);
          return agent ? { ...agent } : undefined;
        },
        set(instanceId, agent) {
          if (agent) state().agents.set(instanceId, { ...agent });
          else state().agents.delete(instanceId);
        },
      },
    };
  }
  const defaultSimulation = simulationOf(defaultPlace, true);

  return {
    url: `http://127.0.0.1:${port}`,
    motoUrl: options.motoUrl,
    defaultPlace: { ...defaultPlace },
    ...defaultSimulation,
    place: (place) => simulationOf({ account: place.account, region: place.region }, false),
    lambda: {
      register(functionName, run) {
        functions.set(functionName.slice(functionName.lastIndexOf(':') + 1), run);
      },
    },
    faults: {
      set(next) {
        injector = next;
      },
      clear() {
        injector = undefined;
      },
    },
    buckets: {
      set(next) {
        buckets = next;
      },
      current: () => buckets,
    },
    calls: () => callLog.map((call) => ({ ...call })),
    callsSince: (start) => callLog.slice(Math.max(0, start)).map((call) => ({ ...call })),
    callCount: () => callLog.length,
    resetCalls() {
      callLog = [];
    },
    reset() {
      places.clear();
      identities.clear();
      accountKeys.clear();
      registrationRequired = true;
      unknownInstanceIds = 'omit';
      commands.clear();
      functions.clear();
      injector = undefined;
      buckets = options.buckets;
      callLog = [];
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      agent.destroy();
    },
  };
}
