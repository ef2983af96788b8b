import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { runCheck, type CheckResult } from '../shared/checking/checking.js';
import { logger, logInvocationResult } from '../shared/observability/logger.js';
import { productMetrics } from '../shared/observability/product-metrics.js';
import { parseSettings } from '../shared/config/settings.js';
import { parseCheckRequest } from '../shared/input/triggers.js';

// Parsed at cold start: a wrong setting stops the function here, naming the setting.
const settings = parseSettings();

/**
 * Confirms that an instance's CloudWatch agent metrics arrive; when they do not, diagnoses why,
 * retries what a retry can fix and alerts once. Invoked by the schedule onboarding creates
 * (`{ instanceId, attempt }`) or by hand (`{ instanceId }`).
 */
export const handler = middy<unknown, CheckResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logInvocationResult())
  .use(logMetrics(productMetrics))
  .handler(async (event) => runCheck(parseCheckRequest(event), settings));
