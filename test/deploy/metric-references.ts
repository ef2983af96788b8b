// Checks that what a dashboard graphs and an alarm watches exists: a metric of the product's own
// namespace must be a series the product really writes (namespace, name and dimension set exactly
// as in its EMF records), an AWS/Lambda metric one Lambda publishes for a function of the stack.
// CloudWatch accepts a graph or an alarm of a metric nobody writes and shows nothing: this does not.
import type { EmittedSeries } from '../harness/emf.js';

/** A metric a widget or an alarm refers to; `where` says which, for the message. */
export type MetricReference =
  | { where: string; kind: 'metric'; namespace: string; metricName: string; dimensions: Record<string, string> }
  /** A SEARCH expression: the schema's namespace and exact dimension names, then `key="value"` terms. */
  | { where: string; kind: 'search'; namespace: string; metricName: string; dimensionNames: string[]; filters: Record<string, string> };

/**
 * The AWS/Lambda metrics Lambda publishes per function (dimension FunctionName), from "Types of
 * metrics for Lambda functions" in the Lambda developer guide.
 */
export const lambdaFunctionMetrics: ReadonlySet<string> = new Set([
  'Invocations',
  'Errors',
  'DeadLetterErrors',
  'DestinationDeliveryFailures',
  'Throttles',
  'Duration',
  'PostRuntimeExtensionsDuration',
  'ConcurrentExecutions',
  'ProvisionedConcurrentExecutions',
  'ProvisionedConcurrencyUtilization',
  'AsyncEventsReceived',
  'AsyncEventAge',
  'AsyncEventsDropped',
  'RecursiveInvocationsDropped',
]);

type Row = (string | Record<string, unknown>)[];

function searchReference(where: string, expression: string): MetricReference | undefined {
  const search = /SEARCH\(\s*'\{([^}]*)\}\s*([^']*)'/.exec(expression);
  if (!search) return undefined;
  const [namespace = '', ...dimensionNames] = (search[1] ?? '').split(',').map((part) => part.trim().replace(/^"(.*)"$/, '$1'));
  const filters: Record<string, string> = {};
  for (const term of (search[2] ?? '').matchAll(/(\w+)\s*=\s*"([^"]*)"/g)) filters[term[1] as string] = term[2] as string;
  const { MetricName: metricName = '', ...dimensionFilters } = filters;
  return { where, kind: 'search', namespace, metricName, dimensionNames, filters: dimensionFilters };
}

/**
 * Every metric a dashboard body's metric widgets refer to: their rows (with CloudWatch's `"."`
 * shorthand for "as the row above") and their SEARCH expressions. Other metric math refers to rows.
 */
export function dashboardReferences(body: { widgets?: { type?: string; properties?: { title?: string; metrics?: Row[] } }[] }): MetricReference[] {
  const references: MetricReference[] = [];
  for (const [index, widget] of (body.widgets ?? []).entries()) {
    if (widget.type !== 'metric') continue;
    const where = `widget ${index} "${widget.properties?.title ?? ''}"`;
    let previous: string[] = [];
    for (const row of widget.properties?.metrics ?? []) {
      const [first] = row;
      if (typeof first === 'object') {
        const expression = first.expression;
        const reference = typeof expression === 'string' ? searchReference(where, expression) : undefined;
        if (reference) references.push(reference);
        continue;
      }
      const parts = row.filter((part): part is string => typeof part === 'string').map((part, i) => (part === '.' ? (previous[i] ?? '.') : part));
      previous = parts;
      const [namespace = '', metricName = '', ...pairs] = parts;
      const dimensions: Record<string, string> = {};
      for (let i = 0; i + 1 < pairs.length; i += 2) dimensions[pairs[i] as string] = pairs[i + 1] as string;
      references.push({ where, kind: 'metric', namespace, metricName, dimensions });
    }
  }
  return references;
}

interface AlarmMetric {
  Namespace?: string;
  MetricName?: string;
  Dimensions?: { Name: string; Value: string }[];
}

/** The metrics an `AWS::CloudWatch::Alarm`'s properties watch: its metric, or its metric math's MetricStats. */
export function alarmReferences(
  alarmName: string,
  properties: AlarmMetric & { Metrics?: { Id?: string; MetricStat?: { Metric: AlarmMetric }; Expression?: string }[] },
): MetricReference[] {
  const where = `alarm ${alarmName}`;
  const reference = (metric: AlarmMetric): MetricReference => ({
    where,
    kind: 'metric',
    namespace: metric.Namespace ?? '',
    metricName: metric.MetricName ?? '',
    dimensions: Object.fromEntries((metric.Dimensions ?? []).map((d) => [d.Name, d.Value])),
  });
  if (properties.MetricName) return [reference(properties)];
  return (properties.Metrics ?? []).flatMap((query) => {
    if (query.MetricStat) return [reference(query.MetricStat.Metric)];
    const search = query.Expression ? searchReference(where, query.Expression) : undefined;
    return search ? [search] : [];
  });
}

/** What exists: the product's EMF series, and the stack's function names. */
export interface KnownMetrics {
  emitted: EmittedSeries[];
  functionNames: string[];
}

const sameKeys = (a: string[], b: string[]) => a.length === b.length && [...a].sort().every((key, i) => key === [...b].sort()[i]);

function describe(reference: MetricReference): string {
  const dimensions =
    reference.kind === 'metric'
      ? Object.entries(reference.dimensions).map(([name, value]) => `${name}=${value}`)
      : [...reference.dimensionNames, ...Object.entries(reference.filters).map(([name, value]) => `${name}=${value}`)];
  return `${reference.namespace} ${reference.metricName} {${dimensions.join(', ')}}`;
}

function lambdaProblem(reference: MetricReference, functionNames: string[]): string | undefined {
  if (!lambdaFunctionMetrics.has(reference.metricName)) return `${reference.metricName} is not a metric Lambda publishes per function`;
  const names = reference.kind === 'metric' ? Object.keys(reference.dimensions) : reference.dimensionNames;
  if (!sameKeys(names, ['FunctionName'])) return `its dimensions must be exactly FunctionName, not {${names.join(', ')}}`;
  const functionName = reference.kind === 'metric' ? reference.dimensions.FunctionName : reference.filters.FunctionName;
  if (functionName === undefined || !functionNames.includes(functionName)) return `FunctionName ${functionName ?? '(any)'} is not a function of the stack (${functionNames.join(', ')})`;
  return undefined;
}

function productProblem(reference: MetricReference, emitted: EmittedSeries[]): string | undefined {
  const written = emitted.filter((series) => series.namespace === reference.namespace);
  if (written.length === 0) return `the product writes nothing to namespace ${reference.namespace}`;
  const named = written.filter((series) => series.metricName === reference.metricName);
  if (named.length === 0) return `the product writes no ${reference.metricName} (it writes ${[...new Set(written.map((s) => s.metricName))].join(', ')})`;
  const found =
    reference.kind === 'metric'
      ? named.some((series) => sameKeys(Object.keys(series.dimensions), Object.keys(reference.dimensions)) && Object.entries(reference.dimensions).every(([k, v]) => series.dimensions[k] === v))
      : named.some((series) => sameKeys(Object.keys(series.dimensions), reference.dimensionNames) && Object.entries(reference.filters).every(([k, v]) => series.dimensions[k] === v));
  if (found) return undefined;
  const sets = [...new Set(named.map((series) => `{${Object.entries(series.dimensions).map(([k, v]) => `${k}=${v}`).join(', ')}}`))];
  return `the product writes ${reference.metricName} only with ${sets.join(' or ')}`;
}

/**
 * The references that would graph or watch nothing, one message each (empty when all exist).
 *
 * @example
 * unmatchedReferences(dashboardReferences(body), { emitted, functionNames }); // []
 */
export function unmatchedReferences(references: MetricReference[], known: KnownMetrics): string[] {
  return references.flatMap((reference) => {
    const problem = reference.namespace === 'AWS/Lambda' ? lambdaProblem(reference, known.functionNames) : productProblem(reference, known.emitted);
    return problem ? [`${reference.where}: ${describe(reference)}: ${problem}`] : [];
  });
}

/**
 * The series the product writes that no reference shows (one message each): a metric added to the
 * product but left off the dashboard. Series differing only in dimension values count once.
 */
export function unreferencedSeries(emitted: EmittedSeries[], references: MetricReference[]): string[] {
  const shown = (series: EmittedSeries) =>
    references.some((reference) =>
      reference.namespace === series.namespace &&
      reference.metricName === series.metricName &&
      (reference.kind === 'metric'
        ? sameKeys(Object.keys(reference.dimensions), Object.keys(series.dimensions)) && Object.entries(reference.dimensions).every(([k, v]) => series.dimensions[k] === v)
        : sameKeys(reference.dimensionNames, Object.keys(series.dimensions)) && Object.entries(reference.filters).every(([k, v]) => series.dimensions[k] === v)),
    );
  const missing = emitted.filter((series) => !shown(series)).map((series) => `${series.namespace} ${series.metricName} {${Object.keys(series.dimensions).join(', ')}}`);
  return [...new Set(missing)];
}
