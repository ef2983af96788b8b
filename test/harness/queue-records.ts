// An SQS message of the onboard queue as Lambda's event source mapping hands it to the function:
// the record shape the onboarding tests build their batches from (the simulator's queue builds its
// own, with the receive counts and timestamps of its simulated clock: test/simulator/onboard-queue.ts).
import type { SQSRecord } from 'aws-lambda';

/**
 * One record of a batch: `body` as the EventBridge rule put it on the queue (JSON unless already a
 * string), delivered `receiveCount` times (1 by default; more: the pacing or a failure returned it).
 *
 * @example
 * const event = { Records: ids.map((id) => onboardQueueRecord(runningEvent(id), { messageId: `m-${id}`, queueArn })) };
 */
export function onboardQueueRecord(
  body: unknown,
  options: { messageId: string; receiptHandle?: string; queueArn: string; receiveCount?: number; sentTimestamp?: string },
): SQSRecord {
  const sent = options.sentTimestamp ?? '1741082400000';
  return {
    messageId: options.messageId,
    receiptHandle: options.receiptHandle ?? `handle-${options.messageId}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: { ApproximateReceiveCount: String(options.receiveCount ?? 1), SentTimestamp: sent, SenderId: 'AIDAEVENTBRIDGE', ApproximateFirstReceiveTimestamp: sent },
    messageAttributes: {},
    md5OfBody: '0',
    eventSource: 'aws:sqs',
    eventSourceARN: options.queueArn,
    awsRegion: options.queueArn.split(':')[3] ?? 'us-east-1',
  };
}
