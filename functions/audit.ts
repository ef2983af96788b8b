import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { publishAuditSummary } from '../shared/audit/audit-publication.js';
import { parseAuditRequest } from '../shared/audit/audit-request.js';
import { runAudit } from '../shared/audit/audit-run.js';
import type { AuditReport } from '../shared/audit/audit-summary.js';
import { onboardByInvoking } from '../shared/audit/remediation.js';
import { logger, logInvocationResult } from '../shared/observability/logger.js';
import { productMetrics, recordFleetCoverage } from '../shared/observability/product-metrics.js';
import { parseSettings } from '../shared/config/settings.js';
import { clientFactoryOf } from '../shared/aws/product-clients.js';

// Parsed at cold start: a wrong setting stops the function here, naming the setting.
const settings = parseSettings();
const stage = settings.resourcePrefix.replace(/^cwap-/, '');

/** The audit's JSON, plus where the summary was published. */
export type AuditResponse = AuditReport & { publishedMessageId: string | null };

/**
 * Audits the running instances of this function's region (invoked by hand, or by the optional
 * daily schedule). Input: `{ tags?, instanceIds?, remediate?, dryRun?, publish?, rows? }`.
 * Remediation asks the onboard function, which runs the same code path as the EC2 event. An audit
 * of the whole region (no tags, no instance ids) records its coverage as a product metric.
 */
/** The audit's log line: its counts, not every row (a report of 10,000 instances is megabytes). */
function summarizeAudit(response: AuditResponse): unknown {
  return { summary: { ...response.summary, needsPerson: response.summary.needsPerson.length }, instancesReturned: response.instances.length, publishedMessageId: response.publishedMessageId };
}

export const handler = middy<unknown, AuditResponse>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logInvocationResult(summarizeAudit))
  .handler(async (event) => {
    const request = parseAuditRequest(event);
    const clients = clientFactoryOf(settings).clients();
    const report = await runAudit(clients, {
      region: settings.region,
      scope: { tags: request.tags, instanceIds: request.instanceIds },
      settings,
      remediation: !request.remediate
        ? { mode: 'off' }
        : request.dryRun
          ? { mode: 'dry-run' }
          : { mode: 'apply', remediatorFor: () => onboardByInvoking(clients, settings.onboardFunctionArn, 'audit function') },
      recentSeconds: settings.metricLookbackSeconds,
      auditCommand: `npx cw-autopilot audit${stage === 'dev' ? '' : ` --stage ${stage}`} --region ${settings.region}`,
    });
    logger.info('audit finished', { summary: { ...report.summary, needsPerson: report.summary.needsPerson.length } });
    // A scoped audit's coverage is not the fleet's; a partial one's is not proven. Its only product
    // metric, so flushed here rather than by logMetrics, which warns after every audit without one.
    if (request.tags.length === 0 && request.instanceIds.length === 0) {
      if (recordFleetCoverage(report.summary)) productMetrics.publishStoredMetrics();
      else logger.warn('fleet coverage not recorded: the report is partial', { failures: report.summary.failures.length });
    }
    const publishedMessageId = request.publish ? await publishAuditSummary(clients, report, settings) : null;
    const instances = request.rows === 'all' ? report.instances : report.instances.filter((row) => row.status !== 'healthy');
    return { ...report, instances, publishedMessageId };
  });
