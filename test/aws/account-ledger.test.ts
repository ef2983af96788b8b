import { beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoDBDocumentClient, GetCommand, PutCommand, type GetCommandInput, type PutCommandInput } from '@aws-sdk/lib-dynamodb';
import { AccountLedger, ledgerKey, reservationGraceMs, type LedgerRate } from '../../shared/pacing/account-ledger.js';
import { FakeStateTable, type KeyedItem } from '../harness/fake-state-table.js';
import { hubPlace, testClients } from '../harness/test-clients.js';

const dynamodb = mockClient(DynamoDBDocumentClient);
const table = 'cwap-test-records';
const bucket = 'ec2:associate-iam-instance-profile';
// Half of AssociateIamInstanceProfile's 100 tokens at 5 a second: 2.5 a second after a burst of 50.
const share: LedgerRate = { perSecond: 2.5, burst: 50 };
const interval = 400;

let items: FakeStateTable<KeyedItem & { tat?: number; reserved?: number; version?: number }>;
let now: number;
const ledger = (rate: LedgerRate = share) => new AccountLedger(testClients(), table, hubPlace, () => rate, () => now);
const stored = () => items.item(ledgerKey(hubPlace, bucket));

beforeEach(() => {
  dynamodb.reset();
  items = new FakeStateTable();
  now = 1_000_000;
  dynamodb.on(GetCommand).callsFake((input: GetCommandInput) => items.read(input));
  dynamodb.on(PutCommand).callsFake((input: PutCommandInput) => items.write(input));
});

describe('the account ledger', () => {
  it('lets the burst go at once after a quiet spell, then one call per interval of the share', async () => {
    const paced = ledger();
    const times: number[] = [];
    for (let k = 0; k < 53; k++) {
      const answer = await paced.take(bucket, { maxWaitMs: 60_000 });
      if (!answer.go) throw new Error('refused within a minute');
      times.push(...answer.at);
    }
    expect(times.slice(0, 50)).toEqual(Array(50).fill(now));
    expect(times.slice(50)).toEqual([now + interval, now + 2 * interval, now + 3 * interval]);
    expect(stored()).toMatchObject({ recordKey: `pacing:${hubPlace.account}:${hubPlace.region}:${bucket}`, kind: 'pacing', tat: now + 53 * interval, reserved: 0, version: 53 });
  });

  it('spaces the calls of one take by the interval, and refuses, writing nothing, when the first would wait past maxWaitMs', async () => {
    const paced = ledger({ perSecond: 1.5, burst: 1 });
    const four = await paced.take(bucket, { count: 4, maxWaitMs: 0 });
    expect(four.go && four.at.map(Math.round)).toEqual([0, 1, 2, 3].map((k) => Math.round(now + (k * 1000) / 1.5)));
    const before = stored();
    // The next call is due 2,667 ms from now.
    const refused = await paced.take(bucket, { maxWaitMs: 2_000 });
    expect(refused.go === false && Math.round(refused.firstAt)).toBe(Math.round(now + (4 * 1000) / 1.5));
    expect(stored()).toEqual(before);
    const fifth = await paced.take(bucket, { maxWaitMs: 3_000 });
    expect(fifth.go && fifth.at.map(Math.round)).toEqual([Math.round(now + (4 * 1000) / 1.5)]);
  });

  it('reserves places for work left for later: new work waits behind them, returning work takes the calls, in order, never faster than the share', async () => {
    const paced = ledger({ perSecond: 2.5, burst: 1 });
    expect(await paced.take(bucket, { maxWaitMs: 0 })).toEqual({ go: true, at: [now] });
    // Three deferred instances: their turns at 400, 800 and 1,200 ms.
    expect(await paced.reserve(bucket, 3)).toEqual([now + 400, now + 800, now + 1200]);
    expect(stored()).toMatchObject({ tat: now + 400, reserved: 3, reservedUntil: now + 1200 });
    // A new launch waits behind them, and its own place would be after theirs.
    expect(await paced.take(bucket, { maxWaitMs: 60_000 })).toEqual({ go: false, firstAt: now + 1600 });
    expect(await paced.reserve(bucket, 1)).toEqual([now + 1600]);
    // The first deferred one comes back at its time and takes its call.
    now += 400;
    expect(await paced.take(bucket, { returning: true, maxWaitMs: 0 })).toEqual({ go: true, at: [now] });
    expect(stored()).toMatchObject({ tat: now + 400, reserved: 3 });
    // Two more come back at once: the calls they take are still one interval apart.
    expect(await paced.take(bucket, { returning: true, maxWaitMs: 100 })).toEqual({ go: false, firstAt: now + 400 });
    expect(await paced.take(bucket, { returning: true, count: 2, maxWaitMs: 400 })).toEqual({ go: true, at: [now + 400, now + 800] });
    expect(stored()).toMatchObject({ tat: now + 1200, reserved: 1 });
  });

  it('lets the reserved places lapse a while after the last was due: new work takes its calls again', async () => {
    const paced = ledger({ perSecond: 2.5, burst: 1 });
    expect(await paced.reserve(bucket, 2)).toEqual([now, now + interval]);
    now += reservationGraceMs + interval + 1;
    expect(await paced.take(bucket, { maxWaitMs: 0 })).toEqual({ go: true, at: [now] });
    expect(stored()).toMatchObject({ tat: now + interval, reserved: 0 });
  });

  it('backs off for every container after a throttle, the reserved places moving with it', async () => {
    const paced = ledger({ perSecond: 2.5, burst: 1 });
    await paced.reserve(bucket, 1);
    await paced.backOff(bucket, 10_000);
    expect(stored()).toMatchObject({ tat: now + 10_000, reserved: 1, reservedUntil: now + 10_000 });
    expect(await paced.take(bucket, { returning: true, maxWaitMs: 60_000 })).toEqual({ go: true, at: [now + 10_000] });
  });

  it('two containers taking at once never go faster than the share together: a lost write reads again', async () => {
    const rate: LedgerRate = { perSecond: 2.5, burst: 5 };
    const containers = [ledger(rate), ledger(rate)];
    // Each read answers before any write of the same moment lands: every other write loses the race.
    let conflicts = 0;
    dynamodb.on(PutCommand).callsFake(async (input: PutCommandInput) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      try {
        return items.write(input);
      } catch (error) {
        conflicts++;
        throw error;
      }
    });
    const answers = await Promise.all(Array.from({ length: 40 }, (_, k) => (containers[k % 2] as AccountLedger).take(bucket, { maxWaitMs: 60_000 })));
    const times = answers.flatMap((answer) => (answer.go ? answer.at : [])).sort((a, b) => a - b);
    expect(times).toHaveLength(40);
    expect(conflicts).toBeGreaterThan(0);
    // GCRA: the k-th call (from 0) is not before (k - burst + 1) intervals.
    times.forEach((at, k) => expect(at, `call ${k}`).toBeGreaterThanOrEqual(now + Math.max(0, k - rate.burst + 1) * interval));
    expect(stored()).toMatchObject({ tat: now + 40 * interval, version: 40 });
  });

  it('names the bucket when it cannot win a write', async () => {
    dynamodb.on(PutCommand).rejects(Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' }));
    await expect(ledger().take(bucket, { maxWaitMs: 0 })).rejects.toThrow(`pacing ledger pacing:${hubPlace.account}:${hubPlace.region}:${bucket}: 20 writes in a row lost to other containers`);
    await expect(new AccountLedger(testClients(), table, hubPlace, () => ({ perSecond: 0, burst: 1 })).take(bucket, { maxWaitMs: 0 })).rejects.toThrow(/rate must be above 0/);
  });
});
