// An in-memory stand-in for the state table behind the document client's Get, BatchGet, Put and
// Update (the install windows' set, shared/state/install-window.ts),
// shared by the onboarding tests (test/onboarding/onboard-harness.ts) and the burst bench
// (scripts/burst-bench.ts). It keeps the two DynamoDB rules the product relies on: a conditional
// Put whose condition does not hold fails with ConditionalCheckFailedException and writes
// nothing, and an item is stored as the document client serializes it (undefined values removed).
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { BatchGetCommandInput, GetCommandInput, PutCommandInput, UpdateCommandInput } from '@aws-sdk/lib-dynamodb';

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

  /**
   * UpdateItem with the expressions the product writes and nothing else (anything else throws, so a
   * new expression gets its fake deliberately): `ADD #a :set` (a string set, created or extended)
   * and `SET #a = :v, #b = if_not_exists(#b, :w)`, conditioned on `attribute_not_exists(#a)` or
   * `attribute_exists(#a)`; ReturnValues ALL_NEW or none. A condition that does not hold fails with
   * ConditionalCheckFailedException and writes nothing; an item that does not exist is created.
   */
  update(input: UpdateCommandInput): { Attributes?: T } {
    const names = input.ExpressionAttributeNames ?? {};
    const values = input.ExpressionAttributeValues ?? {};
    const nameOf = (token: string) => {
      const name = token.startsWith('#') ? names[token] : token;
      if (name === undefined) throw Object.assign(new Error(`no ExpressionAttributeNames entry for ${token}`), { name: 'ValidationException' });
      return name;
    };
    const valueOf = (token: string) => {
      if (!(token in values)) throw Object.assign(new Error(`no ExpressionAttributeValues entry for ${token}`), { name: 'ValidationException' });
      return values[token] as unknown;
    };
    const recordKey = String(input.Key?.recordKey);
    const current = this.items.get(recordKey) as Record<string, unknown> | undefined;
    const condition = input.ConditionExpression === undefined ? undefined : /^attribute_(not_exists|exists)\((#?\w+)\)$/.exec(input.ConditionExpression);
    if (input.ConditionExpression !== undefined && !condition) throw new Error(`the fake state table does not understand the condition ${input.ConditionExpression}`);
    if (condition) {
      const present = current !== undefined && current[nameOf(condition[2] as string)] !== undefined;
      if ((condition[1] === 'exists') !== present) throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    }
    const next: Record<string, unknown> = current ? structuredClone(current) : { recordKey };
    const clauses = /^(?:ADD (#\w+) (:\w+))?\s*(?:SET (.+))?$/.exec((input.UpdateExpression ?? '').trim());
    if (!clauses || (!clauses[1] && !clauses[3])) throw new Error(`the fake state table does not understand the update ${input.UpdateExpression}`);
    if (clauses[1]) {
      const added = valueOf(clauses[2] as string);
      if (!(added instanceof Set)) throw Object.assign(new Error('ADD takes a set here'), { name: 'ValidationException' });
      const name = nameOf(clauses[1]);
      next[name] = new Set([...((next[name] as Set<unknown> | undefined) ?? []), ...added]);
    }
    for (const assignment of clauses[3] ? clauses[3].split(/,(?![^(]*\))/).map((part) => part.trim()) : []) {
      const plain = /^(#\w+) = (:\w+)$/.exec(assignment);
      const keep = /^(#\w+) = if_not_exists\((#\w+), (:\w+)\)$/.exec(assignment);
      if (plain) next[nameOf(plain[1] as string)] = valueOf(plain[2] as string);
      else if (keep && keep[1] === keep[2]) next[nameOf(keep[1] as string)] ??= valueOf(keep[3] as string);
      else throw new Error(`the fake state table does not understand the assignment ${assignment}`);
    }
    // Not told to onWrite: the items updated in place are the install windows, no instance records.
    this.items.set(recordKey, next as unknown as T);
    return input.ReturnValues === 'ALL_NEW' ? { Attributes: structuredClone(next) as unknown as T } : {};
  }
}
