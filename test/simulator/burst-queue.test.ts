// The burst bench's clock and onboard queue (scripts/burst-time.ts, scripts/burst-queue.ts): what
// the bench's figures rest on. Simulated time only: nothing here waits for real.
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedTime } from '../../scripts/burst-time.js';
import { QueueError, SimulatedQueue, type BatchAnswer, type QueueSettings, type SqsRecord } from '../../scripts/burst-queue.js';

const epoch = Date.UTC(2026, 0, 5, 9, 0, 0);
const settings: QueueSettings = {
  queueArn: 'arn:aws:sqs:us-east-1:123456789012:cwap-bench-onboard',
  visibilityTimeoutSeconds: 360,
  maxReceiveCount: 5,
  batchSize: 100,
  batchWindowSeconds: 10,
  pollers: 1,
  reservedConcurrency: undefined,
};

/** A queue whose function takes `durationMs` per batch and answers with `answer(records)`. */
function queueWith(time: SimulatedTime, answer: (records: SqsRecord[]) => BatchAnswer, overrides: Partial<QueueSettings> = {}, durationMs = 1_000) {
  const batches: { at: number; records: SqsRecord[] }[] = [];
  const queue = new SimulatedQueue(time, { ...settings, ...overrides }, async (records) => {
    batches.push({ at: time.now(), records });
    await time.sleep(durationMs);
    return answer(records);
  });
  return { queue, batches };
}

const allDone = (): BatchAnswer => ({ ok: true, batchItemFailures: [] });
const returnAll = (records: SqsRecord[]): BatchAnswer => ({ ok: true, batchItemFailures: records.map((record) => ({ itemIdentifier: record.messageId })) });

describe('the simulated clock', () => {
  let time: SimulatedTime | undefined;
  afterEach(() => time?.uninstallDate());

  it('runs concurrent work in simulated-time order and makes Date read simulated time', async () => {
    const realNow = Date.now();
    time = new SimulatedTime(epoch);
    const clock = time;
    const seen: string[] = [];
    const worker = async (name: string, steps: number[]) => {
      for (const ms of steps) {
        await clock.sleep(ms);
        seen.push(`${name}@${clock.now()}`);
      }
    };
    clock.installDate();
    void worker('a', [300, 300]);
    void worker('b', [100, 400, 50]);
    const end = await clock.runUntil(() => false, 10_000);
    expect(seen).toEqual(['b@100', 'a@300', 'b@500', 'b@550', 'a@600']);
    expect(end).toBe(600);
    expect(new Date().getTime()).toBe(epoch + 600);
    expect(Date.now()).toBe(epoch + 600);
    clock.uninstallDate();
    expect(Math.abs(Date.now() - realNow)).toBeLessThan(60_000);
  });
});

describe('the onboard queue and its event source mapping', () => {
  it('closes a batch at the batching window, and at the batch size at once', async () => {
    const time = new SimulatedTime(epoch);
    const { queue, batches } = queueWith(time, allDone, { batchSize: 3 });
    for (const [n, at] of [0, 1_000, 2_000, 2_500, 20_000].entries()) queue.send(`m${n}`, `i-${n}`, '{}', at);
    await time.runUntil(() => false, 60_000);
    expect(batches.map((batch) => [batch.at, batch.records.map((record) => record.messageId)])).toEqual([
      [2_000, ['m0', 'm1', 'm2']],
      // m3 arrives while the only poller is invoking (2 to 3 s): it is read at 3 s.
      [13_000, ['m3']],
      [30_000, ['m4']],
    ]);
    expect(queue.counts.deleted).toBe(5);
    expect(queue.pending).toBe(0);
  });

  it('shares arriving messages among its pollers, each reading one batch at a time', async () => {
    const time = new SimulatedTime(epoch);
    const { queue, batches } = queueWith(time, allDone, { pollers: 2 });
    for (let n = 0; n < 4; n++) queue.send(`m${n}`, `i-${n}`, '{}', n * 1_000);
    await time.runUntil(() => false, 60_000);
    expect(batches.map((batch) => batch.records.map((record) => record.messageId))).toEqual([
      ['m0', 'm2'],
      ['m1', 'm3'],
    ]);
  });

  it('delivers a message the function returned again when its visibility timeout ends, counted from its receive', async () => {
    const time = new SimulatedTime(epoch);
    let answered = 0;
    const { queue, batches } = queueWith(time, (records) => (answered++ === 0 ? returnAll(records) : allDone()));
    queue.send('m0', 'i-0', '{"n":0}', 0);
    await time.runUntil(() => false, 3_600_000);
    expect(batches.map((batch) => batch.at)).toEqual([10_000, 370_000]);
    const [first, second] = batches.map((batch) => batch.records[0] as SqsRecord);
    expect(first?.attributes.ApproximateReceiveCount).toBe('1');
    expect(second?.attributes.ApproximateReceiveCount).toBe('2');
    expect(second?.receiptHandle).not.toBe(first?.receiptHandle);
    expect(second?.attributes.ApproximateFirstReceiveTimestamp).toBe(String(epoch + 0));
    expect(first?.eventSourceARN).toBe(settings.queueArn);
    expect(queue.counts).toMatchObject({ receives: 2, redeliveries: 1, returned: 1, deleted: 1, deadLettered: 0 });
  });

  it('fails the whole batch when the function fails, or names a message that is not in the batch', async () => {
    const time = new SimulatedTime(epoch);
    let answered = 0;
    const { queue, batches } = queueWith(time, () => {
      answered += 1;
      if (answered === 1) return { ok: false, reason: 'function error' };
      if (answered === 2) return { ok: true, batchItemFailures: [{ itemIdentifier: 'not-in-the-batch' }] };
      return allDone();
    });
    queue.send('m0', 'i-0', '{}', 0);
    queue.send('m1', 'i-1', '{}', 0);
    await time.runUntil(() => false, 3_600_000);
    expect(batches.map((batch) => batch.records.length)).toEqual([2, 2, 2]);
    expect(queue.counts).toMatchObject({ failedBatches: 2, returned: 4, deleted: 2 });
  });

  it('honours ChangeMessageVisibility with the latest receipt handle only, from the time of the call', async () => {
    const time = new SimulatedTime(epoch);
    const errors: string[] = [];
    let queueRef: SimulatedQueue | undefined;
    let answered = 0;
    const { queue, batches } = queueWith(time, (records) => {
      const record = records[0] as SqsRecord;
      if (answered++ > 0) return allDone();
      queueRef?.changeVisibility(record.receiptHandle, 30);
      for (const [handle, seconds] of [['rh-unknown', 30], [record.receiptHandle, 50_000]] as const) {
        try {
          queueRef?.changeVisibility(handle, seconds);
        } catch (error) {
          errors.push((error as QueueError).name);
        }
      }
      return returnAll(records);
    });
    queueRef = queue;
    queue.send('m0', 'i-0', '{}', 0);
    await time.runUntil(() => false, 3_600_000);
    // Received at 0 (the window closes at 10 s), changed at 11 s (after the 1 s invocation), back 30 s later.
    expect(batches.map((batch) => batch.at)).toEqual([10_000, 51_000]);
    expect(errors).toEqual(['ReceiptHandleIsInvalid', 'InvalidParameterValue']);
    expect(queue.counts.visibilityChanges).toBe(1);
    expect(() => queue.changeVisibility(batches[0]?.records[0]?.receiptHandle, 0)).toThrow(expect.objectContaining({ name: 'ReceiptHandleIsInvalid' }));
  });

  it('moves a message to the dead-letter queue after maxReceiveCount receives', async () => {
    const time = new SimulatedTime(epoch);
    const dead: string[] = [];
    const { queue, batches } = queueWith(time, returnAll);
    queue.onDeadLettered = (subject) => dead.push(`${subject}@${time.now()}`);
    queue.send('m0', 'i-0', '{}', 0);
    await time.runUntil(() => false, 24 * 3_600_000);
    expect(batches).toHaveLength(5);
    // Received at 0, 360, 720, 1,080 and 1,440 s; visible again at 1,800 s: set aside then.
    expect(dead).toEqual(['i-0@1800000']);
    expect(queue.counts).toMatchObject({ receives: 5, deadLettered: 1, deleted: 0, maxReceiveCount: 5 });
    expect(queue.pending).toBe(0);
  });

  it('keeps a closed batch waiting while the reserved concurrency is in use', async () => {
    const time = new SimulatedTime(epoch);
    const { queue, batches } = queueWith(time, allDone, { pollers: 2, reservedConcurrency: 1, batchSize: 1 }, 5_000);
    queue.send('m0', 'i-0', '{}', 0);
    queue.send('m1', 'i-1', '{}', 0);
    await time.runUntil(() => false, 60_000);
    expect(batches.map((batch) => batch.at)).toEqual([0, 5_000]);
  });
});
