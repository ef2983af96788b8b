import { AlertNotSentError } from '../../shared/errors.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PublishCommand } from '@aws-sdk/client-sns';
import { runCheck } from '../../shared/checking/checking.js';
import { productMetrics, recordFleetCoverage } from '../../shared/observability/product-metrics.js';
import { emittedSeries, stdoutOf } from '../harness/emf.js';
import { awsError, givenDatapoints, resetAws, sns, table } from './check-harness.js';
import { instanceId, settings } from './fixtures.js';

// What the product's own metrics say, read from the EMF records Powertools writes (as CloudWatch
// reads them), not from calls to addMetric.

const now = new Date('2026-01-10T10:10:00.000Z');
const check = (attempt: number | undefined) => runCheck({ instanceId, attempt }, settings, now);

/** Runs `action`, then flushes as the handlers' logMetrics middleware does: the series written. */
async function emittedBy(action: () => unknown) {
  return emittedSeries(
    await stdoutOf(async () => {
      await action();
      if (productMetrics.hasStoredMetrics()) productMetrics.publishStoredMetrics();
    }),
  );
}

beforeEach(() => {
  resetAws();
  productMetrics.clearMetrics();
});
afterEach(() => productMetrics.clearMetrics());

describe('the checker counts instances', () => {
  it('the first healthy check of a launch counts healthy and onboarded, and 180 s from launch to the first datapoint', async () => {
    givenDatapoints(new Date('2026-01-10T10:03:00.000Z'), new Date('2026-01-10T10:08:00.000Z'));

    const series = await emittedBy(() => check(1));

    expect(series.map((s) => [s.namespace, s.metricName, s.unit, s.value])).toEqual([
      ['CWAgentAutopilot', 'InstancesHealthy', 'Count', 1],
      ['CWAgentAutopilot', 'InstancesOnboarded', 'Count', 1],
      ['CWAgentAutopilot', 'LaunchToFirstMetricSeconds', 'Seconds', 180],
    ]);
    for (const s of series) expect(s.dimensions).toEqual({ service: 'cw-agent-autopilot' });
  });

  it('a later healthy check of the same launch counts healthy only: not onboarded again, no second launch-to-first-metric', async () => {
    resetAws({ status: 'healthy', checkAttempts: 1, healthyAt: '2026-01-10T10:05:00.000Z', firstDatapointAt: '2026-01-10T10:03:00.000Z', launchToFirstMetricSeconds: 180 });
    givenDatapoints(new Date('2026-01-10T10:03:00.000Z'), new Date('2026-01-10T10:09:00.000Z'));

    const series = await emittedBy(() => check(undefined));

    expect(table.record).toMatchObject({ status: 'healthy', launchToFirstMetricSeconds: 180 });
    expect(series.map((s) => [s.metricName, s.value])).toEqual([['InstancesHealthy', 1]]);
  });

  it('an alert is counted once in total and once under its diagnosis', async () => {
    resetAws({ checkAttempts: 2, reinstalls: 0 });

    const series = await emittedBy(() => check(3));

    expect(series.map((s) => [s.metricName, s.dimensions, s.value])).toEqual(
      expect.arrayContaining([
        ['InstancesAlerted', { service: 'cw-agent-autopilot', diagnosis: 'no-datapoints' }, 1],
        ['InstancesAlerted', { service: 'cw-agent-autopilot' }, 1],
      ]),
    );
    expect(series).toHaveLength(2);
  });

  it('an alert SNS did not take is not counted', async () => {
    resetAws({ checkAttempts: 2, reinstalls: 0 });
    sns.on(PublishCommand).rejects(awsError('InternalError', 'SNS is down'));

    const series = await emittedBy(() => expect(check(3)).rejects.toThrow(AlertNotSentError));

    expect(series).toEqual([]);
  });
});

describe('the audit records fleet coverage', () => {
  it('in percent, never rounded up past a threshold', async () => {
    const series = await emittedBy(() => expect(recordFleetCoverage({ coverage: 0.9995, partial: false })).toBe(true));
    expect(series.map((s) => [s.metricName, s.unit, s.value, s.dimensions])).toEqual([['FleetCoveragePercent', 'Percent', 99.95, { service: 'cw-agent-autopilot' }]]);
  });

  it('not at all from a partial report', async () => {
    const series = await emittedBy(() => expect(recordFleetCoverage({ coverage: 0.5, partial: true })).toBe(false));
    expect(series).toEqual([]);
  });
});
