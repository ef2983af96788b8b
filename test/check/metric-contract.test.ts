import { describe, expect, it } from 'vitest';
import { metricsPublishedBy, renderedAgentConfigs } from '../../shared/agent-config.js';
import { instanceAlarms } from '../../shared/checking/instance-alarms.js';
import { expectedMetrics } from '../../shared/checking/metric-queries.js';
import { instanceId, settings } from './fixtures.js';

describe('what the checker queries is what the deployed agent configs publish', () => {
  for (const os of ['linux', 'windows'] as const) {
    it(`${os}: the checked series and the alarms' series are exactly those of the rendered ${os} config`, () => {
      const published = metricsPublishedBy(renderedAgentConfigs(settings.metrics)[os], os);
      expect(published.length).toBeGreaterThan(0);
      expect(expectedMetrics(os, settings.metrics)).toEqual(published);
      const alarmed = instanceAlarms(instanceId, os, settings).map((a) => ({ namespace: a.Namespace, metricName: a.MetricName, dimensions: a.Dimensions }));
      const expected = published.map((m) => ({ namespace: m.namespace, metricName: m.metricName, dimensions: [{ Name: 'InstanceId', Value: instanceId }] }));
      expect(new Set(alarmed.map((a) => JSON.stringify(a)))).toEqual(new Set(expected.map((e) => JSON.stringify(e))));
    });
  }
});
