import { diagnosisDimension, productMetricNames, productService, serviceDimension } from './product-metrics.js';

// The stack's CloudWatch dashboard, rendered at package time (scripts/render-dashboard.cjs) from the
// product's metric names and the stack's function names, so that no graph names a metric by hand.

/** The stack's Lambda functions, by their key in serverless.yml. */
export const productFunctions = ['onboard', 'check', 'offboard', 'audit'] as const;
export type ProductFunction = (typeof productFunctions)[number];

/**
 * The alarms serverless.yml puts on every function, by name suffix: the AWS/Lambda metric each
 * watches (Sum over 300 s above 0). Named `<prefix>-<function>-<suffix>`.
 */
export const functionAlarms = {
  errors: 'Errors',
  throttles: 'Throttles',
  'async-events-dropped': 'AsyncEventsDropped',
  'destination-delivery-failures': 'DestinationDeliveryFailures',
} as const;

/** The name of the alarm serverless.yml puts on a function for one of {@link functionAlarms}. */
export function productAlarmName(prefix: string, fn: ProductFunction, suffix: keyof typeof functionAlarms): string {
  return `${prefix}-${fn}-${suffix}`;
}

/**
 * The name of the alarm on the onboard queue's dead-letter queue (serverless.yml
 * OnboardDeadLettersAlarm): running events that failed every delivery.
 */
export function onboardDeadLettersAlarmName(prefix: string): string {
  return `${prefix}-onboard-dead-letters`;
}

/** What the dashboard is drawn from; at package time the ARN parts are CloudFormation placeholders. */
export interface DashboardSources {
  partition: string;
  region: string;
  accountId: string;
  /** `cwap-<stage>`: the alarms' name prefix. */
  prefix: string;
  /** POWERTOOLS_METRICS_NAMESPACE of the functions. */
  namespace: string;
  functionNames: Record<ProductFunction, string>;
  /** The audit's schedule expression, '' when it runs by hand only. */
  auditSchedule: string;
}

/**
 * A row of a metric widget: namespace, metric name, dimension name/value pairs, then an options
 * object (stat, label, ...); or one object with an `expression` (metric math, SEARCH).
 */
export type MetricRow = (string | Record<string, unknown>)[];

interface Placement {
  x: number;
  y: number;
  width: number;
  height: number;
}
export type Widget =
  | (Placement & {
      type: 'metric';
      properties: {
        title: string;
        region: string;
        view: 'timeSeries';
        stacked: boolean;
        stat: string;
        period: number;
        metrics: MetricRow[];
        yAxis?: Record<string, { min?: number; max?: number; label?: string; showUnits?: boolean }>;
      };
    })
  | (Placement & { type: 'alarm'; properties: { title: string; alarms: string[] } });

/** The JSON of an `AWS::CloudWatch::Dashboard`'s DashboardBody. */
export interface DashboardBody {
  start: string;
  periodOverride: 'inherit';
  widgets: Widget[];
}

const hour = 3600;
const fiveMinutes = 300;

/**
 * The dashboard: the product's own metrics on top (what it did for the fleet), the Lambda functions
 * below (how it ran). Layout in README "Dashboard".
 *
 * @example
 * JSON.stringify(renderProductDashboard({ partition: 'aws', region: 'eu-west-1', accountId: '123456789012', prefix: 'cwap-prod', namespace: 'CWAgentAutopilot', functionNames, auditSchedule: 'rate(1 day)' }));
 */
export function renderProductDashboard(sources: DashboardSources): DashboardBody {
  const { region, namespace, functionNames } = sources;
  const product = (metricName: string, options: Record<string, unknown>): MetricRow => [namespace, metricName, serviceDimension, productService, options];
  const lambda = (metricName: string, fn: ProductFunction, options: Record<string, unknown>): MetricRow => [
    'AWS/Lambda',
    metricName,
    'FunctionName',
    functionNames[fn],
    options,
  ];
  const graph = (placement: Placement, title: string, stat: string, period: number, metrics: MetricRow[], extra: Partial<Extract<Widget, { type: 'metric' }>['properties']> = {}): Widget => ({
    type: 'metric',
    ...placement,
    properties: { title, region, view: 'timeSeries', stacked: false, stat, period, metrics, ...extra },
  });

  // SEARCH matches exactly this dimension set: the per-diagnosis series, one line per diagnosis.
  const byDiagnosis = `SEARCH('{"${namespace}",${diagnosisDimension},${serviceDimension}} ${serviceDimension}="${productService}" MetricName="${productMetricNames.alerted}"', 'Sum', ${hour})`;

  const widgets: Widget[] = [
    graph({ x: 0, y: 0, width: 12, height: 6 }, 'Instances onboarded, healthy checks, alerts (per hour)', 'Sum', hour, [
      product(productMetricNames.onboarded, { label: 'onboarded (first healthy check of a launch)' }),
      product(productMetricNames.healthy, { label: 'healthy checks' }),
      product(productMetricNames.alerted, { label: 'alerted' }),
    ]),
    graph({ x: 12, y: 0, width: 12, height: 6 }, 'Launch to first metric (seconds)', 'p50', hour, [
      product(productMetricNames.launchToFirstMetric, { stat: 'p50', label: 'p50' }),
      product(productMetricNames.launchToFirstMetric, { stat: 'p90', label: 'p90' }),
      product(productMetricNames.launchToFirstMetric, { stat: 'Maximum', label: 'max' }),
    ]),
    graph({ x: 0, y: 6, width: 12, height: 6 }, 'Alerts by diagnosis (per hour)', 'Sum', hour, [[{ expression: byDiagnosis, id: 'byDiagnosis', period: hour }]], { stacked: true }),
    graph(
      { x: 12, y: 6, width: 12, height: 6 },
      sources.auditSchedule ? `Fleet coverage % (audit ${sources.auditSchedule})` : 'Fleet coverage % (audit by hand only: set the auditSchedule param)',
      'Minimum',
      hour,
      [product(productMetricNames.fleetCoverage, { label: 'healthy / running %' })],
      { yAxis: { left: { min: 0, max: 100, showUnits: false } } },
    ),
    ...productFunctions.map((fn, i) =>
      graph({ x: i * 6, y: 12, width: 6, height: 6 }, `${fn}: invocations, errors, throttles; duration`, 'Sum', fiveMinutes, [
        lambda('Invocations', fn, { label: 'invocations' }),
        lambda('Errors', fn, { label: 'errors' }),
        lambda('Throttles', fn, { label: 'throttles' }),
        lambda('Duration', fn, { stat: 'p90', yAxis: 'right', label: 'duration p90 (ms)' }),
        lambda('Duration', fn, { stat: 'Maximum', yAxis: 'right', label: 'duration max (ms)' }),
      ]),
    ),
    graph(
      { x: 0, y: 18, width: 12, height: 6 },
      'Failed asynchronous invocations: dropped after all retries; records not delivered to the alert topic',
      'Sum',
      fiveMinutes,
      productFunctions.flatMap((fn) => [
        lambda('AsyncEventsDropped', fn, { label: `${fn} dropped` }),
        lambda('DestinationDeliveryFailures', fn, { label: `${fn} not delivered` }),
      ]),
    ),
    {
      type: 'alarm',
      x: 12,
      y: 18,
      width: 12,
      height: 6,
      properties: {
        title: 'Alarms on the product',
        alarms: [
          ...productFunctions.flatMap((fn) => Object.keys(functionAlarms).map((suffix) => productAlarmName(sources.prefix, fn, suffix as keyof typeof functionAlarms))),
          onboardDeadLettersAlarmName(sources.prefix),
        ].map((name) => `arn:${sources.partition}:cloudwatch:${region}:${sources.accountId}:alarm:${name}`),
      },
    },
  ];
  return { start: '-P1D', periodOverride: 'inherit', widgets };
}
