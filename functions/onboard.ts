import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logger, logInvocationResult } from '../shared/observability/logger.js';
import { runOnboarding, type OnboardingResult } from '../shared/onboarding/onboarding.js';
import { runInstallWindow, runOnboardingBatch, runOnboardingRetryBatch, type InstallWindowResult, type OnboardingBatchResult } from '../shared/onboarding/onboarding-batch.js';
import { parseSettings } from '../shared/config/settings.js';
import { clientFactoryOf } from '../shared/aws/product-clients.js';
import { containerPacing } from '../shared/pacing/batch-pacing.js';
import { changeVisibility, type VisibilityChange } from '../shared/aws/queue-visibility.js';
import type { Context } from 'aws-lambda';
import { isInstallWindowRun, isOnboardRetryBatch, isQueueBatch, parseInstallWindowRun, parseOnboardQueueBatch, parseOnboardRetryBatch, parseOnboardTrigger } from '../shared/input/triggers.js';

// Parsed at cold start: a wrong setting stops the function here, naming the setting.
const settings = parseSettings();

/** Lambda's partial batch response (ReportBatchItemFailures): the messages to deliver again. */
export interface QueueBatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

/**
 * A batch of the onboard queue (EC2 "running" events the rules put there): the partial batch
 * response is written here rather than with @aws-lambda-powertools/batch, which has no release at
 * the version of the other Powertools packages, and it is one field. A message whose body is no
 * trigger is logged with its problem and dropped (it would fail on every delivery).
 *
 * The messages of instances the pacing left for later get a visibility timeout of their own, the
 * pacer's estimate of when their tokens are there, so they come back then instead of after the
 * queue's 360 s; the messages of instances that failed keep the queue's (a real failure should
 * back off). A visibility change that fails only means that message comes back after the queue's
 * timeout: it never fails the batch.
 */
async function onboardQueueBatch(event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<QueueBatchResponse> {
  const { triggers, unreadable } = parseOnboardQueueBatch(event);
  for (const message of unreadable) logger.error('dropped a message of the onboard queue that is no onboarding trigger', { messageId: message.messageId, error: message.problem });
  const factory = clientFactoryOf(settings);
  const batch = await runOnboardingBatch(triggers, settings, new Date(), factory, containerPacing(settings, () => context.getRemainingTimeInMillis()));
  logger.info('onboard batch', { messages: triggers.length + unreadable.length, dropped: unreadable.length, results: batch.results, failures: batch.failures, deferred: batch.deferred });
  const deliveries = new Map(triggers.map(({ messageId, delivery }) => [messageId, delivery]));
  const changes: VisibilityChange[] = batch.deferred.flatMap(({ messageIds, retryAfterSeconds }) =>
    messageIds.flatMap((messageId) => {
      const delivery = deliveries.get(messageId);
      return delivery ? [{ messageId, ...delivery, visibilityTimeoutSeconds: retryAfterSeconds }] : [];
    }),
  );
  // The onboard queue is the hub's, in the hub's region, whatever place its instances are in.
  if (changes.length) await changeVisibility(factory.clients(), changes);
  return { batchItemFailures: batch.batchItemFailures };
}

/** A batch of scheduled retries (`{ instanceIds, attempt }`): the batch's outcome, for the log and the caller. */
async function onboardRetryBatch(event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<Omit<OnboardingBatchResult, 'batchItemFailures'>> {
  const { batchItemFailures: _none, ...batch } = await runOnboardingRetryBatch(parseOnboardRetryBatch(event), settings, new Date(), clientFactoryOf(settings), containerPacing(settings, () => context.getRemainingTimeInMillis()));
  return batch;
}

/** An install window's run (`{ installWindow }`, its schedule): what the window held and what its batch did. */
function installWindow(event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<InstallWindowResult> {
  return runInstallWindow(parseInstallWindowRun(event), settings, new Date(), clientFactoryOf(settings), containerPacing(settings, () => context.getRemainingTimeInMillis()));
}

/**
 * Onboards the instances of a batch of the onboard queue, of a batch retry schedule
 * (`{ instanceIds, attempt }`) or of an install window (`{ installWindow }`), or one instance: an EC2 "running" state-change event delivered
 * straight to it, a scheduled retry (`{ instanceId, attempt }`) or a remediation
 * (`{ instanceId, remediate: true }`).
 */
export const handler = middy<unknown, OnboardingResult | QueueBatchResponse | Omit<OnboardingBatchResult, 'batchItemFailures'> | InstallWindowResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logInvocationResult())
  .handler(async (event, context) => {
    if (isQueueBatch(event)) return onboardQueueBatch(event, context);
    if (isInstallWindowRun(event)) return installWindow(event, context);
    if (isOnboardRetryBatch(event)) return onboardRetryBatch(event, context);
    return runOnboarding(parseOnboardTrigger(event), settings);
  });
