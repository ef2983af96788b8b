import { PublishCommand } from '@aws-sdk/client-sns';
import { sns } from '../aws-clients.js';
import type { AuditReport } from './audit-summary.js';
import { renderSummaryText } from './audit-render.js';

/** SNS takes at most 256 KB a message; the summary is cut well below that. */
const maxMessageBytes = 200_000;

/**
 * Publishes the audit's summary (coverage, counts, the instances that need a person) to a topic.
 * Returns the message id.
 */
export async function publishAuditSummary(topicArn: string, report: AuditReport): Promise<string | undefined> {
  const { summary } = report;
  let message = renderSummaryText(report);
  if (Buffer.byteLength(message) > maxMessageBytes) message = `${message.slice(0, maxMessageBytes - 100)}\n... (cut; invoke the audit for the full report)`;
  const result = await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: `cw-autopilot audit: ${(summary.coverage * 100).toFixed(1)}% covered (${summary.healthy}/${summary.running})${summary.partial ? ', partial' : ''}`.slice(0, 100),
      Message: message,
      MessageAttributes: {
        kind: { DataType: 'String', StringValue: 'audit-summary' },
      },
    }),
  );
  return result.MessageId;
}
