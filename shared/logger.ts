import { Logger } from '@aws-lambda-powertools/logger';

/** The product's structured logger, one per cold start (level from POWERTOOLS_LOG_LEVEL). */
export const logger = new Logger({ serviceName: 'cw-agent-autopilot' });
