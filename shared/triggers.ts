import * as z from 'zod';

const instanceId = z
  .string({ error: 'instance id missing' })
  .regex(/^i-[0-9a-f]{8,17}$/, 'not an EC2 instance id (i-0123456789abcdef0)');

/** The EventBridge "EC2 Instance State-change Notification" fields the product reads. */
const stateChangeEvent = z.object({
  source: z.literal('aws.ec2'),
  'detail-type': z.literal('EC2 Instance State-change Notification'),
  time: z.string().optional(),
  detail: z.object({
    'instance-id': instanceId,
    state: z.string().min(1),
  }),
});

/** The input of a scheduled onboarding retry (written by the product itself, or by hand). */
const onboardRetry = z.object({
  instanceId,
  attempt: z.number().int().min(1).max(1000),
});

/**
 * A request to onboard an instance again because a fleet audit found it unmonitored (written by
 * the audit, or by hand): `{ "instanceId": "i-...", "remediate": true, "requestedBy": "audit" }`.
 */
const remediateRequest = z.object({
  instanceId,
  remediate: z.literal(true),
  requestedBy: z.string().min(1).max(200).optional(),
});

/** What started an onboarding invocation. */
export type OnboardTrigger =
  | { kind: 'state-change'; instanceId: string; state: string; time: string | undefined }
  | { kind: 'retry'; instanceId: string; attempt: number }
  /** An audit (or a person) asks for onboarding again; may restart a finished or failed launch. */
  | { kind: 'remediate'; instanceId: string; requestedBy: string | undefined };

/** Raised when an invocation's input is not something the function accepts; nothing was changed. */
export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
}

function explain(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(input)'}: ${issue.message}`)
    .join('; ');
}

/**
 * Reads an onboarding trigger: an EC2 state-change event, `{ instanceId, attempt }` from a
 * scheduled retry, or `{ instanceId, remediate: true }` from an audit. Anything else is rejected
 * with {@link InvalidInputError}.
 */
export function parseOnboardTrigger(input: unknown): OnboardTrigger {
  const asEvent = stateChangeEvent.safeParse(input);
  if (asEvent.success) {
    return {
      kind: 'state-change',
      instanceId: asEvent.data.detail['instance-id'],
      state: asEvent.data.detail.state,
      time: asEvent.data.time,
    };
  }
  const asRemediation = remediateRequest.safeParse(input);
  if (asRemediation.success) {
    return { kind: 'remediate', instanceId: asRemediation.data.instanceId, requestedBy: asRemediation.data.requestedBy };
  }
  const asRetry = onboardRetry.safeParse(input);
  if (asRetry.success) return { kind: 'retry', ...asRetry.data };
  const looksLikeEvent = typeof input === 'object' && input !== null && 'detail' in input;
  throw new InvalidInputError(
    `onboard: not an EC2 state-change event, a retry { instanceId, attempt } nor a remediation { instanceId, remediate: true }: ${explain(
      looksLikeEvent ? asEvent.error : asRetry.error,
    )}`,
  );
}

/**
 * The input of a check: `{ instanceId, attempt }` from its schedule, or `{ instanceId }` by hand
 * (no attempt: it runs as the next one). Unknown keys are refused.
 */
const checkRequest = z.strictObject({
  instanceId,
  attempt: z.number().int().min(1).max(1000).optional(),
});

export interface CheckRequest {
  instanceId: string;
  attempt: number | undefined;
}

/** Reads a checker invocation's input, rejecting anything else with {@link InvalidInputError}. */
export function parseCheckRequest(input: unknown): CheckRequest {
  const parsed = checkRequest.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`check: expected { "instanceId": "i-..." }: ${explain(parsed.error)}`);
  return { instanceId: parsed.data.instanceId, attempt: parsed.data.attempt };
}

/**
 * What an offboarding invocation is about: a termination or a stop from EventBridge, or an instance
 * named by hand (no `state`: EC2 is asked). `ignore` says why an event needs nothing.
 */
export interface OffboardRequest {
  instanceId: string;
  state?: 'terminated' | 'stopped';
  ignore?: string;
}

const offboardByHand = z.strictObject({ instanceId });

/**
 * Reads an offboarding input: an EC2 state-change event (`terminated` / `shutting-down` and
 * `stopped` / `stopping` are acted on; another state is returned with `ignore`), or
 * `{ instanceId }` by hand. Anything else is rejected with {@link InvalidInputError}.
 */
export function parseOffboardRequest(input: unknown): OffboardRequest {
  const asEvent = stateChangeEvent.safeParse(input);
  if (asEvent.success) {
    const { 'instance-id': id, state } = asEvent.data.detail;
    if (state === 'terminated' || state === 'shutting-down') return { instanceId: id, state: 'terminated' };
    if (state === 'stopped' || state === 'stopping') return { instanceId: id, state: 'stopped' };
    return { instanceId: id, ignore: `state ${state} is neither a stop nor a termination` };
  }
  const byHand = offboardByHand.safeParse(input);
  if (byHand.success) return { instanceId: byHand.data.instanceId };
  const looksLikeEvent = typeof input === 'object' && input !== null && 'detail' in input;
  throw new InvalidInputError(
    `offboard: not an EC2 state-change event nor { "instanceId": "i-..." }: ${explain(looksLikeEvent ? asEvent.error : byHand.error)}`,
  );
}
