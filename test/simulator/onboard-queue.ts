import { createHash } from 'node:crypto';
import type { Place } from '../../shared/aws/place.js';
import type { OnboardQueueSettings } from '../harness/stack.js';

// The onboard queue (SQS, standard) and Lambda's event source mapping that reads it, on the
// simulated clock. Every rule here and its source is in test/simulator/README.md, section Q.

/** One message of the queue, with what SQS knows of it and what the simulator wants to know. */
export interface QueuedMessage {
  messageId: string;
  /** The message body: the EventBridge event the rule sent, as JSON. */
  body: string;
  /** The instance (and its place) the body is about, for the timeline. */
  instanceId: string | undefined;
  place: Place;
  /** Who sent it (`EventBridge running`, `by hand`). */
  origin: string;
  sentAt: number;
  /** When a receive can next return it (ms since the epoch): sent, or back after a visibility timeout. */
  visibleAt: number;
  /** How many times a receive returned it (SQS's ApproximateReceiveCount). */
  receiveCount: number;
  firstReceivedAt: number | undefined;
  state: 'stored' | 'in-flight' | 'deleted' | 'dead-lettered';
}

/** A batch the event source mapping closed: the messages one invocation of the function gets. */
export interface QueueBatch {
  /** 1 for the first batch of the run. */
  number: number;
  /** When it closed (the invocation starts then, or as soon as the one before it ended). */
  closedAt: number;
  closedBy: 'batch size' | 'batching window';
  messages: QueuedMessage[];
}

/** A message SQS moved to the dead-letter queue. */
export interface DeadLetteredMessage {
  messageId: string;
  instanceId: string | undefined;
  place: Place;
  origin: string;
  /** Receives it had when it was moved (the queue's maxReceiveCount). */
  receiveCount: number;
  at: number;
}

/** How Lambda took the function's answer to a batch. */
export interface BatchSettlement {
  /** Messages deleted from the queue (processed). */
  deleted: number;
  /** Messages left in the queue: visible again when their visibility timeout ends. */
  returned: QueuedMessage[];
  /** Why the whole batch went back, when it did: the function threw, or its response named a message not in the batch. */
  wholeBatch: string | undefined;
}

/** The SQS event Lambda invokes the function with (one record per message). */
export interface SqsBatchEvent {
  Records: {
    messageId: string;
    receiptHandle: string;
    body: string;
    attributes: { ApproximateReceiveCount: string; SentTimestamp: string; SenderId: string; ApproximateFirstReceiveTimestamp: string };
    messageAttributes: Record<string, never>;
    md5OfBody: string;
    eventSource: 'aws:sqs';
    eventSourceARN: string;
    awsRegion: string;
  }[];
}

interface OpenBatch {
  openedAt: number;
  closesAt: number;
  messages: QueuedMessage[];
  lastJoinedAt: number;
}

/**
 * The onboard queue and the event source mapping polling it, one poller, one invocation at a time:
 * a batch opens when a message is received, and closes when it holds `batchSize` messages or
 * `batchWindowSeconds` after it opened. A received message is hidden for the queue's visibility
 * timeout; the function's answer deletes the batch's messages but the ones its `batchItemFailures`
 * name (every one, when it throws), which a receive returns again once their timeout is over. A
 * message about to be received for the (maxReceiveCount + 1)th time goes to the dead-letter queue.
 *
 * @example
 * const queue = new OnboardQueue(stack.onboardQueue);
 * queue.send({ body: JSON.stringify(event), instanceId, place, origin: 'EventBridge running' }, clock.now());
 * const { batch } = queue.take(clock.now() + 10_000);
 * if (batch) queue.settle(batch, await onboard(queue.eventOf(batch)));
 */
export class OnboardQueue {
  readonly settings: OnboardQueueSettings;
  readonly deadLettered: DeadLetteredMessage[] = [];
  #messages: QueuedMessage[] = [];
  #open: OpenBatch | undefined;
  /** When the last batch closed: a message received later cannot be in it. */
  #lastClose = Number.NEGATIVE_INFINITY;
  #sent = 0;
  #batches = 0;
  #receives = 0;

  constructor(settings: OnboardQueueSettings) {
    if (!(settings.batchSize >= 1) || !(settings.batchWindowSeconds >= 0) || !(settings.visibilityTimeoutSeconds >= 0) || !(settings.maxReceiveCount >= 1)) {
      throw new Error(`OnboardQueue: settings out of range: ${JSON.stringify(settings)}`);
    }
    this.settings = { ...settings };
  }

  /** Messages sent, receives made, batches closed so far. */
  get counts(): { sent: number; receives: number; batches: number } {
    return { sent: this.#sent, receives: this.#receives, batches: this.#batches };
  }

  /** A message sent at `at` (EventBridge's SendMessage to its target queue). */
  send(message: Pick<QueuedMessage, 'body' | 'instanceId' | 'place' | 'origin'>, at: number): QueuedMessage {
    this.#sent += 1;
    const queued: QueuedMessage = {
      ...message,
      // A message id has the form of a UUID; counted, so that a seeded run repeats.
      messageId: `00000000-0000-4000-8000-${this.#sent.toString(16).padStart(12, '0')}`,
      sentAt: at,
      visibleAt: at,
      receiveCount: 0,
      firstReceivedAt: undefined,
      state: 'stored',
    };
    this.#messages.push(queued);
    return queued;
  }

  /** Messages neither deleted nor dead-lettered (stored or in flight). */
  waiting(): QueuedMessage[] {
    return this.#messages.filter((message) => message.state === 'stored' || message.state === 'in-flight');
  }

  /** The next time something happens (a message can be received, the open batch closes), or undefined when nothing waits. */
  nextDue(): number | undefined {
    const stored = this.#stored();
    const nextVisible = stored.length > 0 ? Math.max(stored[0]?.visibleAt ?? 0, this.#open?.openedAt ?? this.#lastClose) : undefined;
    if (this.#open) return Math.min(this.#open.closesAt, nextVisible ?? Number.POSITIVE_INFINITY);
    return nextVisible;
  }

  /**
   * Receives what the poller has received by `now`, and closes the batch that is due by then.
   * Returns the closed batch (if any) and the messages moved to the dead-letter queue meanwhile.
   */
  take(now: number): { batch: QueueBatch | undefined; deadLettered: DeadLetteredMessage[] } {
    const moved: DeadLetteredMessage[] = [];
    const { batchSize, batchWindowSeconds, visibilityTimeoutSeconds, maxReceiveCount } = this.settings;
    for (const message of this.#stored()) {
      if (message.visibleAt > now) break;
      const receivedAt = Math.max(message.visibleAt, this.#open?.openedAt ?? this.#lastClose);
      if (this.#open && receivedAt > this.#open.closesAt) break;
      if (message.receiveCount >= maxReceiveCount) {
        message.state = 'dead-lettered';
        const dead = { messageId: message.messageId, instanceId: message.instanceId, place: message.place, origin: message.origin, receiveCount: message.receiveCount, at: receivedAt };
        this.deadLettered.push(dead);
        moved.push(dead);
        continue;
      }
      this.#open ??= { openedAt: receivedAt, closesAt: receivedAt + batchWindowSeconds * 1000, messages: [], lastJoinedAt: receivedAt };
      this.#receives += 1;
      message.receiveCount += 1;
      message.firstReceivedAt ??= receivedAt;
      message.visibleAt = receivedAt + visibilityTimeoutSeconds * 1000;
      message.state = 'in-flight';
      this.#open.messages.push(message);
      this.#open.lastJoinedAt = receivedAt;
      if (this.#open.messages.length >= batchSize) break;
    }
    const open = this.#open;
    if (!open) return { batch: undefined, deadLettered: moved };
    const full = open.messages.length >= batchSize;
    if (!full && now < open.closesAt) return { batch: undefined, deadLettered: moved };
    const closedAt = full ? open.lastJoinedAt : open.closesAt;
    this.#open = undefined;
    this.#lastClose = closedAt;
    this.#batches += 1;
    return { batch: { number: this.#batches, closedAt, closedBy: full ? 'batch size' : 'batching window', messages: open.messages }, deadLettered: moved };
  }

  /** The event Lambda invokes the function with for a batch. */
  eventOf(batch: QueueBatch): SqsBatchEvent {
    const region = this.settings.queueArn.split(':')[3] ?? 'us-east-1';
    return {
      Records: batch.messages.map((message) => ({
        messageId: message.messageId,
        receiptHandle: `${message.messageId}/${message.receiveCount}`,
        body: message.body,
        attributes: {
          ApproximateReceiveCount: String(message.receiveCount),
          SentTimestamp: String(message.sentAt),
          SenderId: 'AIDAIEVENTBRIDGERULE',
          ApproximateFirstReceiveTimestamp: String(message.firstReceivedAt ?? message.sentAt),
        },
        messageAttributes: {},
        md5OfBody: createHash('md5').update(message.body).digest('hex'),
        eventSource: 'aws:sqs',
        eventSourceARN: this.settings.queueArn,
        awsRegion: region,
      })),
    };
  }

  /**
   * What Lambda does with the function's answer to a batch: `{ error }` when the invocation failed,
   * else its response. With ReportBatchItemFailures, the messages its `batchItemFailures` name stay
   * in the queue and the others are deleted; an empty or absent list deletes them all; an item
   * naming no message of the batch (or an unreadable response) fails the whole batch.
   */
  settle(batch: QueueBatch, answer: { error: string } | { response: unknown }): BatchSettlement {
    const ids = new Set(batch.messages.map((message) => message.messageId));
    let failed: Set<string>;
    let wholeBatch: string | undefined;
    if ('error' in answer) {
      failed = ids;
      wholeBatch = `the invocation failed: ${answer.error}`;
    } else if (!this.settings.reportBatchItemFailures) {
      failed = new Set();
    } else {
      const read = readBatchItemFailures(answer.response, ids);
      failed = read.failed ?? ids;
      wholeBatch = read.problem;
    }
    const returned: QueuedMessage[] = [];
    for (const message of batch.messages) {
      if (failed.has(message.messageId)) {
        message.state = 'stored';
        returned.push(message);
      } else {
        message.state = 'deleted';
      }
    }
    return { deleted: batch.messages.length - returned.length, returned, wholeBatch };
  }

  #stored(): QueuedMessage[] {
    return this.#messages.filter((message) => message.state === 'stored').sort((a, b) => a.visibleAt - b.visibleAt || a.sentAt - b.sentAt);
  }
}

/**
 * The messages a partial batch response names: `failed` undefined (with the problem) when Lambda
 * would fail the whole batch (an item without a readable itemIdentifier, or one naming no message
 * of the batch; a response that is not an object with a list).
 */
export function readBatchItemFailures(response: unknown, batchIds: ReadonlySet<string>): { failed: Set<string> | undefined; problem: string | undefined } {
  if (response === undefined || response === null) return { failed: new Set(), problem: undefined };
  if (typeof response !== 'object') return { failed: undefined, problem: `the response is not an object (${typeof response})` };
  const list = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (list === undefined || list === null) return { failed: new Set(), problem: undefined };
  if (!Array.isArray(list)) return { failed: undefined, problem: 'batchItemFailures is not a list' };
  const failed = new Set<string>();
  for (const item of list) {
    const id = typeof item === 'object' && item !== null ? (item as { itemIdentifier?: unknown }).itemIdentifier : undefined;
    if (typeof id !== 'string' || id === '') return { failed: undefined, problem: `a batchItemFailures item has no itemIdentifier (${JSON.stringify(item)})` };
    if (!batchIds.has(id)) return { failed: undefined, problem: `itemIdentifier ${id} is no message of the batch` };
    failed.add(id);
  }
  return { failed, problem: undefined };
}
