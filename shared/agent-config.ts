import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Settings } from './settings.js';

/** The operating systems the product onboards; each has its own agent config file. */
export type OsFamily = 'linux' | 'windows';

/** Values substituted into the `{{placeholders}}` of `agent-config/<os>.json`. */
export interface AgentConfigValues {
  namespace: string;
  memoryMetric: string;
  diskMetric: string;
  windowsDiskFreeMetric: string;
}

/** One metric series the agent publishes with exactly the `{InstanceId}` dimension set. */
export interface ExpectedMetric {
  namespace: string;
  metricName: string;
  /** What the value means: a `*_USED` name never carries a free-space value. */
  measures: 'memory-used-percent' | 'disk-used-percent' | 'disk-free-percent';
}

const configDirectory = fileURLToPath(new URL('../agent-config/', import.meta.url));

/** Reads the raw (unrendered) agent config template for an OS from the repo. */
export function readAgentConfigTemplate(os: OsFamily, directory = configDirectory): string {
  return readFileSync(`${directory}${os}.json`, 'utf8');
}

/** The placeholder values the deployed configs are rendered with, taken from the settings. */
export function agentConfigValues(metrics: Settings['metrics']): AgentConfigValues {
  return {
    namespace: metrics.namespace,
    memoryMetric: metrics.memory,
    diskMetric: metrics.disk,
    windowsDiskFreeMetric: metrics.windowsDiskFree,
  };
}

/**
 * Renders an agent config template: every `{{name}}` is replaced by its value, JSON-escaped.
 * An unknown placeholder is an error, so a typo in a config file cannot deploy silently.
 *
 * @example
 * renderAgentConfig(readAgentConfigTemplate('linux'), agentConfigValues(settings.metrics));
 */
export function renderAgentConfig(template: string, values: AgentConfigValues): string {
  const rendered = template.replace(/\{\{\s*(\w+)\s*\}\}/g, (_match, name: string) => {
    if (!(name in values)) throw new Error(`agent config: unknown placeholder {{${name}}}`);
    return JSON.stringify(values[name as keyof AgentConfigValues]).slice(1, -1);
  });
  JSON.parse(rendered);
  return rendered;
}

interface Measurement {
  name: string;
  rename?: string;
}
interface AgentConfigShape {
  metrics?: {
    namespace?: string;
    aggregation_dimensions?: string[][];
    metrics_collected?: Record<string, { measurement?: (string | Measurement)[] }>;
  };
}

const meaningOf: Record<string, ExpectedMetric['measures']> = {
  mem_used_percent: 'memory-used-percent',
  used_percent: 'disk-used-percent',
  '% Committed Bytes In Use': 'memory-used-percent',
  '% Free Space': 'disk-free-percent',
};

/**
 * The metric series a rendered agent config produces on the exact `{InstanceId}` dimension set
 * (the `aggregation_dimensions: [["InstanceId"]]` series). The checker and the alarms query these,
 * so they are derived from the config itself rather than restated.
 */
export function metricsPublishedBy(renderedConfig: string): ExpectedMetric[] {
  const config = JSON.parse(renderedConfig) as AgentConfigShape;
  const metrics = config.metrics;
  const namespace = metrics?.namespace ?? 'CWAgent';
  const aggregatesByInstance = (metrics?.aggregation_dimensions ?? []).some(
    (set) => set.length === 1 && set[0] === 'InstanceId',
  );
  if (!aggregatesByInstance) return [];
  const found: ExpectedMetric[] = [];
  for (const section of Object.values(metrics?.metrics_collected ?? {})) {
    for (const item of section.measurement ?? []) {
      const measurement = typeof item === 'string' ? { name: item } : item;
      const measures = meaningOf[measurement.name];
      if (!measures) continue;
      found.push({ namespace, metricName: measurement.rename ?? measurement.name, measures });
    }
  }
  return found;
}

/** The rendered config of each OS, as deployed to the `AmazonCloudWatch-*` parameters. */
export function renderedAgentConfigs(metrics: Settings['metrics']): Record<OsFamily, string> {
  const values = agentConfigValues(metrics);
  return {
    linux: renderAgentConfig(readAgentConfigTemplate('linux'), values),
    windows: renderAgentConfig(readAgentConfigTemplate('windows'), values),
  };
}
