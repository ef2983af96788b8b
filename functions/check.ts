import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { runCheck, type CheckResult } from '../shared/checking/checking.js';
import { logger, logInvocationResult } from '../shared/observability/logger.js';
import { productMetrics } from '../shared/observability/product-metrics.js';
import { parseSettings } from '../shared/config/settings.js';
import { parseCheckInput } from '../shared/input/triggers.js';
import { alarmWaitBudgetMs, runCheckBatch, type CheckBatchResult } from '../shared/checking/check-batch.js';
import { clientFactoryOf } from '../shared/aws/product-clients.js';
import { containerPacing } from '../shared/pacing/batch-pacing.js';

// Parsed at cold start: a wrong setting stops the function here, naming the setting.
const settings = parseSettings();

/**
 * Confirms that an instance's CloudWatch agent metrics arrive; when they do not, diagnoses why,
 * retries what a retry can fix and alerts once. Invoked by the schedules onboarding and earlier
 * checks create: a batch (`{ instanceIds, attempt, look? }`, see check-batch) or one instance
 * (`{ instanceId, attempt }`); or by hand (`{ instanceId }`).
 */
export const handler = middy<unknown, CheckResult | CheckBatchResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logInvocationResult())
  .use(logMetrics(productMetrics))
  .handler(async (event, context) => {
    const input = parseCheckInput(event);
    // A check waits up to 30 s for its PutMetricAlarm calls (cheap Lambda time), not past the timeout's margin.
    const pacing = containerPacing(settings, () => context.getRemainingTimeInMillis(), alarmWaitBudgetMs);
    if (input.kind === 'one') return runCheck(input.request, settings, new Date(), clientFactoryOf(settings), pacing);
    return runCheckBatch(input.request, settings, new Date(), clientFactoryOf(settings), pacing);
  });
