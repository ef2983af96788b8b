import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Settings } from './config/settings.js';

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

/** What the product knows a published metric to mean, keyed by the name the agent gives it. */
const meaningOf: Record<string, ExpectedMetric['measures']> = {
  mem_used_percent: 'memory-used-percent',
  disk_used_percent: 'disk-used-percent',
  'Memory % Committed Bytes In Use': 'memory-used-percent',
  'LogicalDisk % Free Space': 'disk-free-percent',
};

/**
 * The name the agent publishes a measurement under when it has no `rename`, as the agent's
 * translator and its metric naming do it: on Linux a measurement is a field of the section's
 * plugin (`used_percent` and `disk_used_percent` both mean the field `used_percent` of `disk`) and
 * is published `<section>_<field>`; on Windows a section is a performance-counter object and a
 * measurement its counter, published `<object> <counter>`.
 */
function agentMetricName(os: OsFamily, section: string, measurement: string): string {
  if (os === 'windows') return `${section} ${measurement}`;
  const name = measurement.trim();
  const field = name.startsWith(`${section}_`) ? name.slice(section.length + 1) : name;
  return `${section}_${field}`;
}

/**
 * The metric series a rendered agent config produces on the exact `{InstanceId}` dimension set
 * (the `aggregation_dimensions: [["InstanceId"]]` series), for the OS the config is deployed to.
 * The checker and the alarms query these, so they are derived from the config itself rather than
 * restated.
 *
 * @example
 * metricsPublishedBy(renderedAgentConfigs(settings.metrics).linux, 'linux');
 */
export function metricsPublishedBy(renderedConfig: string, os: OsFamily): ExpectedMetric[] {
  const config = JSON.parse(renderedConfig) as AgentConfigShape;
  const metrics = config.metrics;
  const namespace = metrics?.namespace ?? 'CWAgent';
  const aggregatesByInstance = (metrics?.aggregation_dimensions ?? []).some(
    (set) => set.length === 1 && set[0] === 'InstanceId',
  );
  if (!aggregatesByInstance) return [];
  const found: ExpectedMetric[] = [];
  for (const [section, collected] of Object.entries(metrics?.metrics_collected ?? {})) {
    for (const item of collected.measurement ?? []) {
      const measurement = typeof item === 'string' ? { name: item } : item;
      const published = agentMetricName(os, section, measurement.name);
      const measures = meaningOf[published];
      if (!measures) continue;
      found.push({ namespace, metricName: measurement.rename?.trim() ?? published, measures });
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
