import { elapsedLabel, type SimulatedClock } from './clock.js';
import type { InstanceOutcome, TimelineEntry } from './fleet-simulator.js';
import type { PublishedMessage } from './moto-state.js';

const isoTime = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g;

/** Replaces ISO timestamps in a text by `+mm:ss` from the start of the run. */
export function relativeTimes(text: string, clock: SimulatedClock): string {
  return text.replace(isoTime, (iso) => clock.label(Date.parse(iso)));
}

const markers: Record<TimelineEntry['source'], string> = { product: ' ', world: '~', lambda: '!', queue: '>', alert: '*', alarm: '*' };

/**
 * One timeline line: `+05:10  i-0abc (web-1, linux)  waiting-for-ssm  ping status NotRegistered; ...`.
 * Lines of the simulated world start with `~`, Lambda failures with `!`, the onboard queue's
 * batches (and dead letters) with `>`, alerts and alarms with `*`.
 */
export function formatTimelineLine(entry: TimelineEntry, clock: SimulatedClock, width = 150): string {
  const head = `${clock.label(entry.at).padStart(8)} ${markers[entry.source]} ${entry.subject.padEnd(40)} ${entry.step.padEnd(24)} `;
  const detail = relativeTimes(entry.detail, clock).replace(/\s+/g, ' ');
  const room = Math.max(20, width - head.length);
  return `${head}${detail.length > room ? `${detail.slice(0, room - 3)}...` : detail}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  const line = (row: string[]) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  const [header, ...body] = rows;
  return [line(header ?? []), widths.map((width) => '-'.repeat(width)).join('  '), ...body.map(line)].join('\n');
}

/** What an instance's alert (or alarm) was, in a few words for the table. */
function alertWords(outcome: InstanceOutcome): string {
  const alert = outcome.alerts[0];
  if (alert) return alert.subject.replace(/^\[cw-agent-autopilot\] /, '');
  const alarm = outcome.alarmNotifications.find((message) => message.subject.startsWith('ALARM'));
  if (alarm) return alarm.subject;
  return '-';
}

/**
 * The final table: instance, os, fault, final status, diagnosis, alert subject, and whether that is
 * right; with the account and region first when the fleet spans several.
 */
export function outcomeTable(outcomes: InstanceOutcome[]): string {
  const placed = outcomes.some((outcome) => outcome.spec.place !== undefined);
  const rows = [[...(placed ? ['account/region'] : []), 'instance', 'name', 'os', 'fault', 'final status', 'diagnosis / reason', 'alert (subject)', 'right?']];
  for (const outcome of outcomes) {
    rows.push([
      ...(placed ? [outcome.spec.place ? `${outcome.spec.place.account}/${outcome.spec.place.region}` : 'hub'] : []),
      outcome.instanceId,
      outcome.spec.name,
      outcome.spec.os,
      outcome.spec.fault,
      outcome.status,
      truncate(outcome.diagnosis ?? '-', 34),
      truncate(alertWords(outcome), 70),
      outcome.problems.length === 0 ? 'yes' : `NO: ${outcome.problems.join('; ')}`,
    ]);
  }
  return table(rows);
}

/** Whether the hub could not act in the instance's account and region (its record says member-unreachable). */
export function isUnreachable(outcome: InstanceOutcome): boolean {
  return outcome.record?.status === 'error' && (outcome.record.history ?? []).some((entry) => entry.step === 'member-unreachable');
}

/** One row per account: its regions, instances, healthy, alerted and unreachable ones. */
export function accountTable(outcomes: InstanceOutcome[], hubAccount: string): string {
  const accounts = [...new Set(outcomes.map((outcome) => outcome.spec.place?.account ?? hubAccount))];
  const rows = [['account', 'regions', 'instances', 'healthy', 'alerted', 'unreachable']];
  for (const account of accounts) {
    const mine = outcomes.filter((outcome) => (outcome.spec.place?.account ?? hubAccount) === account);
    const regions = [...new Set(mine.map((outcome) => outcome.spec.place?.region ?? '-'))].sort();
    rows.push([
      account === hubAccount ? `${account} (hub)` : account,
      regions.join(','),
      String(mine.length),
      String(mine.filter((outcome) => outcome.status === 'healthy').length),
      String(mine.filter((outcome) => outcome.alerts.length > 0).length),
      String(mine.filter(isUnreachable).length),
    ]);
  }
  return table(rows);
}

/** An alert's subject and its body's key lines (diagnosis, summary, evidence, next step), indented. */
export function alertExcerpt(message: PublishedMessage, clock: SimulatedClock, maxLines = 16): string {
  const lines = relativeTimes(message.message, clock).split('\n');
  const kept = lines.filter((line) => line.trim() !== '').slice(0, maxLines);
  const more = lines.filter((line) => line.trim() !== '').length - kept.length;
  return [`  Subject: ${message.subject}`, ...kept.map((line) => `  | ${truncate(line, 180)}`), ...(more > 0 ? [`  | ... (${more} more lines)`] : [])].join('\n');
}

function truncate(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 3)}...`;
}

export { elapsedLabel };
