import { ChangeMessageVisibilityBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { chunksOf, mapBounded } from '../audit/concurrency.js';
import { logger } from '../observability/logger.js';
import type { QueueDelivery } from '../input/triggers.js';
import type { Clients, SdkClientConfig } from './client-factory.js';
import { describeError } from './errors.js';

/** A message in flight, and how many seconds from now it should be delivered again. */
export interface VisibilityChange extends QueueDelivery {
  messageId: string;
  visibilityTimeoutSeconds: number;
}

/** What {@link changeVisibility} did: the messages whose visibility changed, and those that keep the queue's. */
export interface VisibilityOutcome {
  changed: string[];
  unchanged: { messageId: string; error: string }[];
}

/** ChangeMessageVisibilityBatch takes up to 10 entries (API reference). */
export const maxVisibilityEntriesPerCall = 10;

/**
 * The SQS client of the product's queues. A queue URL built from an ARN names SQS's public
 * endpoint, and by default the SDK sends a request to its QueueUrl's host when that differs from
 * the client's endpoint (`useQueueUrlAsEndpoint`): the client's own endpoint must win, so that
 * `AWS_ENDPOINT_URL(_SQS)` (a VPC endpoint; moto in the tests) is where the call goes.
 */
export class QueueClient extends SQSClient {
  constructor(config: SdkClientConfig) {
    super({ ...config, useQueueUrlAsEndpoint: false });
  }
}

/**
 * The URL of a queue from its ARN (`arn:aws:sqs:us-east-1:123456789012:cwap-dev-onboard` ->
 * `https://sqs.us-east-1.amazonaws.com/123456789012/cwap-dev-onboard`), or undefined for what is
 * no SQS queue ARN.
 */
export function queueUrlOfArn(arn: string): string | undefined {
  const match = /^arn:(aws[\w-]*):sqs:([a-z0-9-]+):(\d{12}):([\w-]+(?:\.fifo)?)$/.exec(arn);
  if (!match) return undefined;
  const [, partition, region, account, name] = match;
  const suffix = partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `https://sqs.${region}.${suffix}/${account}/${name}`;
}

/**
 * Gives messages in flight a visibility timeout of their own (ChangeMessageVisibilityBatch, up to
 * 10 a call, per queue), so each comes back when it is expected to succeed rather than after the
 * queue's timeout. Best effort by design: a message whose change fails (the call, or its entry)
 * is logged and keeps the queue's visibility timeout, so it still comes back, later; nothing here
 * throws.
 *
 * @example
 * await changeVisibility(clients, [{ messageId, receiptHandle, queueArn, visibilityTimeoutSeconds: 42 }]);
 */
export async function changeVisibility(clients: Pick<Clients, 'hub'>, changes: readonly VisibilityChange[]): Promise<VisibilityOutcome> {
  const outcome: VisibilityOutcome = { changed: [], unchanged: [] };
  const byQueue = new Map<string, VisibilityChange[]>();
  for (const change of changes) {
    const queueUrl = queueUrlOfArn(change.queueArn);
    if (!queueUrl) {
      outcome.unchanged.push({ messageId: change.messageId, error: `not an SQS queue ARN: ${change.queueArn}` });
      continue;
    }
    byQueue.set(queueUrl, [...(byQueue.get(queueUrl) ?? []), change]);
  }
  const calls = [...byQueue].flatMap(([queueUrl, queued]) => chunksOf(queued, maxVisibilityEntriesPerCall).map((chunk) => ({ queueUrl, chunk })));
  await mapBounded(calls, 4, async ({ queueUrl, chunk }) => {
    try {
      // Entry ids are the positions: an SQS message id is a UUID, but a batch built by hand may carry any string.
      const answer = await clients.hub(QueueClient).send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((change, index) => ({ Id: String(index), ReceiptHandle: change.receiptHandle, VisibilityTimeout: change.visibilityTimeoutSeconds })),
        }),
      );
      const failed = new Map((answer.Failed ?? []).map((entry) => [entry.Id, `${entry.Code ?? 'Failed'}: ${entry.Message ?? ''}`.trim()]));
      chunk.forEach((change, index) => {
        const error = failed.get(String(index));
        if (error) outcome.unchanged.push({ messageId: change.messageId, error });
        else outcome.changed.push(change.messageId);
      });
    } catch (error) {
      for (const change of chunk) outcome.unchanged.push({ messageId: change.messageId, error: describeError(error) });
    }
  });
  if (outcome.unchanged.length) {
    logger.warn('visibility of deferred messages not changed: they come back after the queue\'s visibility timeout instead', { unchanged: outcome.unchanged });
  }
  return outcome;
}
