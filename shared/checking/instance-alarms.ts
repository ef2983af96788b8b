import {
  DeleteAlarmsCommand,
  paginateDescribeAlarms,
  PutMetricAlarmCommand,
  type PutMetricAlarmCommandInput,
} from '@aws-sdk/client-cloudwatch';
import type { Clients } from '../aws/client-factory.js';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { OsFamily } from '../agent-config.js';
import { expectedMetrics } from './metric-queries.js';
import type { Settings } from '../config/settings.js';

type AlarmSettings = Pick<Settings, 'alarms' | 'metrics' | 'alertTopicArn' | 'resourcePrefix'>;

/** Tag keys on every alarm the product creates. */
export const alarmTags = { instance: 'cw-autopilot:instance-id', managedBy: 'cw-autopilot:managed-by' } as const;

/** Every alarm of one instance starts with this: `${prefix}-${instanceId}-`. */
export function alarmNamePrefix(instanceId: string, settings: Pick<Settings, 'alarms'>): string {
  return `${settings.alarms.prefix}-${instanceId}-`;
}

/**
 * The alarms an instance gets once its metrics arrive, on the product's topic:
 * - `<prefix>-<id>-<metric>-missing` per expected series: fewer than one datapoint a minute for
 *   MISSING_DATA_ALARM_MINUTES minutes, missing data breaching (agent crashed, instance replaced);
 * - `<prefix>-<id>-<memory>-high` and `<prefix>-<id>-<disk>-high`: used % above the thresholds;
 *   on Windows the disk series is free %, so `<prefix>-<id>-<free>-low` alarms below 100 - threshold.
 * Pure: {@link putInstanceAlarms} creates them.
 */
export function instanceAlarms(instanceId: string, os: OsFamily, settings: AlarmSettings): PutMetricAlarmCommandInput[] {
  const { alarms } = settings;
  const prefix = alarmNamePrefix(instanceId, settings);
  const dimensions = [{ Name: 'InstanceId', Value: instanceId }];
  const tags = [
    { Key: alarmTags.instance, Value: instanceId },
    { Key: alarmTags.managedBy, Value: settings.resourcePrefix },
  ];
  // ALARM only: an OK action would also fire on every new alarm's first INSUFFICIENT_DATA -> OK,
  // four messages per healthy launch that nobody needs.
  const actions = { AlarmActions: [settings.alertTopicArn] };
  const result: PutMetricAlarmCommandInput[] = [];
  for (const metric of expectedMetrics(os, settings.metrics)) {
    const series = { Namespace: metric.namespace, MetricName: metric.metricName, Dimensions: dimensions };
    result.push({
      AlarmName: `${prefix}${metric.metricName}-missing`,
      AlarmDescription: `cw-agent-autopilot: ${instanceId} stopped publishing ${metric.metricName} for ${alarms.missingDataMinutes} minutes (agent stopped, disk full, instance replaced?)`,
      ...series,
      Statistic: 'SampleCount',
      Period: 60,
      EvaluationPeriods: alarms.missingDataMinutes,
      DatapointsToAlarm: alarms.missingDataMinutes,
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      TreatMissingData: 'breaching',
      ...actions,
      Tags: tags,
    });
    const threshold =
      metric.measures === 'memory-used-percent'
        ? { kind: 'high', operator: 'GreaterThanThreshold', value: alarms.memoryThreshold, words: `memory used above ${alarms.memoryThreshold}%` }
        : metric.measures === 'disk-used-percent'
          ? { kind: 'high', operator: 'GreaterThanThreshold', value: alarms.diskThreshold, words: `disk used above ${alarms.diskThreshold}%` }
          : { kind: 'low', operator: 'LessThanThreshold', value: 100 - alarms.diskThreshold, words: `disk free below ${100 - alarms.diskThreshold}%` };
    result.push({
      AlarmName: `${prefix}${metric.metricName}-${threshold.kind}`,
      AlarmDescription: `cw-agent-autopilot: ${instanceId} ${threshold.words}`,
      ...series,
      Statistic: 'Average',
      Period: alarms.periodSeconds,
      EvaluationPeriods: alarms.evaluationPeriods,
      ComparisonOperator: threshold.operator as PutMetricAlarmCommandInput['ComparisonOperator'],
      Threshold: threshold.value,
      // Missing data is the missing-data alarm's job.
      TreatMissingData: 'missing',
      ...actions,
      Tags: tags,
    });
  }
  return result;
}

/**
 * Creates (or updates: PutMetricAlarm is an upsert) an instance's alarms. Returns their names.
 * `beforeEach(k)` runs before the k-th call (a batch check's pacing: each call at its time).
 */
export async function putInstanceAlarms(clients: Clients, instanceId: string, os: OsFamily, settings: AlarmSettings, beforeEach?: (index: number) => Promise<void>): Promise<string[]> {
  const alarms = instanceAlarms(instanceId, os, settings);
  for (const [index, alarm] of alarms.entries()) {
    await beforeEach?.(index);
    await clients.of(CloudWatchClient).send(new PutMetricAlarmCommand(alarm));
  }
  return alarms.map((alarm) => alarm.AlarmName ?? '');
}

/** The names of the alarms that exist for an instance, found by name prefix. */
export async function instanceAlarmNames(clients: Clients, instanceId: string, settings: Pick<Settings, 'alarms'>): Promise<string[]> {
  const names: string[] = [];
  const pages = paginateDescribeAlarms({ client: clients.of(CloudWatchClient) }, { AlarmNamePrefix: alarmNamePrefix(instanceId, settings), AlarmTypes: ['MetricAlarm'] });
  for await (const page of pages) for (const alarm of page.MetricAlarms ?? []) if (alarm.AlarmName) names.push(alarm.AlarmName);
  return names;
}

/** Deletes every alarm of an instance (found by name prefix, 100 a call). Returns the names deleted. */
export async function deleteInstanceAlarms(clients: Clients, instanceId: string, settings: Pick<Settings, 'alarms'>): Promise<string[]> {
  const names = await instanceAlarmNames(clients, instanceId, settings);
  for (let from = 0; from < names.length; from += 100) {
    await clients.of(CloudWatchClient).send(new DeleteAlarmsCommand({ AlarmNames: names.slice(from, from + 100) }));
  }
  return names;
}
