import { describe, expect, it } from 'vitest';
import { isQueueBatch, parseOnboardQueueBatch } from '../../shared/input/triggers.js';
import { stateChangeEvent } from '../harness/fleet.js';
import { onboardQueueSettings, type OnboardQueueSettings } from '../harness/stack.js';
import { OnboardQueue, readBatchItemFailures } from './onboard-queue.js';

const hub = { account: '123456789012', region: 'us-east-1' };
const settings: OnboardQueueSettings = { ...onboardQueueSettings('test'), batchSize: 3, batchWindowSeconds: 10, visibilityTimeoutSeconds: 360, maxReceiveCount: 5 };
const id = (n: number) => `i-0${n.toString(16).padStart(16, '0')}`;
const sendAt = (queue: OnboardQueue, n: number, at: number) =>
  queue.send({ body: JSON.stringify(stateChangeEvent(id(n), 'running', new Date(at))), instanceId: id(n), place: hub, origin: 'EventBridge running' }, at);

describe('the onboard queue event source mapping', () => {
  it('reads its figures from serverless.yml: the onboardBatchSize and window params, the queue\'s visibility timeout and redrive policy', () => {
    expect(onboardQueueSettings('test')).toEqual({
      queueName: 'cwap-test-onboard',
      queueArn: 'arn:aws:sqs:us-east-1:123456789012:cwap-test-onboard',
      deadLetterQueueName: 'cwap-test-onboard-dead-letters',
      batchSize: 100,
      batchWindowSeconds: 30,
      reportBatchItemFailures: true,
      visibilityTimeoutSeconds: 360,
      maxReceiveCount: 10,
    });
  });

  it('closes a batch when it holds batchSize messages, at the moment the last one arrives', () => {
    const queue = new OnboardQueue(settings);
    for (const n of [1, 2, 3, 4]) sendAt(queue, n, n * 1000);
    expect(queue.take(2500).batch).toBeUndefined();
    expect(queue.nextDue()).toBe(3000);
    const { batch } = queue.take(3000);
    expect(batch).toMatchObject({ number: 1, closedAt: 3000, closedBy: 'batch size' });
    expect(batch?.messages.map((message) => message.instanceId)).toEqual([id(1), id(2), id(3)]);
  });

  it('closes a batch batchWindowSeconds after its first message, with what arrived meanwhile', () => {
    const queue = new OnboardQueue(settings);
    sendAt(queue, 1, 1000);
    sendAt(queue, 2, 9000);
    sendAt(queue, 3, 12_000);
    expect(queue.take(10_999).batch).toBeUndefined();
    expect(queue.nextDue()).toBe(11_000);
    const first = queue.take(11_000).batch;
    expect(first).toMatchObject({ closedAt: 11_000, closedBy: 'batching window' });
    expect(first?.messages.map((message) => message.instanceId)).toEqual([id(1), id(2)]);
    // The next one opens with the next message, and waits its own window.
    expect(queue.take(21_999).batch).toBeUndefined();
    expect(queue.take(22_000).batch?.messages.map((message) => message.instanceId)).toEqual([id(3)]);
  });

  it('builds the SQS event the product reads: each body the EventBridge event, with its receive count', () => {
    const queue = new OnboardQueue(settings);
    sendAt(queue, 1, 1000);
    const { batch } = queue.take(11_000);
    if (!batch) throw new Error('no batch');
    const event = queue.eventOf(batch);
    expect(event.Records[0]).toMatchObject({
      eventSource: 'aws:sqs',
      eventSourceARN: settings.queueArn,
      awsRegion: 'us-east-1',
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: '1000', ApproximateFirstReceiveTimestamp: '1000' },
    });
    expect(isQueueBatch(event)).toBe(true);
    const { triggers, unreadable } = parseOnboardQueueBatch(event);
    expect(unreadable).toEqual([]);
    expect(triggers).toEqual([
      {
        messageId: batch.messages[0]?.messageId,
        receiveCount: 1,
        delivery: expect.objectContaining({ queueArn: settings.queueArn }),
        trigger: expect.objectContaining({ kind: 'state-change', instanceId: id(1), state: 'running' }),
      },
    ]);
  });

  it('deletes the processed messages; the ones batchItemFailures names are received again after the visibility timeout', () => {
    const queue = new OnboardQueue(settings);
    for (const n of [1, 2]) sendAt(queue, n, 0);
    const { batch } = queue.take(10_000);
    if (!batch) throw new Error('no batch');
    const failedId = batch.messages[1]?.messageId as string;
    const settled = queue.settle(batch, { response: { batchItemFailures: [{ itemIdentifier: failedId }] } });
    expect(settled).toMatchObject({ deleted: 1, wholeBatch: undefined });
    expect(settled.returned.map((message) => message.messageId)).toEqual([failedId]);
    // Received at 0 (the batch opened then): hidden until 360 s later.
    expect(queue.nextDue()).toBe(360_000);
    expect(queue.take(359_999).batch).toBeUndefined();
    queue.take(360_000);
    const again = queue.take(370_000).batch;
    expect(again?.messages.map((message) => [message.messageId, message.receiveCount])).toEqual([[failedId, 2]]);
    expect(queue.eventOf(again as NonNullable<typeof again>).Records[0]?.attributes.ApproximateReceiveCount).toBe('2');
  });

  it('returns every message of a batch whose invocation failed, or whose response names a message not in it', () => {
    const queue = new OnboardQueue(settings);
    for (const n of [1, 2]) sendAt(queue, n, 0);
    const thrown = queue.take(10_000).batch;
    if (!thrown) throw new Error('no batch');
    expect(queue.settle(thrown, { error: 'TypeError: boom' })).toMatchObject({ deleted: 0, wholeBatch: 'the invocation failed: TypeError: boom' });
    const again = queue.take(370_000).batch;
    if (!again) throw new Error('no batch');
    expect(queue.settle(again, { response: { batchItemFailures: [{ itemIdentifier: 'not-in-the-batch' }] } })).toMatchObject({ deleted: 0, wholeBatch: 'itemIdentifier not-in-the-batch is no message of the batch' });
    expect(queue.waiting()).toHaveLength(2);
  });

  it('reads a partial batch response as Lambda does: none or an empty list deletes all, a bad item fails the whole batch', () => {
    const ids = new Set(['a', 'b']);
    expect(readBatchItemFailures(undefined, ids)).toEqual({ failed: new Set(), problem: undefined });
    expect(readBatchItemFailures({ batchItemFailures: [] }, ids)).toEqual({ failed: new Set(), problem: undefined });
    expect(readBatchItemFailures({ batchItemFailures: [{ itemIdentifier: 'b' }] }, ids)).toEqual({ failed: new Set(['b']), problem: undefined });
    expect(readBatchItemFailures({ batchItemFailures: [{ itemIdentifier: '' }] }, ids).failed).toBeUndefined();
    expect(readBatchItemFailures({ batchItemFailures: 'b' }, ids).failed).toBeUndefined();
  });

  it('moves a message to the dead-letter queue when it would be received more than maxReceiveCount times', () => {
    const queue = new OnboardQueue({ ...settings, maxReceiveCount: 2 });
    sendAt(queue, 1, 0);
    for (const at of [10_000, 370_000]) {
      const batch = queue.take(at).batch;
      if (!batch) throw new Error(`no batch at ${at}`);
      queue.settle(batch, { response: { batchItemFailures: [{ itemIdentifier: batch.messages[0]?.messageId }] } });
    }
    // Received at 0 and at 360 s: hidden until 720 s, then moved instead of received a third time.
    expect(queue.take(719_999).deadLettered).toEqual([]);
    const { batch, deadLettered } = queue.take(720_000);
    expect(batch).toBeUndefined();
    expect(deadLettered).toEqual([expect.objectContaining({ instanceId: id(1), receiveCount: 2, at: 720_000 })]);
    expect(queue.waiting()).toEqual([]);
    expect(queue.nextDue()).toBeUndefined();
  });
});
