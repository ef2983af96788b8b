import type { Clients } from '../aws/client-factory.js';
import type { AuditSummaryPayload, PayloadOrganization } from '../checking/alert-payload.js';
import { envelope, maxPublishBytes, publish, publishedBytes, snsSubject, topicMessage, type EnvelopeSettings, type TopicMessage } from '../checking/alerts.js';
import type { Settings } from '../config/settings.js';
import type { AuditReport } from './audit-summary.js';
import { renderSummaryText } from './audit-render.js';

/** How much of the summary a message carries at first; halved until the publish fits SNS's limit. */
const firstCut = { textBytes: 60_000, needsPerson: 50, accounts: 500 };

/** `text` cut to at most `maxBytes` bytes of UTF-8 (never inside a character), saying so when cut. */
function cutText(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const note = '\n... (cut; invoke the audit for the full report)';
  const kept = Buffer.from(text).subarray(0, Math.max(0, maxBytes - Buffer.byteLength(note))).toString('utf8').replace(/\uFFFD+$/, '');
  return `${kept}${note}`;
}

/** `, 20 accounts` in the subject of an audit of several accounts. */
function accountsNote(report: AuditReport): string {
  const accounts = report.organization?.accounts.length ?? 1;
  return accounts > 1 ? `, ${accounts} accounts` : '';
}

function remediationCounts(report: AuditReport): Record<string, number> | null {
  if (!report.remediation) return null;
  const counts: Record<string, number> = {};
  for (const outcome of report.remediation) counts[outcome.outcome] = (counts[outcome.outcome] ?? 0) + 1;
  return counts;
}

/** The per-account figures, worst first (places not read, then coverage), at most `accounts` of them and of the places not read. */
function organizationFigures(report: AuditReport, accounts: number): PayloadOrganization | undefined {
  const organization = report.organization;
  if (!organization) return undefined;
  const worstFirst = Object.entries(organization.byAccount).sort(
    ([a, left], [b, right]) => right.unreadablePlaces - left.unreadablePlaces || left.coverage - right.coverage || a.localeCompare(b),
  );
  const shown = worstFirst.slice(0, accounts);
  const unreadable = organization.unreadable.slice(0, accounts);
  return {
    accounts: organization.accounts.length,
    regions: organization.regions,
    places: organization.places,
    byAccount: Object.fromEntries(shown),
    byAccountOmitted: worstFirst.length - shown.length,
    unreadable,
    unreadableOmitted: organization.unreadable.length - unreadable.length,
  };
}

function auditMessage(report: AuditReport, settings: EnvelopeSettings, now: Date, cut: typeof firstCut): TopicMessage<AuditSummaryPayload> {
  const { summary } = report;
  const shown = summary.needsPerson.slice(0, cut.needsPerson);
  const severity = summary.healthy < summary.running || summary.partial ? 'warning' : 'info';
  return topicMessage(
    snsSubject(`cw-autopilot audit: ${(summary.coverage * 100).toFixed(1)}% covered (${summary.healthy}/${summary.running})${accountsNote(report)}${summary.partial ? ', partial' : ''}`),
    cutText(renderSummaryText(report), cut.textBytes),
    {
      ...envelope('audit-summary', severity, settings, now),
      fleet: {
        generatedAt: summary.generatedAt,
        regions: summary.regions,
        running: summary.running,
        healthy: summary.healthy,
        coverage: summary.coverage,
        byStatus: summary.byStatus,
        byOs: summary.byOs,
        byAvailabilityZone: summary.byAvailabilityZone,
        remediable: summary.remediable,
        underWay: summary.underWay,
        needsPerson: summary.needsPerson.length,
        partial: summary.partial,
        failures: summary.failures,
      },
      needsPerson: shown,
      needsPersonOmitted: summary.needsPerson.length - shown.length,
      remediation: remediationCounts(report),
      ...(report.organization ? { organization: organizationFigures(report, cut.accounts) } : {}),
    },
  );
}

/**
 * Renders the audit's summary (coverage, counts, the instances that need a person) as a topic
 * message: text for people, the numbers for machines. A large fleet's list is cut so the publish
 * (the text twice, the payload once per protocol) stays within SNS's 256 KiB. Pure.
 */
export function renderAuditSummary(report: AuditReport, settings: EnvelopeSettings, now = new Date()): TopicMessage<AuditSummaryPayload> {
  let cut = firstCut;
  let message = auditMessage(report, settings, now, cut);
  while (publishedBytes(message) > maxPublishBytes && cut.textBytes > 1_000) {
    cut = { textBytes: Math.floor(cut.textBytes / 2), needsPerson: Math.floor(cut.needsPerson / 2), accounts: Math.floor(cut.accounts / 2) };
    message = auditMessage(report, settings, now, cut);
  }
  return message;
}

/** Publishes the audit's summary to the stack's topic. Returns the message id. */
export async function publishAuditSummary(clients: Clients, report: AuditReport, settings: Pick<Settings, 'alertTopicArn' | 'region' | 'resourcePrefix'>): Promise<string> {
  return publish(clients, renderAuditSummary(report, settings), settings);
}
