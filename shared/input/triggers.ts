import { InvalidInputError } from '../errors.js';
import * as z from 'zod';
import type { Place } from '../aws/place.js';

const instanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, 'not an EC2 instance id (i-0123456789abcdef0)');

const accountId = z.string().regex(/^\d{12}$/, 'not a 12-digit AWS account id');
const regionName = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'not an AWS region name (eu-west-1)');

/**
 * Where the instance lives, in the product's own inputs (schedules, remediation, by hand): both
 * `account` and `region`, or neither (the hub's own account and region).
 */
const placeKeys = { account: accountId.optional(), region: regionName.optional() };
const bothOrNeither = (input: { account?: string | undefined; region?: string | undefined }) => (input.account === undefined) === (input.region === undefined);
const bothOrNeitherProblem = { message: 'give both account and region, or neither (the hub\'s own)', path: ['account'] };

/** The place of a parsed input: undefined (the hub's) unless both keys are there. */
function placeOf(input: { account?: string | undefined; region?: string | undefined }): Place | undefined {
  return input.account !== undefined && input.region !== undefined ? { account: input.account, region: input.region } : undefined;
}

const attempt = z.number().int().min(1, 'expected 1 to 1000').max(1000, 'expected 1 to 1000');

/**
 * The EventBridge "EC2 Instance State-change Notification" the rules deliver.
 *
 * How strict: the envelope is EventBridge's, not the product's. Its documented fields (version,
 * id, detail-type, source, account, time, region, resources, detail) are accepted and type-checked,
 * and a key EventBridge adds beyond them is let through: it adds `replay-name` to replayed events
 * and may add more, and no envelope key changes what the product does, so a stray one cannot make
 * it do something else. The `detail` is what the product acts on: EC2 defines it as exactly
 * `instance-id` and `state`, so any other key there means the input is not that event (a
 * hand-written one with a typo), and it is refused, naming the key.
 */
const stateChangeEvent = z.looseObject({
  version: z.string().optional(),
  id: z.string().optional(),
  'detail-type': z.literal('EC2 Instance State-change Notification'),
  source: z.literal('aws.ec2'),
  account: accountId.optional(),
  time: z.string().optional(),
  region: regionName.optional(),
  resources: z.array(z.string()).optional(),
  'replay-name': z.string().optional(),
  detail: z.strictObject({
    'instance-id': instanceId,
    state: z.string().min(1, 'expected a state name'),
  }),
});

/** The input of a scheduled onboarding retry (written by the product itself, or by hand). */
const onboardRetry = z.strictObject({ instanceId, attempt, ...placeKeys }).refine(bothOrNeither, bothOrNeitherProblem);

/**
 * A request to onboard an instance again because a fleet audit found it unmonitored (written by
 * the audit, or by hand): `{ "instanceId": "i-...", "remediate": true, "requestedBy": "audit" }`.
 */
const remediateRequest = z
  .strictObject({
    instanceId,
    remediate: z.literal(true),
    requestedBy: z.string().min(1, 'expected 1 to 200 characters').max(200, 'expected 1 to 200 characters').optional(),
    ...placeKeys,
  })
  .refine(bothOrNeither, bothOrNeitherProblem);

/**
 * What started an onboarding invocation. `place` is where the instance lives (the event's
 * `account` and `region`, or the input's); undefined means the hub's own account and region.
 */
export type OnboardTrigger = { place?: Place | undefined } & (
  | { kind: 'state-change'; instanceId: string; state: string; time: string | undefined }
  | { kind: 'retry'; instanceId: string; attempt: number }
  /** An audit (or a person) asks for onboarding again; may restart a finished or failed launch. */
  | { kind: 'remediate'; instanceId: string; requestedBy: string | undefined }
);

const expectedNames: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  array: 'an array',
};

/** A short, safe description of a value found in an input (never the whole of a huge string). */
function received(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** The value at `path` in an input, by own properties only (a key named "constructor" is data). */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

const keyName = (key: string) => (/^[\w.-]+$/.test(key) ? key : JSON.stringify(key));

/**
 * One line per problem of an input, each naming its key: `instanceId: expected a string, got
 * number 42`, `dryRun: unknown key`, `attempt: missing, expected a number`. `(input)` is the input
 * as a whole.
 *
 * @example
 * throw new InvalidInputError(`check: expected { instanceId, attempt?, account?, region? }: ${describeInputProblems(parsed.error, input)}`);
 */
export function describeInputProblems(error: z.ZodError, input: unknown): string {
  return error.issues
    .flatMap((issue) => {
      const at = issue.path.map(String).join('.');
      const name = at || '(input)';
      if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${at ? `${at}.` : ''}${keyName(key)}: unknown key`);
      const value = valueAt(input, issue.path);
      if (issue.code === 'invalid_type') {
        const expected = expectedNames[issue.expected] ?? issue.expected;
        return [value === undefined ? `${name}: missing, expected ${expected}` : `${name}: expected ${expected}, got ${received(value)}`];
      }
      if (issue.code === 'invalid_value') {
        const expected = issue.values.map((option) => JSON.stringify(option)).join(' or ');
        return [value === undefined ? `${name}: missing, expected ${expected}` : `${name}: expected ${expected}, got ${received(value)}`];
      }
      return [`${name}: ${issue.message}, got ${received(value)}`];
    })
    .join('; ');
}

const hasKey = (input: unknown, ...keys: string[]): boolean =>
  typeof input === 'object' && input !== null && !Array.isArray(input) && keys.some((key) => Object.hasOwn(input, key));

/** An EventBridge event, as opposed to one of the product's own inputs: it has the envelope's keys. */
const looksLikeEvent = (input: unknown) => hasKey(input, 'source', 'detail-type', 'detail');

/**
 * Reads an onboarding trigger: an EC2 state-change event, `{ instanceId, attempt }` from a
 * scheduled retry, or `{ instanceId, remediate: true, requestedBy? }` from an audit. Which one an
 * input means is told by its keys (the envelope's, `remediate`, `attempt`); it is then read with
 * that schema only, so the error names what is wrong with it and nothing about the others. Any
 * other input, or a key none of them has, is rejected with {@link InvalidInputError}.
 */
export function parseOnboardTrigger(input: unknown): OnboardTrigger {
  if (looksLikeEvent(input)) {
    const asEvent = stateChangeEvent.safeParse(input);
    if (!asEvent.success) throw new InvalidInputError(`onboard: not an EC2 instance state-change event: ${describeInputProblems(asEvent.error, input)}`);
    return {
      kind: 'state-change',
      instanceId: asEvent.data.detail['instance-id'],
      state: asEvent.data.detail.state,
      time: asEvent.data.time,
      place: placeOf(asEvent.data),
    };
  }
  if (hasKey(input, 'remediate')) {
    const asRemediation = remediateRequest.safeParse(input);
    if (!asRemediation.success) {
      throw new InvalidInputError(`onboard: not a remediation { instanceId, remediate: true, requestedBy? }: ${describeInputProblems(asRemediation.error, input)}`);
    }
    return { kind: 'remediate', instanceId: asRemediation.data.instanceId, requestedBy: asRemediation.data.requestedBy, place: placeOf(asRemediation.data) };
  }
  if (hasKey(input, 'attempt')) {
    const asRetry = onboardRetry.safeParse(input);
    if (!asRetry.success) throw new InvalidInputError(`onboard: not a retry { instanceId, attempt }: ${describeInputProblems(asRetry.error, input)}`);
    return { kind: 'retry', instanceId: asRetry.data.instanceId, attempt: asRetry.data.attempt, place: placeOf(asRetry.data) };
  }
  const expected = 'onboard: expected an EC2 state-change event, a retry { instanceId, attempt } or a remediation { instanceId, remediate: true }';
  const idOnly = z.strictObject({ instanceId }).safeParse(input);
  if (!idOnly.success) throw new InvalidInputError(`${expected}: ${describeInputProblems(idOnly.error, input)}`);
  throw new InvalidInputError(`${expected}: (input): an instance id alone is not enough: add "attempt" (a scheduled retry) or "remediate": true (a remediation)`);
}

/**
 * The input of a check: `{ instanceId, attempt }` from its schedule, or `{ instanceId }` by hand
 * (no attempt: it runs as the next one). Unknown keys are refused.
 */
const checkRequest = z.strictObject({ instanceId, attempt: attempt.optional(), ...placeKeys }).refine(bothOrNeither, bothOrNeitherProblem);

export interface CheckRequest {
  instanceId: string;
  attempt: number | undefined;
  /** Where the instance lives; undefined: the hub's own account and region. */
  place?: Place | undefined;
}

/** A batch check, from the schedule an onboarding batch or an earlier batch check created. */
export interface CheckBatchRequest {
  instanceIds: string[];
  attempt: number;
  /** The look of the batch's look plan (check-policy `lookPlan`); undefined: a full check (a retry). */
  look: number | undefined;
  /** Where the instances live; undefined: the hub's own account and region. */
  place?: Place | undefined;
}

/** One schedule's batch: one GetMetricData call of 500 queries covers 250 instances (two metrics each). */
const checkBatchRequest = z
  .strictObject({
    instanceIds: z.array(instanceId).min(1, 'expected 1 to 250 instance ids').max(250, 'expected 1 to 250 instance ids'),
    attempt,
    look: z.number().int().min(1, 'expected 1 to 50').max(50, 'expected 1 to 50').optional(),
    ...placeKeys,
  })
  .refine(bothOrNeither, bothOrNeitherProblem);

/** A checker invocation's input: one instance, or a batch. */
export type CheckInput = { kind: 'one'; request: CheckRequest } | { kind: 'batch'; request: CheckBatchRequest };

/**
 * Reads a checker invocation's input: a batch (`instanceIds`) or one instance (as
 * {@link parseCheckRequest}), rejecting anything else with {@link InvalidInputError}.
 */
export function parseCheckInput(input: unknown): CheckInput {
  if (!hasKey(input, 'instanceIds')) return { kind: 'one', request: parseCheckRequest(input) };
  const parsed = checkBatchRequest.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`check: expected a batch { instanceIds, attempt, look?, account?, region? }: ${describeInputProblems(parsed.error, input)}`);
  const { instanceIds, attempt: batchAttempt, look } = parsed.data;
  return { kind: 'batch', request: { instanceIds: [...new Set(instanceIds)], attempt: batchAttempt, look, place: placeOf(parsed.data) } };
}

/** Reads a checker invocation's input, rejecting anything else with {@link InvalidInputError}. */
export function parseCheckRequest(input: unknown): CheckRequest {
  const parsed = checkRequest.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`check: expected { instanceId, attempt?, account?, region? }: ${describeInputProblems(parsed.error, input)}`);
  return { instanceId: parsed.data.instanceId, attempt: parsed.data.attempt, place: placeOf(parsed.data) };
}

/**
 * What an offboarding invocation is about: a termination or a stop from EventBridge, or an instance
 * named by hand (no `state`: EC2 is asked). `ignore` says why an event needs nothing.
 */
export interface OffboardRequest {
  instanceId: string;
  /** Where the instance lives; undefined: the hub's own account and region. */
  place?: Place | undefined;
  state?: 'terminated' | 'stopped';
  ignore?: string;
}

const offboardByHand = z.strictObject({ instanceId, ...placeKeys }).refine(bothOrNeither, bothOrNeitherProblem);

/**
 * Reads an offboarding input: an EC2 state-change event (`terminated` / `shutting-down` and
 * `stopped` / `stopping` are acted on; another state is returned with `ignore`), or
 * `{ instanceId }` by hand. Anything else is rejected with {@link InvalidInputError}.
 */
export function parseOffboardRequest(input: unknown): OffboardRequest {
  if (looksLikeEvent(input)) {
    const asEvent = stateChangeEvent.safeParse(input);
    if (!asEvent.success) throw new InvalidInputError(`offboard: not an EC2 instance state-change event: ${describeInputProblems(asEvent.error, input)}`);
    const { 'instance-id': id, state } = asEvent.data.detail;
    const place = placeOf(asEvent.data);
    if (state === 'terminated' || state === 'shutting-down') return { instanceId: id, state: 'terminated', place };
    if (state === 'stopped' || state === 'stopping') return { instanceId: id, state: 'stopped', place };
    return { instanceId: id, ignore: `state ${state} is neither a stop nor a termination`, place };
  }
  const byHand = offboardByHand.safeParse(input);
  if (!byHand.success) {
    throw new InvalidInputError(`offboard: expected an EC2 state-change event or { instanceId }: ${describeInputProblems(byHand.error, input)}`);
  }
  return { instanceId: byHand.data.instanceId, place: placeOf(byHand.data) };
}

/** An onboarding trigger read from one message of the onboard queue. */
export interface QueuedTrigger {
  /** The SQS message id: what a partial batch response names when this instance's onboarding fails. */
  messageId: string;
  trigger: OnboardTrigger;
  /**
   * The message in flight: its receipt handle and its queue's ARN, what ChangeMessageVisibility
   * needs to time its next delivery. Lambda's records always carry both; a batch built by hand (a
   * test, the bench) may not, and its messages then keep the queue's visibility timeout.
   */
  delivery?: QueueDelivery;
  /** How many times SQS delivered the message (`ApproximateReceiveCount`), this delivery included; 1 when not said. */
  receiveCount: number;
}

/** Where a message of the onboard queue is held while its batch runs. */
export interface QueueDelivery {
  receiptHandle: string;
  queueArn: string;
}

/** Onboarding retries of many instances of one place, from the schedule a batch created. */
export interface OnboardRetryBatch {
  instanceIds: string[];
  attempt: number;
  place?: Place | undefined;
}

const onboardRetryBatch = z
  .strictObject({
    instanceIds: z.array(instanceId).min(1, 'expected 1 to 100 instance ids').max(100, 'expected 1 to 100 instance ids'),
    attempt,
    ...placeKeys,
  })
  .refine(bothOrNeither, bothOrNeitherProblem);

/** Whether an onboard input is a batch of scheduled retries (it has `instanceIds`). */
export function isOnboardRetryBatch(input: unknown): boolean {
  return hasKey(input, 'instanceIds');
}

/** Reads a batch of scheduled onboarding retries, rejecting anything else with {@link InvalidInputError}. */
export function parseOnboardRetryBatch(input: unknown): OnboardRetryBatch {
  const parsed = onboardRetryBatch.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`onboard: expected a batch of retries { instanceIds, attempt, account?, region? }: ${describeInputProblems(parsed.error, input)}`);
  return { instanceIds: [...new Set(parsed.data.instanceIds)], attempt: parsed.data.attempt, place: placeOf(parsed.data) };
}

/** A message of the onboard queue that is not an onboarding trigger. */
export interface UnreadableMessage {
  messageId: string;
  problem: string;
}

/** The envelope Lambda's SQS event source mapping delivers; a record's own keys beyond these are Lambda's. */
const queueEvent = z.object({
  Records: z
    .array(
      z.looseObject({
        messageId: z.string().min(1),
        body: z.string(),
        eventSource: z.literal('aws:sqs'),
        receiptHandle: z.string().min(1).optional(),
        eventSourceARN: z.string().min(1).optional(),
        attributes: z.looseObject({ ApproximateReceiveCount: z.string().optional() }).optional(),
      }),
    )
    .min(1),
});

/** True when an input is a batch from an SQS event source mapping (and not one of the direct inputs). */
export function isQueueBatch(input: unknown): boolean {
  if (!hasKey(input, 'Records')) return false;
  const records = (input as { Records: unknown }).Records;
  return Array.isArray(records) && records.length > 0 && records.every((record) => hasKey(record, 'eventSource') && (record as { eventSource: unknown }).eventSource === 'aws:sqs');
}

/**
 * Reads a batch of the onboard queue: each message body is an onboarding trigger (the EC2 event a
 * rule put on the queue), read by {@link parseOnboardTrigger}. A body that is not one is returned in
 * `unreadable` with the problem: it would fail on every delivery, so the caller logs and drops it
 * rather than send it round to the dead-letter queue. An input that is not an SQS batch at all is
 * rejected with {@link InvalidInputError}.
 *
 * @example
 * const { triggers, unreadable } = parseOnboardQueueBatch(event);
 */
export function parseOnboardQueueBatch(input: unknown): { triggers: QueuedTrigger[]; unreadable: UnreadableMessage[] } {
  const parsed = queueEvent.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`onboard: not an SQS batch { Records: [{ messageId, body, eventSource: "aws:sqs" }] }: ${describeInputProblems(parsed.error, input)}`);
  const triggers: QueuedTrigger[] = [];
  const unreadable: UnreadableMessage[] = [];
  for (const { messageId, body, receiptHandle, eventSourceARN, attributes } of parsed.data.Records) {
    const count = Number.parseInt(attributes?.ApproximateReceiveCount ?? '', 10);
    const receiveCount = Number.isFinite(count) && count > 1 ? count : 1;
    let content: unknown;
    try {
      content = JSON.parse(body);
    } catch {
      unreadable.push({ messageId, problem: `onboard: the message body is not JSON (${received(body)})` });
      continue;
    }
    try {
      const trigger = parseOnboardTrigger(content);
      triggers.push(receiptHandle && eventSourceARN ? { messageId, trigger, receiveCount, delivery: { receiptHandle, queueArn: eventSourceARN } } : { messageId, trigger, receiveCount });
    } catch (error) {
      if (!(error instanceof InvalidInputError)) throw error;
      unreadable.push({ messageId, problem: error.message });
    }
  }
  return { triggers, unreadable };
}

/** The run of an install window (its schedule's input): the window's end, and where its instances live. */
export interface InstallWindowRun {
  /** The window's end, in epoch seconds: with the place, the window item's key (install-window.ts). */
  windowEnd: number;
  place?: Place | undefined;
}

/** Epoch seconds from 2020 to 2100: a window's end in seconds, never one in milliseconds. */
const windowEnd = z
  .number()
  .int('expected whole epoch seconds')
  .min(1_577_836_800, 'expected epoch seconds of 2020 to 2100 (not milliseconds)')
  .max(4_102_444_800, 'expected epoch seconds of 2020 to 2100 (not milliseconds)');

const installWindowRun = z.strictObject({ installWindow: windowEnd, ...placeKeys }).refine(bothOrNeither, bothOrNeitherProblem);

/** Whether an onboard input is an install window's run (it has `installWindow`). */
export function isInstallWindowRun(input: unknown): boolean {
  return hasKey(input, 'installWindow');
}

/**
 * Reads the input of an install window's schedule, `{ installWindow: <end, epoch seconds>, account?,
 * region? }`, rejecting anything else with {@link InvalidInputError}.
 */
export function parseInstallWindowRun(input: unknown): InstallWindowRun {
  const parsed = installWindowRun.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`onboard: expected an install window's run { installWindow, account?, region? }: ${describeInputProblems(parsed.error, input)}`);
  return { windowEnd: parsed.data.installWindow, place: placeOf(parsed.data) };
}
