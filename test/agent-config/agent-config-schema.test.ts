import { beforeAll, describe, expect, it } from 'vitest';
import { readAgentConfigTemplate, renderedAgentConfigs, type OsFamily } from '../../shared/agent-config.js';
import { agentConfigSchemaAvailable, agentConfigSchemaErrors, agentConfigSchemaPath, agentConfigSchemaValidator } from './agent-config-schema.js';

// The configs as written and as rendered; the values deployed into the packaged template's
// parameters are checked by test/deploy/template.test.ts.

if (!agentConfigSchemaAvailable) {
  console.warn(`CloudWatch agent schema not found at ${agentConfigSchemaPath}: agent config schema tests are skipped`);
}

const systems: OsFamily[] = ['linux', 'windows'];
const defaults = { namespace: 'CloudWatch/TestMetrics', memory: 'MEMORY_USED', disk: 'DISK_USED', windowsDiskFree: 'DISK_FREE' };

interface Section {
  measurement?: unknown;
  metrics_collection_interval?: unknown;
  drop_device?: unknown;
}
interface LinuxConfig {
  metrics: Record<string, unknown> & { aggregation_dimensions: unknown; metrics_collected: { mem: Section; disk: Section } };
}
const linux = (): LinuxConfig => JSON.parse(renderedAgentConfigs(defaults).linux) as LinuxConfig;

describe.skipIf(!agentConfigSchemaAvailable)(
  `agent configs against the CloudWatch agent's schema${agentConfigSchemaAvailable ? '' : ` (skipped: no schema at ${agentConfigSchemaPath})`}`,
  () => {
    beforeAll(() => void agentConfigSchemaValidator(), 30_000);

    it.each(systems)('agent-config/%s.json as written (placeholders and all) is a config the agent accepts', (os) => {
      expect(agentConfigSchemaErrors(JSON.parse(readAgentConfigTemplate(os)))).toEqual([]);
    });

    it.each(systems)('the %s config rendered with the default metric settings is a config the agent accepts', (os) => {
      expect(agentConfigSchemaErrors(JSON.parse(renderedAgentConfigs(defaults)[os]))).toEqual([]);
    });

    it.each([
      {
        mistake: 'a misspelt key in the metrics section',
        mutate: (config: LinuxConfig) => void (config.metrics.metric_collected = {}),
        error: '/metrics must NOT have additional properties (metric_collected)',
      },
      {
        mistake: 'a collection interval written as a string',
        mutate: (config: LinuxConfig) => void (config.metrics.metrics_collected.mem.metrics_collection_interval = '60'),
        error: '/metrics/metrics_collected/mem/metrics_collection_interval must be integer',
      },
      {
        mistake: 'aggregation_dimensions as one flat list instead of a list of dimension sets',
        mutate: (config: LinuxConfig) => void (config.metrics.aggregation_dimensions = ['InstanceId']),
        error: '/metrics/aggregation_dimensions/0 must be array',
      },
      {
        mistake: 'drop_device as the string "true"',
        mutate: (config: LinuxConfig) => void (config.metrics.metrics_collected.disk.drop_device = 'true'),
        error: '/metrics/metrics_collected/disk/drop_device must be boolean',
      },
      {
        mistake: 'a disk section without its measurement list',
        mutate: (config: LinuxConfig) => void delete config.metrics.metrics_collected.disk.measurement,
        error: "/metrics/metrics_collected/disk must have required property 'measurement'",
      },
    ])('rejects a Linux config with $mistake, naming where', ({ mutate, error }) => {
      const config = linux();
      mutate(config);
      expect(agentConfigSchemaErrors(config)).toContain(error);
    });
  },
);
