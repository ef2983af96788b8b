import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { runCheck, type CheckResult } from '../shared/checking/checking.js';
import { logger, logInvocationResult } from '../shared/observability/logger.js';
import { productMetrics } from '../shared/observability/product-metrics.js';
import { parseSettings } from '../shared/config/settings.js';
import { parseCheckInput } from '../shared/input/triggers.js';
import { runCheckBatch, type CheckBatchResult } from '../shared/checking/check-batch.js';

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
  .handler(async (event) => {
    const input = parseCheckInput(event);
    return input.kind === 'batch' ? runCheckBatch(input.request, settings) : runCheck(input.request, settings);
  });
