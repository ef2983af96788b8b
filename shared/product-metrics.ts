import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/**
 * The product's own metrics, in embedded metric format (one Metrics per cold start; the handler's
 * `logMetrics` middleware flushes them after each invocation). Namespace from
 * POWERTOOLS_METRICS_NAMESPACE, default `CWAgentAutopilot`.
 */
export const productMetrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'CWAgentAutopilot',
  serviceName: 'cw-agent-autopilot',
});

/** An instance's metrics arrived: healthy; onboarded the first time for its launch. */
export function countHealthy(firstForLaunch: boolean, launchToFirstMetricSeconds: number | undefined): void {
  productMetrics.addMetric('InstancesHealthy', MetricUnit.Count, 1);
  if (firstForLaunch) {
    productMetrics.addMetric('InstancesOnboarded', MetricUnit.Count, 1);
    if (launchToFirstMetricSeconds !== undefined) {
      productMetrics.addMetric('LaunchToFirstMetricSeconds', MetricUnit.Seconds, launchToFirstMetricSeconds);
    }
  }
}

/** An alert was published for an instance. */
export function countAlerted(): void {
  productMetrics.addMetric('InstancesAlerted', MetricUnit.Count, 1);
}
