import { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';

/** The product's structured logger, one per cold start (level from POWERTOOLS_LOG_LEVEL). */
export const logger = new Logger({ serviceName: 'cw-agent-autopilot' });

/**
 * The id of one launch of an instance: its id and the EC2 LaunchTime of that launch (a restart is
 * a new launch). Every log line of onboarding, its schedules and its checks for the launch carries
 * it, so one Logs Insights query follows the launch end to end. Undefined while the launch time is
 * not known (an instance EC2 does not describe).
 *
 * @example
 * launchIdOf('i-0123456789abcdef0', '2026-12-01T19:47:00.000Z'); // 'i-0123456789abcdef0@2026-12-01T19:47:00Z'
 */
export function launchIdOf(instanceId: string, launchTime: string | undefined): string | undefined {
  if (!launchTime) return undefined;
  const at = Date.parse(launchTime);
  if (Number.isNaN(at)) return undefined;
  return `${instanceId}@${new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
}

/**
 * Keys every later log line of this invocation carries: the instance, its account and region
 * (`account`, `instanceRegion`: Lambda's own `region` is the hub's), and its launch once known.
 * Cleared at the start of the next invocation (`injectLambdaContext(logger, { resetKeys: true })`).
 */
export function logAbout(instanceId: string, launchTime?: string, place?: { account: string; region: string }): void {
  const launchId = launchIdOf(instanceId, launchTime);
  logger.appendKeys({ instanceId, ...(launchId ? { launchId } : {}), ...(place ? { account: place.account, instanceRegion: place.region } : {}) });
}

/**
 * middy middleware: logs each invocation's result once ("invocation result", with `result`), or its
 * failure ("invocation failed", with the error), after the handler; Lambda's async callers
 * (EventBridge, Scheduler) discard the returned value, so the log is its only trace. Use it after
 * `injectLambdaContext`, so the line still has the invocation's keys.
 *
 * @example
 * middy().use(injectLambdaContext(logger, { resetKeys: true })).use(logInvocationResult()).handler(run);
 */
export function logInvocationResult<TResult>(summarize: (result: TResult) => unknown = (result) => result): MiddlewareObj<unknown, TResult> {
  return {
    after: (request) => {
      logger.info('invocation result', { result: summarize(request.response as TResult) });
    },
    onError: (request) => {
      const error = request.error;
      logger.error('invocation failed', error instanceof Error ? error : String(error));
    },
  };
}
