// The onboard queue of the burst bench and the Lambda event source mapping that reads it, on the
// bench's simulated clock (scripts/burst-time.ts).
//
// What is modelled, and from where:
// - SQS visibility (Amazon SQS Developer Guide, "Amazon SQS visibility timeout"): a received message
//   is invisible for the queue's VisibilityTimeout from its receive, then visible again unless it
//   was deleted; ChangeMessageVisibility(Batch) restarts that timeout from the call with the value
//   given (0 to 43,200 s; at most 12 hours after the receive: "InvalidParameterValue" beyond).
//   Each receive gives a new receipt handle; only the latest one is accepted (an older one answers
//   ReceiptHandleIsInvalid: assumed, AWS says only that the latest must be used), and a message not
//   in flight answers MessageNotInflight (the API's error of that name).
// - The redrive policy (SQS Developer Guide, "Using dead-letter queues"): "When the ReceiveCount for
//   a message exceeds the maxReceiveCount for a queue, Amazon SQS moves the message to the
//   dead-letter queue" - here when a message that was received maxReceiveCount times becomes
//   visible again.
// - The event source mapping (Lambda Developer Guide, "Using Lambda with Amazon SQS", "Configuring
//   scaling behavior for SQS event source mappings"): "Lambda starts processing five batches at a
//   time with five concurrent invocations" - five pollers, each building one batch, invoking the
//   function with it and waiting for the answer before it reads again. A poller's batch closes
//   when it holds BatchSize messages or MaximumBatchingWindowInSeconds after its first one. With
//   ReportBatchItemFailures, the messages named in `batchItemFailures` stay in flight (they come
//   back when their visibility timeout ends); the others are deleted. A function error, a timeout,
//   or an answer naming a message not in the batch fails the whole batch. Reserved concurrency, if
//   set, caps the invocations at once (the rest wait, their messages in flight).
// - Assumed, unverified: how arriving messages are shared among the pollers. A poller long-polls
//   with ReceiveMessage, which returns up to 10 messages; here each visible message (up to 10 at
//   once) goes to the next poller in turn that is building a batch or idle. The scale-up beyond
//   five pollers (up to 300 more a minute while messages wait) is not modelled: the bench's bursts
//   keep at most a few batches' worth waiting.
import { createHash } from 'node:crypto';
import type { SimulatedTime } from './burst-time.js';

/** The queue and event source mapping settings (serverless.yml's). */
export interface QueueSettings {
  queueArn: string;
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
  batchSize: number;
  batchWindowSeconds: number;
  /** Batches read at once (five for a standard queue's event source mapping). */
  pollers: number;
  /** The function's reserved concurrency, or undefined when unreserved. */
  reservedConcurrency: number | undefined;
}

/** An SQS record as the event source mapping hands it to the function. */
export interface SqsRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: { ApproximateReceiveCount: string; SentTimestamp: string; SenderId: string; ApproximateFirstReceiveTimestamp: string };
  messageAttributes: Record<string, never>;
  md5OfBody: string;
  eventSource: 'aws:sqs';
  eventSourceARN: string;
  awsRegion: string;
}

/** What the function answered for a batch: its partial batch response, or that the batch failed. */
export type BatchAnswer = { ok: true; batchItemFailures: { itemIdentifier: string }[] } | { ok: false; reason: string };

interface Message {
  messageId: string;
  /** The instance the message is about (for the bench's report). */
  subject: string;
  body: string;
  sentAt: number;
  receiveCount: number;
  firstReceivedAt: number | undefined;
  receivedAt: number;
  receiptHandle: string | undefined;
  state: 'visible' | 'inflight' | 'deleted' | 'dead';
  /** Bumped at each receive and visibility change: a stale "visible again" event does nothing. */
  visibilityVersion: number;
}

interface Poller {
  index: number;
  state: 'idle' | 'collecting' | 'waiting-for-concurrency' | 'invoking';
  batch: Message[];
  /** Receipt handle of each message at its receive into this batch. */
  handles: Map<string, string>;
  closeVersion: number;
}

/** A visibility-timeout or receipt-handle error, shaped as the SDK raises the service's. */
export class QueueError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

const maxVisibilitySeconds = 43_200;
const maxMessagesPerReceive = 10;

/** Counts of what happened to the messages. */
export interface QueueCounts {
  sent: number;
  receives: number;
  /** Receives after the first (the message had been received before). */
  redeliveries: number;
  deleted: number;
  deadLettered: number;
  /** Messages the function named in batchItemFailures, or of a failed batch. */
  returned: number;
  batches: number;
  failedBatches: number;
  visibilityChanges: number;
  visibilityChangeErrors: Record<string, number>;
  maxReceiveCount: number;
}

/**
 * A standard SQS queue with a redrive policy, read by a Lambda event source mapping.
 *
 * @example
 * const queue = new SimulatedQueue(time, settings, async (records) => answerOf(await onboard({ Records: records })));
 * queue.send('msg-1', 'i-0abc', JSON.stringify(event), launchAt + 5_000);
 */
export class SimulatedQueue {
  readonly #time: SimulatedTime;
  readonly #settings: QueueSettings;
  readonly #invoke: (records: SqsRecord[]) => Promise<BatchAnswer>;
  readonly #messages = new Map<string, Message>();
  readonly #byHandle = new Map<string, Message>();
  readonly #visible: Message[] = [];
  readonly #pollers: Poller[];
  #nextPoller = 0;
  #invoking = 0;
  #handles = 0;
  /** Invoked per message the function returned, with the message's subject. */
  onReturned: ((subject: string) => void) | undefined;
  /** Invoked when a message goes to the dead-letter queue. */
  onDeadLettered: ((subject: string) => void) | undefined;
  readonly counts: QueueCounts = {
    sent: 0,
    receives: 0,
    redeliveries: 0,
    deleted: 0,
    deadLettered: 0,
    returned: 0,
    batches: 0,
    failedBatches: 0,
    visibilityChanges: 0,
    visibilityChangeErrors: {},
    maxReceiveCount: 0,
  };

  constructor(time: SimulatedTime, settings: QueueSettings, invoke: (records: SqsRecord[]) => Promise<BatchAnswer>) {
    this.#time = time;
    this.#settings = settings;
    this.#invoke = invoke;
    this.#pollers = Array.from({ length: settings.pollers }, (_, index) => ({ index, state: 'idle', batch: [], handles: new Map(), closeVersion: 0 }));
  }

  /** The queue's URL, as GetQueueUrl would answer it. */
  get url(): string {
    const [, , , region, account, name] = this.#settings.queueArn.split(':');
    return `https://sqs.${region}.amazonaws.com/${account}/${name}`;
  }

  /** Messages neither deleted nor dead-lettered. */
  get pending(): number {
    return this.counts.sent - this.counts.deleted - this.counts.deadLettered;
  }

  /** A message sent to the queue at simulated time `at` (an EventBridge rule's delivery). */
  send(messageId: string, subject: string, body: string, at: number): void {
    this.#time.at(at, () => {
      const message: Message = { messageId, subject, body, sentAt: this.#time.now(), receiveCount: 0, firstReceivedAt: undefined, receivedAt: 0, receiptHandle: undefined, state: 'visible', visibilityVersion: 0 };
      this.#messages.set(messageId, message);
      this.counts.sent += 1;
      this.#becomeVisible(message);
    });
  }

  /** Whether a QueueUrl names this queue (any SQS endpoint form; the account and name must match). */
  isThisQueue(queueUrl: string | undefined): boolean {
    const [, , , , account, name] = this.#settings.queueArn.split(':');
    return typeof queueUrl === 'string' && queueUrl.replace(/\/+$/, '').endsWith(`/${account}/${name}`);
  }

  /** ChangeMessageVisibility: the message is invisible for `seconds` from now. */
  changeVisibility(receiptHandle: string | undefined, seconds: number | undefined): void {
    try {
      this.#changeVisibility(receiptHandle, seconds);
      this.counts.visibilityChanges += 1;
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      this.counts.visibilityChangeErrors[name] = (this.counts.visibilityChangeErrors[name] ?? 0) + 1;
      throw error;
    }
  }

  #changeVisibility(receiptHandle: string | undefined, seconds: number | undefined): void {
    if (seconds === undefined || !Number.isInteger(seconds) || seconds < 0 || seconds > maxVisibilitySeconds) {
      throw new QueueError('InvalidParameterValue', `Value ${seconds} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and ${maxVisibilitySeconds}.`);
    }
    const message = receiptHandle ? this.#byHandle.get(receiptHandle) : undefined;
    if (!message || message.receiptHandle !== receiptHandle) throw new QueueError('ReceiptHandleIsInvalid', `The input receipt handle "${receiptHandle}" is not a valid receipt handle.`);
    if (message.state !== 'inflight') throw new QueueError('MessageNotInflight', 'Message does not exist or is not available for visibility timeout change.');
    const now = this.#time.now();
    if (now + seconds * 1000 > message.receivedAt + maxVisibilitySeconds * 1000) {
      throw new QueueError('InvalidParameterValue', 'Value for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]');
    }
    this.#hideUntil(message, now + seconds * 1000);
  }

  #hideUntil(message: Message, until: number): void {
    const version = ++message.visibilityVersion;
    this.#time.at(until, () => {
      if (message.state !== 'inflight' || message.visibilityVersion !== version) return;
      this.#becomeVisible(message);
    });
  }

  #becomeVisible(message: Message): void {
    if (message.receiveCount >= this.#settings.maxReceiveCount) {
      message.state = 'dead';
      this.counts.deadLettered += 1;
      this.onDeadLettered?.(message.subject);
      return;
    }
    message.state = 'visible';
    message.receiptHandle = undefined;
    this.#visible.push(message);
    this.#dispatch();
  }

  #receive(message: Message, poller: Poller): void {
    const now = this.#time.now();
    message.receiveCount += 1;
    message.firstReceivedAt ??= now;
    message.receivedAt = now;
    message.state = 'inflight';
    message.receiptHandle = `rh-${message.messageId}-${message.receiveCount}-${++this.#handles}`;
    this.#byHandle.set(message.receiptHandle, message);
    this.counts.receives += 1;
    if (message.receiveCount > 1) this.counts.redeliveries += 1;
    this.counts.maxReceiveCount = Math.max(this.counts.maxReceiveCount, message.receiveCount);
    this.#hideUntil(message, now + this.#settings.visibilityTimeoutSeconds * 1000);
    poller.batch.push(message);
    poller.handles.set(message.messageId, message.receiptHandle);
  }

  /** Hands visible messages, up to 10 at a time, to the pollers in turn that can take them. */
  #dispatch(): void {
    const { batchSize, batchWindowSeconds } = this.#settings;
    while (this.#visible.length > 0) {
      const poller = this.#takingPoller();
      if (!poller) return;
      const room = Math.min(maxMessagesPerReceive, batchSize - poller.batch.length);
      const taken = this.#visible.splice(0, room);
      for (const message of taken) this.#receive(message, poller);
      if (poller.state === 'idle') {
        poller.state = 'collecting';
        const version = ++poller.closeVersion;
        this.#time.at(this.#time.now() + batchWindowSeconds * 1000, () => {
          if (poller.state === 'collecting' && poller.closeVersion === version) this.#close(poller);
        });
      }
      if (poller.batch.length >= batchSize) this.#close(poller);
    }
  }

  #takingPoller(): Poller | undefined {
    for (let tried = 0; tried < this.#pollers.length; tried++) {
      const poller = this.#pollers[this.#nextPoller] as Poller;
      this.#nextPoller = (this.#nextPoller + 1) % this.#pollers.length;
      if ((poller.state === 'idle' || poller.state === 'collecting') && poller.batch.length < this.#settings.batchSize) return poller;
    }
    return undefined;
  }

  #close(poller: Poller): void {
    poller.closeVersion += 1;
    const limit = this.#settings.reservedConcurrency;
    if (limit !== undefined && this.#invoking >= limit) {
      poller.state = 'waiting-for-concurrency';
      return;
    }
    void this.#invokeWith(poller);
  }

  async #invokeWith(poller: Poller): Promise<void> {
    poller.state = 'invoking';
    this.#invoking += 1;
    this.counts.batches += 1;
    const batch = poller.batch;
    const records = batch.map((message) => this.#record(message, poller.handles.get(message.messageId) as string));
    const answer = await this.#invoke(records);
    this.#invoking -= 1;
    const ids = new Set(batch.map((message) => message.messageId));
    const named = answer.ok ? answer.batchItemFailures.map((failure) => failure.itemIdentifier) : [];
    const whole = !answer.ok || named.some((id) => !id || !ids.has(id));
    if (whole) this.counts.failedBatches += 1;
    const returned = new Set(whole ? ids : named);
    for (const message of batch) {
      if (returned.has(message.messageId)) {
        this.counts.returned += 1;
        this.onReturned?.(message.subject);
        continue;
      }
      // Lambda deletes with the receipt handle of its receive; a message received again meanwhile
      // (its visibility ran out during the invocation) is deleted all the same (assumed).
      if (message.state === 'inflight' || message.state === 'visible') {
        if (message.state === 'visible') this.#visible.splice(this.#visible.indexOf(message), 1);
        message.state = 'deleted';
        message.visibilityVersion += 1;
        this.counts.deleted += 1;
      }
    }
    poller.batch = [];
    poller.handles = new Map();
    poller.state = 'idle';
    const waiting = this.#pollers.find((other) => other.state === 'waiting-for-concurrency');
    if (waiting) void this.#invokeWith(waiting);
    this.#dispatch();
  }

  #record(message: Message, receiptHandle: string): SqsRecord {
    const region = this.#settings.queueArn.split(':')[3] as string;
    return {
      messageId: message.messageId,
      receiptHandle,
      body: message.body,
      attributes: {
        ApproximateReceiveCount: String(message.receiveCount),
        SentTimestamp: String(this.#time.epoch + message.sentAt),
        SenderId: 'AIDAIENQZJOLO23YVJ4VO',
        ApproximateFirstReceiveTimestamp: String(this.#time.epoch + (message.firstReceivedAt ?? message.receivedAt)),
      },
      messageAttributes: {},
      md5OfBody: createHash('md5').update(message.body).digest('hex'),
      eventSource: 'aws:sqs',
      eventSourceARN: this.#settings.queueArn,
      awsRegion: region,
    };
  }
}
