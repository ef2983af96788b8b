import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { publishAuditSummary } from '../shared/audit/audit-publication.js';
import { parseAuditRequest } from '../shared/audit/audit-request.js';
import { runOrganizationAudit, type OrganizationAuditReport } from '../shared/audit/organization-audit.js';
import { onboardByInvoking } from '../shared/audit/remediation.js';
import { logger, logInvocationResult } from '../shared/observability/logger.js';
import { productMetrics, recordFleetCoverage } from '../shared/observability/product-metrics.js';
import { parseSettings } from '../shared/config/settings.js';
import { clientFactoryOf } from '../shared/aws/product-clients.js';
import type { Place } from '../shared/aws/place.js';

// Parsed at cold start: a wrong setting stops the function here, naming the setting.
const settings = parseSettings();
const stage = settings.resourcePrefix.replace(/^cwap-/, '');

/** The audit's JSON, plus where the summary was published. */
export type AuditResponse = OrganizationAuditReport & { publishedMessageId: string | null };

/** The audit's log line: its counts, not every row (a report of 10,000 instances is megabytes). */
function summarizeAudit(response: AuditResponse): unknown {
  return {
    summary: { ...response.summary, needsPerson: response.summary.needsPerson.length },
    places: response.organization.places,
    unreadablePlaces: response.organization.unreadable.length,
    instancesReturned: response.instances.length,
    publishedMessageId: response.publishedMessageId,
  };
}

/** The CLI command that audits one place, for the fixes of its rows. */
function auditCommand(place: Place): string {
  const accounts = place.account === settings.hubPlace.account ? '' : ` --accounts ${place.account}`;
  return `npx cw-autopilot audit${stage === 'dev' ? '' : ` --stage ${stage}`} --region ${place.region}${accounts}`;
}

/**
 * Audits the running instances of every account and region the stack covers (ACCOUNTS, REGIONS;
 * by default this function's own account and region only), invoked by hand or by the optional
 * schedule. Input: `{ tags?, instanceIds?, remediate?, dryRun?, publish?, rows? }`. Other places
 * are read through the member audit role; one that cannot be read is listed in the report.
 * Remediation asks the onboard function, which runs the same code path as the EC2 event. An audit
 * of the whole fleet (no tags, no instance ids) records its coverage as a product metric.
 */
export const handler = middy<unknown, AuditResponse>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logInvocationResult(summarizeAudit))
  .handler(async (event) => {
    const request = parseAuditRequest(event);
    const factory = clientFactoryOf(settings);
    const clients = factory.clients();
    const report = await runOrganizationAudit(factory, {
      accounts: settings.accounts,
      regions: settings.regions,
      placeConcurrency: settings.auditPlaceConcurrency,
      scope: { tags: request.tags, instanceIds: request.instanceIds },
      settings,
      remediation: !request.remediate
        ? { mode: 'off' }
        : request.dryRun
          ? { mode: 'dry-run' }
          : { mode: 'apply', remediatorFor: (place) => onboardByInvoking(factory.clients(place), settings.onboardFunctionArn, 'audit function') },
      recentSeconds: settings.metricLookbackSeconds,
      auditCommand,
    });
    logger.info('audit finished', {
      summary: { ...report.summary, needsPerson: report.summary.needsPerson.length },
      unreadablePlaces: report.organization.unreadable,
    });
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
