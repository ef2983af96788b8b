// An in-memory stand-in for the state table behind the document client's Get, BatchGet and Put,
// shared by the onboarding tests (test/onboarding/onboard-harness.ts) and the burst bench
// (scripts/burst-bench.ts). It keeps the two DynamoDB rules the product relies on: a conditional
// Put whose condition does not hold fails with ConditionalCheckFailedException and writes
// nothing, and an item is stored as the document client serializes it (undefined values removed).
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { BatchGetCommandInput, GetCommandInput, PutCommandInput } from '@aws-sdk/lib-dynamodb';

/** An item of a table keyed by `recordKey`, as the product's state records are. */
export interface KeyedItem {
  recordKey: string;
}

/** DynamoDB's limit on the keys of one BatchGetItem call. */
const maxKeysPerBatchGet = 100;

/**
 * The state table's items by `recordKey`; every read hands out a copy. The conditions understood
 * are the product's: `attribute_not_exists(recordKey)` and `version = :read` (any other holds).
 *
 * @example
 * const table = new FakeStateTable<OnboardingRecord>();
 * dynamodb.on(PutCommand).callsFake((input) => table.write(input));
 */
export class FakeStateTable<T extends KeyedItem> {
  protected readonly items = new Map<string, T>();
  /** Called after each write that took place, with the item as stored and the one it replaced. */
  onWrite: ((item: T, previous: T | undefined) => void) | undefined;

  /** The item of a record key, or undefined. */
  item(recordKey: string): T | undefined {
    const item = this.items.get(recordKey);
    return item && structuredClone(item);
  }

  /** Every item, as stored (for reports; not copies). */
  all(): IterableIterator<T> {
    return this.items.values();
  }

  /** GetItem. */
  read(input: GetCommandInput): { Item?: T } {
    const item = this.item(String(input.Key?.recordKey));
    return item ? { Item: item } : {};
  }

  /** BatchGetItem: every key found, nothing left unprocessed. */
  readMany(input: BatchGetCommandInput): { Responses: Record<string, T[]> } {
    const responses: Record<string, T[]> = {};
    for (const [tableName, request] of Object.entries(input.RequestItems ?? {})) {
      if ((request.Keys?.length ?? 0) > maxKeysPerBatchGet) throw Object.assign(new Error('Too many items requested for the BatchGetItem call'), { name: 'ValidationException' });
      responses[tableName] = (request.Keys ?? []).flatMap((key) => {
        const item = this.item(String(key.recordKey));
        return item ? [item] : [];
      });
    }
    return { Responses: responses };
  }

  /** PutItem, with the product's conditions. */
  write(input: PutCommandInput): Record<string, never> {
    // Serialized as the document client would (removeUndefinedValues).
    const item = JSON.parse(JSON.stringify(input.Item)) as T;
    const current = this.items.get(item.recordKey);
    const holds =
      input.ConditionExpression === 'attribute_not_exists(recordKey)'
        ? current === undefined
        : input.ConditionExpression === 'version = :read'
          ? (current as { version?: unknown } | undefined)?.version === input.ExpressionAttributeValues?.[':read']
          : true;
    if (!holds) throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    this.items.set(item.recordKey, item);
    this.onWrite?.(item, current);
    return {};
  }
}
