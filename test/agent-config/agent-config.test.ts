import { describe, expect, it } from 'vitest';
import {
  metricsPublishedBy,
  readAgentConfigTemplate,
  renderAgentConfig,
  renderedAgentConfigs,
} from '../../shared/agent-config.js';
import { expectedMetrics } from '../../shared/checking/metric-queries.js';

const defaults = { namespace: 'CloudWatch/TestMetrics', memory: 'MEMORY_USED', disk: 'DISK_USED', windowsDiskFree: 'DISK_FREE' };

interface RenderedConfig {
  metrics: {
    namespace: string;
    append_dimensions: Record<string, string>;
    aggregation_dimensions: string[][];
    metrics_collected: Record<string, { measurement: { name: string; rename: string }[]; drop_device?: boolean }>;
  };
}

describe('agent configs', () => {
  it('the Linux config publishes MEMORY_USED and DISK_USED with an {InstanceId}-only series', () => {
    const config = JSON.parse(renderedAgentConfigs(defaults).linux) as RenderedConfig;
    expect(config.metrics.namespace).toBe('CloudWatch/TestMetrics');
    expect(config.metrics.aggregation_dimensions).toEqual([['InstanceId']]);
    expect(config.metrics.append_dimensions).toEqual({ InstanceId: '${aws:InstanceId}' });
    expect(config.metrics.metrics_collected.disk?.drop_device).toBe(true);
    expect(metricsPublishedBy(renderedAgentConfigs(defaults).linux, 'linux')).toEqual([
      { namespace: 'CloudWatch/TestMetrics', metricName: 'MEMORY_USED', measures: 'memory-used-percent' },
      { namespace: 'CloudWatch/TestMetrics', metricName: 'DISK_USED', measures: 'disk-used-percent' },
    ]);
  });

  it('the Windows config never publishes a free-space value under a *_USED name', () => {
    const published = metricsPublishedBy(renderedAgentConfigs(defaults).windows, 'windows');
    expect(published.map((m) => m.metricName)).toEqual(['MEMORY_USED', 'DISK_FREE']);
    for (const metric of published) {
      if (metric.measures === 'disk-free-percent') expect(metric.metricName).not.toMatch(/_USED$/);
    }
  });

  it('renders the namespace and names from the settings, escaped for JSON', () => {
    const rendered = renderedAgentConfigs({ namespace: 'Team "A"/Hosts', memory: 'MEM', disk: 'DSK', windowsDiskFree: 'FREE' });
    expect((JSON.parse(rendered.linux) as RenderedConfig).metrics.namespace).toBe('Team "A"/Hosts');
    expect(metricsPublishedBy(rendered.windows, 'windows').map((m) => m.metricName)).toEqual(['MEM', 'FREE']);
  });

  it('fails on a placeholder it does not know, naming it', () => {
    expect(() => renderAgentConfig('{"a":"{{nameSpace}}"}', { namespace: 'n', memoryMetric: 'm', diskMetric: 'd', windowsDiskFreeMetric: 'f' })).toThrow(
      'unknown placeholder {{nameSpace}}',
    );
  });

  it('a config without the {InstanceId} aggregation publishes nothing the checker can query', () => {
    const template = readAgentConfigTemplate('linux').replace('"aggregation_dimensions": [["InstanceId"]],', '');
    const values = { namespace: 'n', memoryMetric: 'm', diskMetric: 'd', windowsDiskFreeMetric: 'f' };
    expect(metricsPublishedBy(renderAgentConfig(template, values), 'linux')).toEqual([]);
  });

  describe('a measurement without a rename is published under the name the agent gives it', () => {
    const config = (collected: Record<string, unknown>) =>
      JSON.stringify({ metrics: { namespace: 'NS', aggregation_dimensions: [['InstanceId']], metrics_collected: collected } });

    it('Linux: <section>_<measurement>, with or without the section prefix in the name', () => {
      const published = metricsPublishedBy(
        config({
          mem: { measurement: ['used_percent'] },
          disk: { measurement: [{ name: 'used_percent', unit: 'Percent' }], resources: ['/'] },
        }),
        'linux',
      );
      expect(published).toEqual([
        { namespace: 'NS', metricName: 'mem_used_percent', measures: 'memory-used-percent' },
        { namespace: 'NS', metricName: 'disk_used_percent', measures: 'disk-used-percent' },
      ]);
      expect(metricsPublishedBy(config({ mem: { measurement: ['mem_used_percent'] }, disk: { measurement: ['disk_used_percent'] } }), 'linux').map((m) => m.metricName)).toEqual([
        'mem_used_percent',
        'disk_used_percent',
      ]);
    });

    it('Windows: "<object> <counter>"', () => {
      const published = metricsPublishedBy(
        config({
          Memory: { measurement: ['% Committed Bytes In Use'] },
          LogicalDisk: { measurement: [{ name: '% Free Space', unit: 'Percent' }], resources: ['C:'] },
        }),
        'windows',
      );
      expect(published).toEqual([
        { namespace: 'NS', metricName: 'Memory % Committed Bytes In Use', measures: 'memory-used-percent' },
        { namespace: 'NS', metricName: 'LogicalDisk % Free Space', measures: 'disk-free-percent' },
      ]);
    });

    it('a measurement is read in its own section: used_percent of mem is memory, not disk', () => {
      expect(metricsPublishedBy(config({ mem: { measurement: [{ name: 'used_percent', rename: 'MEM' }] } }), 'linux')).toEqual([
        { namespace: 'NS', metricName: 'MEM', measures: 'memory-used-percent' },
      ]);
    });
  });

  it('both rendered configs fit a standard SSM parameter (4 KB)', () => {
    for (const config of Object.values(renderedAgentConfigs(defaults))) expect(Buffer.byteLength(config)).toBeLessThanOrEqual(4096);
  });

  it.each(['linux', 'windows'] as const)('the metrics queried for %s are exactly the ones its deployed config produces', (os) => {
    const published = metricsPublishedBy(renderedAgentConfigs(defaults)[os], os);
    expect(expectedMetrics(os, defaults)).toEqual(published);
  });
});
