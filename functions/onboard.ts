import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logger, logInvocationResult } from '../shared/observability/logger.js';
import { runOnboarding, type OnboardingResult } from '../shared/onboarding/onboarding.js';
import { parseSettings } from '../shared/config/settings.js';
import { parseOnboardTrigger } from '../shared/input/triggers.js';

// Parsed at cold start: a wrong setting stops the function here, naming the setting.
const settings = parseSettings();

/**
 * Onboards the instance of an EC2 "running" state-change event, or continues a scheduled retry
 * (`{ instanceId, attempt }`).
 */
export const handler = middy<unknown, OnboardingResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logInvocationResult())
  .handler(async (event) => runOnboarding(parseOnboardTrigger(event), settings));
