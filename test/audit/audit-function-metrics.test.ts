import type { Context } from 'aws-lambda';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateFleet, installFakeAws, type FakeAws } from '../../scripts/simulated-fleet.js';
import { emittedSeries, stdoutOf } from '../harness/emf.js';
import { stackEnvironment } from '../harness/stack.js';

// The audit function's product metric, read from the EMF records it writes to stdout.

const env = stackEnvironment('bench');
const context = { functionName: 'cw-agent-autopilot-bench-audit', awsRequestId: 'r-1' } as Context;
let handler: (event: unknown, context: Context) => Promise<{ summary: { coverage: number; partial: boolean } }>;
let aws: FakeAws | undefined;

beforeAll(async () => {
  Object.assign(process.env, env, { POWERTOOLS_LOG_LEVEL: 'SILENT' });
  delete process.env.POWERTOOLS_METRICS_DISABLED;
  ({ handler } = (await import('../../functions/audit.js')) as never);
});
afterEach(() => aws?.restore());

const coverageOf = async (event: unknown) => {
  let summary: { coverage: number; partial: boolean } | undefined;
  const series = emittedSeries(await stdoutOf(async () => ({ summary } = await handler(event, context))));
  return { summary, series: series.filter((s) => s.metricName === 'FleetCoveragePercent') };
};

describe('the audit function records fleet coverage', () => {
  it('of an audit of the whole region, as the schedule runs it: percent, namespace and service of the stack', async () => {
    aws = installFakeAws(generateFleet(100));
    const { summary, series } = await coverageOf({ publish: false });
    expect(summary?.coverage).toBe(0.8);
    expect(series.map((s) => [s.namespace, s.dimensions, s.unit, s.value])).toEqual([
      [env.POWERTOOLS_METRICS_NAMESPACE, { service: 'cw-agent-autopilot' }, 'Percent', 80],
    ]);
  });

  it('not of an audit scoped by tag or instance id: that is not the fleet', async () => {
    aws = installFakeAws(generateFleet(100));
    expect((await coverageOf({ tags: ['team=web'] })).series).toEqual([]);
    expect((await coverageOf({ instanceIds: ['i-00000000000000001'] })).series).toEqual([]);
  });

  it('not of a partial report, whose coverage is not proven', async () => {
    aws = installFakeAws(generateFleet(100));
    aws.failApi('DescribeInstanceInformation', 'AccessDeniedException');
    const { summary, series } = await coverageOf({});
    expect(summary?.partial).toBe(true);
    expect(series).toEqual([]);
  });
});
