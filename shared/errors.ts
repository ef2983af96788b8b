/**
 * The product's named failures, in one place. Each says what went wrong in its name; all share
 * {@link AutopilotError}, which carries the original failure as `cause` so it survives every layer.
 *
 * @example
 * throw new StaleRecordError(`${instanceId}: the state record changed since it was read`, { cause: error });
 */
import type { BucketName } from './pacing/pacer.js';

/** The base of every failure the product raises on purpose; `cause` keeps the one underneath. */
export class AutopilotError extends Error {
  override name = 'AutopilotError';
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Raised at cold start when a setting is missing or wrong; the message names each one. */
export class InvalidSettingsError extends AutopilotError {
  override name = 'InvalidSettingsError';
}

/** Raised when an invocation's input is not something the function accepts; nothing was changed. */
export class InvalidInputError extends AutopilotError {
  override name = 'InvalidInputError';
}

/** Raised when the record changed since it was read: another invocation got there first. */
export class StaleRecordError extends AutopilotError {
  override name = 'StaleRecordError';
}

/** EC2 announced an instance that DescribeInstances does not show yet; Lambda's retry looks again. */
export class InstanceNotYetVisibleError extends AutopilotError {
  override name = 'InstanceNotYetVisibleError';
}

/** The instance disappeared (terminated) while onboarding was changing it. */
export class InstanceGoneError extends AutopilotError {
  override name = 'InstanceGoneError';
}

/**
 * The place's share of an account bucket is spent for longer than the invocation may wait: the
 * instance is continued later (its message delivered again), its record saying where it is.
 * `needs` says which tokens it waits for, so the batch can tell SQS when to deliver it again.
 */
export class PacedLaterError extends AutopilotError {
  override name = 'PacedLaterError';
  /** Tokens per bucket the instance needs when it comes back (a fraction: its share of a call for several instances). */
  readonly needs: Partial<Record<BucketName, number>>;
  constructor(message: string, options: ErrorOptions & { needs: Partial<Record<BucketName, number>> }) {
    super(message, options);
    this.needs = options.needs;
  }
}

/** SSM said the instance cannot take commands yet (not registered / not online). */
export class InstanceNotReachableError extends AutopilotError {
  override name = 'InstanceNotReachableError';
}

/** The alert was decided and recorded, but SNS did not take it; the record stays `alerting`. */
export class AlertNotSentError extends AutopilotError {
  override name = 'AlertNotSentError';
}

/** The hub could not act in a member account and region: its execution role is missing or denies. */
export class MemberAccessError extends AutopilotError {
  override name = 'MemberAccessError';
  readonly place: { account: string; region: string };
  readonly roleArn: string;
  constructor(message: string, options: ErrorOptions & { place: { account: string; region: string }; roleArn: string }) {
    super(message, options);
    this.place = options.place;
    this.roleArn = options.roleArn;
  }
}
