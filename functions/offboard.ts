import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { runOffboarding, type OffboardingResult } from '../shared/offboarding/offboarding.js';
import { logger, logInvocationResult } from '../shared/observability/logger.js';
import { parseSettings } from '../shared/config/settings.js';
import { parseOffboardRequest } from '../shared/input/triggers.js';

// Parsed at cold start: a wrong setting stops the function here, naming the setting.
const settings = parseSettings();

/**
 * Cleans up after an instance that stopped or terminated: deletes its alarms and pending schedules
 * and records it stopped or gone. Invoked by the EC2 `stopped` / `terminated` state-change rule, or
 * by hand with `{ instanceId }`.
 */
export const handler = middy<unknown, OffboardingResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logInvocationResult())
  .handler(async (event) => {
    const request = parseOffboardRequest(event);
    if (request.ignore) return { instanceId: request.instanceId, action: 'ignore', status: undefined, reason: request.ignore, alarms: [], schedules: [] };
    return runOffboarding(request, settings);
  });
