import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { runOffboarding } from '../shared/checking.js';
import { logger } from '../shared/logger.js';
import { parseSettings } from '../shared/settings.js';
import { parseOffboardRequest } from '../shared/triggers.js';

// Parsed at cold start: a wrong setting stops the function here, naming the setting.
const settings = parseSettings();

type OffboardResult = Awaited<ReturnType<typeof runOffboarding>> | { instanceId: string; ignored: string };

/**
 * Cleans up after a terminated instance: deletes its alarms and pending schedules and records it
 * gone. Invoked by the EC2 `terminated` state-change rule, or by hand with `{ instanceId }`.
 */
export const handler = middy<unknown, OffboardResult>()
  .use(injectLambdaContext(logger))
  .handler(async (event) => {
    const input = parseOffboardRequest(event);
    if (input.ignore) return { instanceId: input.instanceId, ignored: input.ignore };
    return runOffboarding(input.instanceId, settings);
  });
