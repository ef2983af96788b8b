import { BatchGetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mapBounded } from '../audit/concurrency.js';
import { stateTableClient, type Clients } from '../aws/client-factory.js';
import { describeError, sleep } from '../aws/errors.js';
import type { InstanceFacts } from '../aws/instances.js';
import type { Place } from '../aws/place.js';
import { logger } from '../observability/logger.js';
import { maxRecordsPerBatchGet } from './instance-record.js';

/**
 * What EC2 said of an instance the pacing left for later before it was started, kept beside the
 * records so that its message, when it comes back, need not ask EC2 again.
 *
 * A burst's messages come back at the association pace, a few dozen a batch, and each batch's
 * DescribeInstances was most of the product's EC2 reads in a burst (0.04 of the 0.063 a launch
 * that DescribeInstances and DescribeInstanceInformation cost at 1,000 launches). The facts are
 * those of the first sight, minutes old at most: an instance that got a profile meanwhile keeps it
 * (the association then fails with IncorrectState, and the product never replaces a profile); one
 * terminated meanwhile fails its association and is read from EC2 when its message comes back
 * again (it has a record then, and facts are only used for an instance without one); one stopped
 * meanwhile is found offline by Systems Manager and read from EC2 by its next retry. An opt-out tag
 * set in those minutes counts from the next launch.
 */
interface DeferredFactsItem {
  recordKey: string;
  kind: 'deferred-facts';
  account: string;
  region: string;
  instanceId: string;
  facts: InstanceFacts;
  savedAt: string;
  /** The table's TTL (seconds). */
  expiresAt: number;
}

/** How old facts may be to stand in for DescribeInstances: a deferral lasts minutes (the association pace). */
export const deferredFactsMaxAgeMs = 15 * 60_000;

/** The key of an instance's deferred facts. */
export function deferredFactsKey(place: Place, instanceId: string): string {
  return `deferred:${place.account}:${place.region}:${instanceId}`;
}

/**
 * Keeps the facts of instances the pacing left for later, one PutItem each (8 at once). A write
 * that fails is logged and forgotten: that instance's message reads EC2 when it comes back.
 */
export async function saveDeferredFacts(clients: Clients, table: string, facts: readonly InstanceFacts[], now: Date): Promise<void> {
  await mapBounded(facts, 8, async (instance) => {
    const item: DeferredFactsItem = {
      recordKey: deferredFactsKey(clients.place, instance.instanceId),
      kind: 'deferred-facts',
      account: clients.place.account,
      region: clients.place.region,
      instanceId: instance.instanceId,
      facts: instance,
      savedAt: now.toISOString(),
      expiresAt: Math.floor(now.getTime() / 1000) + 86_400,
    };
    try {
      await stateTableClient(clients).send(new PutCommand({ TableName: table, Item: item }));
    } catch (error) {
      logger.warn('facts of a deferred instance not kept: its message reads EC2 when it comes back', { instanceId: instance.instanceId, error: describeError(error) });
    }
  });
}

/**
 * The kept facts of these instances that are younger than {@link deferredFactsMaxAgeMs}:
 * BatchGetItem, 100 keys a call. Any failure reads as "none kept" (EC2 is asked instead).
 */
export async function readDeferredFacts(clients: Clients, table: string, instanceIds: readonly string[], now: Date): Promise<Map<string, InstanceFacts>> {
  const found = new Map<string, InstanceFacts>();
  try {
    for (let from = 0; from < instanceIds.length; from += maxRecordsPerBatchGet) {
      let keys: Record<string, unknown>[] = instanceIds.slice(from, from + maxRecordsPerBatchGet).map((instanceId) => ({ recordKey: deferredFactsKey(clients.place, instanceId) }));
      for (let attempt = 0; keys.length > 0 && attempt <= 3; attempt++) {
        if (attempt > 0) await sleep(100 * 2 ** attempt);
        const result = await stateTableClient(clients).send(new BatchGetCommand({ RequestItems: { [table]: { Keys: keys } } }));
        for (const item of (result.Responses?.[table] ?? []) as DeferredFactsItem[]) {
          if (now.getTime() - Date.parse(item.savedAt) <= deferredFactsMaxAgeMs) found.set(item.instanceId, item.facts);
        }
        keys = (result.UnprocessedKeys?.[table]?.Keys ?? []) as Record<string, unknown>[];
      }
    }
  } catch (error) {
    logger.warn('facts of deferred instances not read: EC2 is asked instead', { instances: instanceIds.length, error: describeError(error) });
    return new Map();
  }
  return found;
}
