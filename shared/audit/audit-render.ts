import type { AuditReport, AuditSummary, CoverageTally } from './audit-summary.js';
import { auditStatuses, type AuditRow, type AuditStatus } from './instance-status.js';
import { describeUnreadable, type OrganizationSummary, type PlaceTally } from './organization-audit.js';
import type { ReportFormat } from './report-formats.js';

export { reportFormats, type ReportFormat } from './report-formats.js';

function percent(coverage: number): string {
  return `${(coverage * 100).toFixed(2)}%`;
}

function ago(iso: string | null, now: number): string {
  if (!iso) return 'none in 3 h';
  const minutes = Math.max(0, Math.round((now - Date.parse(iso)) / 60_000));
  return minutes < 120 ? `${minutes} min ago` : `${Math.round(minutes / 60)} h ago`;
}

function shortTime(iso: string | null): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : '-';
}

function metricsCell(row: AuditRow, now: number): string {
  if (row.metrics.length === 0) return row.status === 'unknown' ? '?' : '-';
  const recent = row.metrics.filter((metric) => metric.recent).length;
  const last = row.metrics.map((metric) => metric.lastDatapoint).filter((at): at is string => at !== null).sort().at(-1) ?? null;
  return `${recent}/${row.metrics.length} recent, ${last ? `last ${ago(last, now)}` : 'none in 3 h'}`;
}

function policiesCell(row: AuditRow): string {
  if (!row.profile) return '-';
  if (row.profile.missingPolicies.length) return `lacks ${row.profile.missingPolicies.join(', ')}`;
  return row.profile.role ? 'ok' : '?';
}

type Column = { title: string; cell: (row: AuditRow, now: number) => string };

/** Where each row is, shown when the report covers more than one account or region. */
const placeColumns: Column[] = [
  { title: 'ACCOUNT', cell: (row) => row.account },
  { title: 'REGION', cell: (row) => row.region },
];

const instanceColumns: Column[] = [
  { title: 'INSTANCE', cell: (row) => row.instanceId },
  { title: 'NAME', cell: (row) => row.name ?? '-' },
  { title: 'OS', cell: (row) => row.os },
  { title: 'AZ', cell: (row) => row.availabilityZone ?? '-' },
  { title: 'LAUNCHED', cell: (row) => shortTime(row.launchTime) },
  { title: 'PROFILE', cell: (row) => (row.profile ? `${row.profile.name}${row.profile.role ? ` (${row.profile.role})` : ''}` : '-') },
  { title: 'POLICIES', cell: (row) => policiesCell(row) },
  { title: 'SSM', cell: (row) => row.ssm?.pingStatus ?? '?' },
  { title: 'METRICS', cell: (row, now) => metricsCell(row, now) },
  { title: 'ONBOARDING', cell: (row) => row.onboarding?.status ?? '-' },
  { title: 'STATUS', cell: (row) => row.status },
];

/** Whether the report covers several places, so its rows must say where they are. */
function manyPlaces(report: AuditReport): boolean {
  return report.organization !== undefined && (report.organization.accounts.length > 1 || report.organization.regions.length > 1);
}

function columnsOf(report: AuditReport): Column[] {
  return manyPlaces(report) ? [...placeColumns, ...instanceColumns] : instanceColumns;
}

/** `i-0abc` alone, or `111111111111/eu-west-1 i-0abc` in a report of several places. */
function instanceLabel(report: AuditReport, item: { account: string; region: string; instanceId: string }): string {
  return manyPlaces(report) ? `${item.account}/${item.region} ${item.instanceId}` : item.instanceId;
}

/** The statuses other than healthy that a tally has, e.g. `no-profile 3, unknown 1`. */
function problems(byStatus: Record<AuditStatus, number>): string {
  return auditStatuses.filter((status) => status !== 'healthy' && byStatus[status] > 0).map((status) => `${status} ${byStatus[status]}`).join(', ') || '-';
}

/** One line per account (then per region): running, healthy, coverage, what is wrong, places not read. */
function placeTallyRows(organization: OrganizationSummary, by: 'account' | 'region'): string[][] {
  const groups = by === 'account' ? organization.byAccount : organization.byRegion;
  const placesEach = by === 'account' ? organization.regions.length : organization.accounts.length;
  return Object.entries(groups).map(([key, tally]: [string, PlaceTally]) => [
    key,
    String(tally.running),
    String(tally.healthy),
    tally.unreadablePlaces === placesEach ? '-' : percent(tally.coverage),
    problems(tally.byStatus),
    tally.unreadablePlaces ? `${tally.unreadablePlaces} of ${placesEach} ${by === 'account' ? 'regions' : 'accounts'}` : '-',
  ]);
}

const placeTallyTitles = (by: 'account' | 'region') => [by.toUpperCase(), 'RUNNING', 'HEALTHY', 'COVERAGE', 'NOT HEALTHY', 'NOT READ'];

/** Text lines of a table, columns padded (numbers right-aligned). Pure. */
function aligned(rows: string[][], rightAligned: number[] = []): string[] {
  const widths = (rows[0] ?? []).map((_, index) => Math.max(...rows.map((row) => row[index]?.length ?? 0)));
  return rows.map((row) => row.map((value, index) => (rightAligned.includes(index) ? value.padStart(widths[index] ?? 0) : value.padEnd(widths[index] ?? 0))).join('  ').trimEnd());
}

function organizationLines(report: AuditReport): string[] {
  const organization = report.organization;
  if (!organization) return [];
  const lines = [
    `Places: ${organization.places} (${organization.accounts.length} account(s) x ${organization.regions.length} region(s)), ${organization.unreadable.length} not read`,
  ];
  if (manyPlaces(report)) {
    lines.push('By account:', ...aligned([placeTallyTitles('account'), ...placeTallyRows(organization, 'account')], [1, 2, 3]).map((line) => `  ${line}`));
    if (organization.regions.length > 1) lines.push('By region:', ...aligned([placeTallyTitles('region'), ...placeTallyRows(organization, 'region')], [1, 2, 3]).map((line) => `  ${line}`));
  }
  if (organization.unreadable.length) {
    lines.push(`NOT READ: ${organization.unreadable.length} place(s); their instances are not in this report:`);
    for (const place of organization.unreadable) lines.push(`  ${describeUnreadable(place)}`);
  }
  return lines;
}

function tallies(groups: Record<string, CoverageTally>): string {
  const entries = Object.entries(groups).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([key, tally]) => `${key} ${tally.healthy}/${tally.running}`).join(', ') : '-';
}

function statusCounts(summary: AuditSummary): string {
  return auditStatuses
    .filter((status) => summary.byStatus[status] > 0 || status === 'healthy')
    .map((status) => `${status} ${summary.byStatus[status]}`)
    .join(', ');
}

function summaryLines(report: AuditReport): string[] {
  const { summary } = report;
  const lines = [
    `Coverage: ${summary.healthy}/${summary.running} running instances healthy (${percent(summary.coverage)}) in ${summary.regions.join(', ') || '-'} at ${summary.generatedAt}`,
    `By status: ${statusCounts(summary)}`,
    `By OS: ${tallies(summary.byOs)}`,
    `By AZ: ${tallies(summary.byAvailabilityZone)}`,
    `Fixable with --remediate: ${summary.remediable}; onboarding under way: ${summary.underWay}; needing a person: ${summary.needsPerson.length}`,
    ...organizationLines(report),
  ];
  if (summary.failures.length) {
    lines.push(`PARTIAL REPORT: ${summary.failures.length} AWS read(s) kept failing; rows marked unknown lack those facts:`);
    for (const failure of summary.failures) {
      lines.push(`  ${failure.account ? `${failure.account}/` : ''}${failure.region} ${failure.api}${failure.instances ? ` (${failure.instances} instances)` : ''}: ${failure.error}`);
    }
  }
  return lines;
}

function remediationLines(report: AuditReport): string[] {
  if (!report.remediation) return [];
  if (report.remediation.length === 0) return ['Remediation: nothing to start'];
  const dryRun = report.remediation.every((item) => item.outcome === 'would-start');
  return [
    `Remediation${dryRun ? ' (dry run, nothing changed)' : ''}:`,
    ...report.remediation.map((item) => `  ${instanceLabel(report, item)} (${item.status}): ${item.outcome}: ${item.detail}`),
  ];
}

/**
 * The report as a terminal table: one line per instance, then the fixes, the summary and what
 * remediation did. Pure.
 */
export function renderTable(report: AuditReport): string {
  const now = Date.parse(report.summary.generatedAt);
  const columns = columnsOf(report);
  const cells = report.instances.map((row) => columns.map((column) => column.cell(row, now)));
  const widths = columns.map((column, index) => Math.max(column.title.length, ...cells.map((line) => line[index]?.length ?? 0)));
  const line = (values: string[]) => values.map((value, index) => value.padEnd(widths[index] ?? 0)).join('  ').trimEnd();
  const fixes = report.instances.filter((row) => row.remedy !== 'none');
  return [
    line(columns.map((column) => column.title)),
    ...cells.map(line),
    '',
    ...(fixes.length ? ['Fixes:', ...fixes.map((row) => `  ${instanceLabel(report, row)} ${row.status} [${row.remedy}]: ${row.fix}`), ''] : []),
    ...summaryLines(report),
    ...remediationLines(report),
    '',
  ].join('\n');
}

/** Text made safe for one cell of a Markdown table. Pure. */
export function markdownCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The report as GitHub-flavoured Markdown: summary first, then the table and the fixes. Pure. */
export function renderMarkdown(report: AuditReport): string {
  const now = Date.parse(report.summary.generatedAt);
  const { summary, organization } = report;
  const columns = columnsOf(report);
  const groupTable = (title: string, groups: Record<string, CoverageTally>) => [
    `| ${title} | running | healthy |`,
    '|---|---:|---:|',
    ...Object.entries(groups).sort(([a], [b]) => a.localeCompare(b)).map(([key, tally]) => `| ${markdownCell(key)} | ${tally.running} | ${tally.healthy} |`),
  ];
  const lines = [
    '# CloudWatch agent coverage audit',
    '',
    `**Coverage: ${summary.healthy}/${summary.running} running instances healthy (${percent(summary.coverage)})** — ${summary.regions.join(', ') || '-'}, ${summary.generatedAt}`,
    '',
    '| status | instances |',
    '|---|---:|',
    ...auditStatuses.map((status) => `| ${status} | ${summary.byStatus[status]} |`),
    '',
    ...groupTable('OS', summary.byOs),
    '',
    ...groupTable('AZ', summary.byAvailabilityZone),
    '',
  ];
  if (organization && manyPlaces(report)) {
    const placeTable = (by: 'account' | 'region') => [
      `| ${placeTallyTitles(by).map((title) => title.toLowerCase()).join(' | ')} |`,
      '|---|---:|---:|---:|---|---|',
      ...placeTallyRows(organization, by).map((cells) => `| ${cells.map(markdownCell).join(' | ')} |`),
      '',
    ];
    lines.push(`## By account (${organization.accounts.length})`, '', ...placeTable('account'));
    if (organization.regions.length > 1) lines.push(`## By region (${organization.regions.length})`, '', ...placeTable('region'));
  }
  if (organization?.unreadable.length) {
    lines.push(`> **Not read**: ${organization.unreadable.length} of ${organization.places} places; their instances are not in this report.`, '>');
    for (const place of organization.unreadable) lines.push(`> - ${markdownCell(describeUnreadable(place))}`);
    lines.push('');
  }
  if (summary.failures.length) {
    lines.push('> **Partial report**: these AWS reads kept failing; rows marked `unknown` lack those facts.', '>');
    for (const failure of summary.failures) lines.push(`> - ${failure.account ? `${failure.account}/` : ''}${failure.region} ${failure.api}: ${markdownCell(failure.error)}`);
    lines.push('');
  }
  lines.push(`## Needs a person (${summary.needsPerson.length})`, '');
  lines.push(...(summary.needsPerson.length ? summary.needsPerson.map((item) => `- **${instanceLabel(report, item)}**${item.name ? ` (${markdownCell(item.name)})` : ''} ${item.status}: ${markdownCell(item.fix)}`) : ['None.']));
  lines.push('', '## Instances', '');
  lines.push(`| ${columns.map((column) => column.title.toLowerCase()).join(' | ')} | fix |`);
  lines.push(`|${columns.map(() => '---').join('|')}|---|`);
  for (const row of report.instances) {
    lines.push(`| ${columns.map((column) => markdownCell(column.cell(row, now))).join(' | ')} | ${row.remedy === 'none' ? '' : markdownCell(row.fix)} |`);
  }
  const remediation = remediationLines(report);
  if (remediation.length) lines.push('', '## Remediation', '', ...remediation.map((text) => (text.startsWith('  ') ? `- ${text.trim()}` : text)));
  lines.push('');
  return lines.join('\n');
}

/** The report as JSON, for machines (and the Lambda's response). Pure. */
export function renderJson(report: AuditReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** Renders a report in one of the {@link reportFormats}. */
export function renderReport(report: AuditReport, format: ReportFormat): string {
  if (format === 'json') return renderJson(report);
  if (format === 'markdown') return renderMarkdown(report);
  return renderTable(report);
}

/** A short plain-text summary (for an SNS message or a log line). Pure. */
export function renderSummaryText(report: AuditReport, limit = 50): string {
  const people = report.summary.needsPerson;
  return [
    ...summaryLines(report),
    ...(people.length ? ['', `Needs a person (${people.length}):`, ...people.slice(0, limit).map((item) => `- ${instanceLabel(report, item)} ${item.status}: ${item.fix}`)] : []),
    ...(people.length > limit ? [`... and ${people.length - limit} more (see the full report)`] : []),
    ...remediationLines(report),
  ].join('\n');
}
