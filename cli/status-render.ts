import { markdownCell, type ReportFormat } from '../shared/audit/audit-render.js';
import type { OnboardingRecord } from '../shared/state/instance-record.js';

/** One instance's record, and where it was read. */
export interface InstanceStatus {
  table: string;
  region: string;
  record: OnboardingRecord;
}

type Field = [label: string, value: string | undefined];

/** The record's fields worth a line, in the order a person asks about them; absent ones are left out. */
function fields({ table, region, record }: InstanceStatus): [label: string, value: string][] {
  const diagnosis = record.diagnosis;
  const list: Field[] = [
    ['status', `${record.status}${record.reason ? ` (${record.reason})` : ''}`],
    ['table', `${table} in ${region}`],
    ['os', record.os && `${record.os}${record.launchTime ? `, launched ${record.launchTime}` : ''}`],
    [
      'profile',
      record.profilePath &&
        `${record.profilePath}: ${record.profileArn ?? '?'}${record.roleName ? ` (role ${record.roleName})` : ''}${
          record.missingPolicies?.length ? `; role lacks ${record.missingPolicies.join(', ')}` : ''
        }`,
    ],
    ['command', record.commandId && `${record.commandId}${record.commandSentAt ? `, sent ${record.commandSentAt}` : ''}`],
    ['attempts', `Systems Manager looks ${record.ssmAttempts ?? 0}, checks ${record.checkAttempts ?? 0}, reinstalls ${record.reinstalls ?? 0}`],
    ['diagnosis', diagnosis && `${diagnosis.code}: ${diagnosis.summary}`],
    ...(diagnosis?.evidence ?? []).map((line): Field => ['evidence', line]),
    ['next step', diagnosis?.nextStep],
    [
      'alert',
      record.alertedAt &&
        `sent ${record.alertedAt}${record.alertedDiagnosis ? ` (${record.alertedDiagnosis})` : ''}${record.alertedLaunch ? ` for the launch of ${record.alertedLaunch}` : ''}`,
    ],
    [
      'healthy',
      record.healthyAt &&
        `${record.healthyAt}${record.firstDatapointAt ? `; first datapoint ${record.firstDatapointAt}` : ''}${
          record.launchToFirstMetricSeconds !== undefined ? ` (${record.launchToFirstMetricSeconds} s after launch)` : ''
        }`,
    ],
    ['alarms', record.alarmNames?.length ? record.alarmNames.join(', ') : undefined],
    ['last error', record.lastError],
    ['record', `version ${record.version}, created ${record.createdAt}, updated ${record.updatedAt}`],
  ];
  return list.filter((field): field is [string, string] => field[1] !== undefined && field[1] !== '');
}

function title(record: OnboardingRecord): string {
  return `${record.instanceId}${record.name ? ` (${record.name})` : ''}`;
}

/** Oldest first, as the record keeps it. Records written by older versions may lack a history. */
function history(record: OnboardingRecord): OnboardingRecord['history'] {
  return record.history ?? [];
}

/** The record and its history as text for a terminal: the fields, then a TIME / STEP / DETAIL timeline. Pure. */
export function renderStatusTable(status: InstanceStatus): string {
  const list = fields(status);
  const labelWidth = Math.max(...list.map(([label]) => label.length));
  const steps = history(status.record);
  const timeWidth = Math.max(4, ...steps.map((entry) => entry.at.length));
  const stepWidth = Math.max(4, ...steps.map((entry) => entry.step.length));
  const row = (at: string, step: string, detail: string) => `${at.padEnd(timeWidth)}  ${step.padEnd(stepWidth)}  ${detail}`.trimEnd();
  return [
    title(status.record),
    ...list.map(([label, value]) => `  ${label.padEnd(labelWidth)}  ${value}`),
    '',
    `History (${steps.length} step${steps.length === 1 ? '' : 's'}, oldest first)`,
    row('TIME', 'STEP', 'DETAIL'),
    ...steps.map((entry) => row(entry.at, entry.step, entry.detail ?? '')),
    '',
  ].join('\n');
}

/** The record and its history as GitHub-flavoured Markdown. Pure. */
export function renderStatusMarkdown(status: InstanceStatus): string {
  return [
    `# ${markdownCell(title(status.record))}: ${status.record.status}`,
    '',
    '| field | value |',
    '|---|---|',
    ...fields(status).map(([label, value]) => `| ${label} | ${markdownCell(value)} |`),
    '',
    '## History',
    '',
    '| time | step | detail |',
    '|---|---|---|',
    ...history(status.record).map((entry) => `| ${entry.at} | ${markdownCell(entry.step)} | ${markdownCell(entry.detail ?? '')} |`),
    '',
  ].join('\n');
}

/** The table, the region and the record as stored (every attribute, the whole history), for machines. Pure. */
export function renderStatusJson(status: InstanceStatus): string {
  return `${JSON.stringify(status, null, 2)}\n`;
}

/** Renders an instance's status in one of the output formats. Pure. */
export function renderStatus(status: InstanceStatus, format: ReportFormat): string {
  if (format === 'json') return renderStatusJson(status);
  if (format === 'markdown') return renderStatusMarkdown(status);
  return renderStatusTable(status);
}
