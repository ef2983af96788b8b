import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { AuditSummary } from '../audit/audit-summary.js';

/**
 * The names of the product's own metrics. The dashboard (shared/observability/product-dashboard.ts) graphs them
 * by these constants; test/deploy/template.test.ts holds what it graphs to what Powertools writes.
 */
export const productMetricNames = {
  /** The first healthy check of a launch. */
  onboarded: 'InstancesOnboarded',
  /** Every healthy check. */
  healthy: 'InstancesHealthy',
  /** Every alert published; also one series per diagnosis (dimension {@link diagnosisDimension}). */
  alerted: 'InstancesAlerted',
  /** Seconds from the instance's launch to its first datapoint, on the first healthy check of a launch. */
  launchToFirstMetric: 'LaunchToFirstMetricSeconds',
  /** healthy / running in percent, from each audit of a whole region by the audit function. */
  fleetCoverage: 'FleetCoveragePercent',
} as const;

/** The namespace when POWERTOOLS_METRICS_NAMESPACE is not set (serverless.yml sets it to this). */
export const defaultProductNamespace = 'CWAgentAutopilot';

/** The value of the `service` dimension Powertools gives every product metric. */
export const productService = 'cw-agent-autopilot';

/** The name of the dimension Powertools gives every metric for its service name. */
export const serviceDimension = 'service';

/** The second dimension of the per-diagnosis `InstancesAlerted` series. */
export const diagnosisDimension = 'diagnosis';

/**
 * The product's own metrics, in embedded metric format (one Metrics per cold start; the handler's
 * `logMetrics` middleware flushes them after each invocation). Namespace from
 * POWERTOOLS_METRICS_NAMESPACE, default `CWAgentAutopilot`; dimension `service`.
 */
export const productMetrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? defaultProductNamespace,
  serviceName: productService,
});

/** An instance's metrics arrived: healthy; onboarded the first time for its launch. */
export function countHealthy(firstForLaunch: boolean, launchToFirstMetricSeconds: number | undefined): void {
  productMetrics.addMetric(productMetricNames.healthy, MetricUnit.Count, 1);
  if (firstForLaunch) {
    productMetrics.addMetric(productMetricNames.onboarded, MetricUnit.Count, 1);
    if (launchToFirstMetricSeconds !== undefined) {
      productMetrics.addMetric(productMetricNames.launchToFirstMetric, MetricUnit.Seconds, launchToFirstMetricSeconds);
    }
  }
}

/**
 * An alert was published for an instance: counted once in total ({service}) and once under its
 * diagnosis ({service, diagnosis}), so a graph can show which causes dominate.
 */
export function countAlerted(diagnosis: string): void {
  productMetrics.addMetric(productMetricNames.alerted, MetricUnit.Count, 1);
  // A record of its own: a dimension added to productMetrics would apply to every metric it holds.
  productMetrics.singleMetric().addDimension(diagnosisDimension, diagnosis).addMetric(productMetricNames.alerted, MetricUnit.Count, 1);
}

/**
 * The audit function audited every running instance of its region: records the coverage in percent.
 * A partial report (some facts could not be read) proves nothing about coverage and records nothing.
 *
 * @returns whether the coverage was recorded
 * @example
 * recordFleetCoverage(report.summary); // FleetCoveragePercent 93.5
 */
export function recordFleetCoverage(summary: Pick<AuditSummary, 'coverage' | 'partial'>): boolean {
  if (summary.partial) return false;
  productMetrics.addMetric(productMetricNames.fleetCoverage, MetricUnit.Percent, Math.round(summary.coverage * 10_000) / 100);
  return true;
}
