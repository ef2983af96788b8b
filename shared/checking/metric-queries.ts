import { GetMetricDataCommand, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { Clients } from '../aws/client-factory.js';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { ExpectedMetric, OsFamily } from '../agent-config.js';
import type { Settings } from '../config/settings.js';

/** GetMetricData accepts at most this many metric queries per call. */
export const maxQueriesPerCall = 500;

/**
 * The series the deployed agent config for an OS publishes on exactly `{InstanceId}`.
 * Windows reports disk as free space, under its own name (never `*_USED`).
 * test/agent-config checks this against the rendered config files.
 */
export function expectedMetrics(os: OsFamily, metrics: Settings['metrics']): ExpectedMetric[] {
  return [
    { namespace: metrics.namespace, metricName: metrics.memory, measures: 'memory-used-percent' },
    os === 'windows'
      ? { namespace: metrics.namespace, metricName: metrics.windowsDiskFree, measures: 'disk-free-percent' }
      : { namespace: metrics.namespace, metricName: metrics.disk, measures: 'disk-used-percent' },
  ];
}

/** One instance whose expected metrics should be looked up. */
export interface MetricSubject {
  instanceId: string;
  os: OsFamily;
  /**
   * Count only datapoints of periods from this one on (a batch's lookup spans the earliest
   * instance's window; each instance's own starts at its launch). Undefined: the whole window.
   */
  since?: Date | undefined;
}

/** What CloudWatch holds for one expected series of one instance in the window. */
export interface SeriesPresence {
  instanceId: string;
  metricName: string;
  datapoints: number;
  firstDatapoint: string | undefined;
  lastDatapoint: string | undefined;
}

/**
 * Looks up, for many instances at once, whether each expected series has datapoints between
 * `start` and `end`: one GetMetricData query per series, 500 per call, on the exact
 * `{InstanceId}` dimension set. Never uses ListMetrics (it lags new metrics by up to 15 minutes).
 *
 * @example
 * const presence = await seriesPresence([{ instanceId, os: 'linux' }], settings.metrics, { start, end });
 */
export async function seriesPresence(
  clients: Clients,
  subjects: MetricSubject[],
  metrics: Settings['metrics'],
  window: { start: Date; end: Date; periodSeconds?: number },
): Promise<SeriesPresence[]> {
  const periodMs = (window.periodSeconds ?? 60) * 1000;
  const queries: { query: MetricDataQuery; instanceId: string; metricName: string; fromMs: number }[] = [];
  for (const subject of subjects) {
    // A datapoint is stamped with the start of its period: the period holding `since` counts, as it
    // would in a lookup starting at `since`.
    const fromMs = subject.since ? Math.floor(subject.since.getTime() / periodMs) * periodMs : Number.NEGATIVE_INFINITY;
    for (const metric of expectedMetrics(subject.os, metrics)) {
      const id = `q${queries.length}`;
      queries.push({
        instanceId: subject.instanceId,
        metricName: metric.metricName,
        fromMs,
        query: {
          Id: id,
          ReturnData: true,
          MetricStat: {
            Metric: {
              Namespace: metric.namespace,
              MetricName: metric.metricName,
              Dimensions: [{ Name: 'InstanceId', Value: subject.instanceId }],
            },
            Period: window.periodSeconds ?? 60,
            Stat: 'SampleCount',
          },
        },
      });
    }
  }

  const timestamps = new Map<string, Date[]>();
  for (let from = 0; from < queries.length; from += maxQueriesPerCall) {
    const batch = queries.slice(from, from + maxQueriesPerCall);
    let nextToken: string | undefined;
    do {
      const page = await clients.of(CloudWatchClient).send(
        new GetMetricDataCommand({
          MetricDataQueries: batch.map((entry) => entry.query),
          StartTime: window.start,
          EndTime: window.end,
          ScanBy: 'TimestampAscending',
          NextToken: nextToken,
        }),
      );
      for (const result of page.MetricDataResults ?? []) {
        if (!result.Id) continue;
        const seen = timestamps.get(result.Id) ?? [];
        result.Timestamps?.forEach((timestamp, index) => {
          if ((result.Values?.[index] ?? 0) > 0) seen.push(timestamp);
        });
        timestamps.set(result.Id, seen);
      }
      nextToken = page.NextToken;
    } while (nextToken);
  }

  return queries.map(({ query, instanceId, metricName, fromMs }) => {
    const seen = (timestamps.get(query.Id ?? '') ?? [])
      .map((t) => t.getTime())
      .filter((t) => t >= fromMs)
      .sort((a, b) => a - b);
    const first = seen[0];
    const last = seen[seen.length - 1];
    return {
      instanceId,
      metricName,
      datapoints: seen.length,
      firstDatapoint: first === undefined ? undefined : new Date(first).toISOString(),
      lastDatapoint: last === undefined ? undefined : new Date(last).toISOString(),
    };
  });
}
