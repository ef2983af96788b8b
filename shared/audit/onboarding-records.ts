import { recordKeyOf } from '../state/instance-record.js';
import { BatchGetCommand } from '@aws-sdk/lib-dynamodb';
import type { Clients } from '../aws/client-factory.js';
import { stateTableClient } from '../aws/client-factory.js';
import { sleep } from '../aws/errors.js';
import type { OnboardingRecord } from '../state/instance-record.js';
import { chunksOf, mapBounded } from './concurrency.js';

/** BatchGetItem reads at most 100 keys a call. */
export const maxKeysPerBatchGet = 100;

/** The fields of the state record an audit reports; the history is not read. */
export type OnboardingSnapshot = Pick<
  OnboardingRecord,
  'instanceId' | 'status' | 'launchTime' | 'updatedAt' | 'reason' | 'lastError' | 'profilePath' | 'roleName' | 'missingPolicies' | 'commandId' | 'commandSentAt'
>;

const projected = ['instanceId', 'status', 'launchTime', 'updatedAt', 'reason', 'lastError', 'profilePath', 'roleName', 'missingPolicies', 'commandId', 'commandSentAt'];

/** A batch of records that could not be read; its instances are reported as unknown. */
export interface RecordReadFailure {
  instanceIds: string[];
  error: unknown;
}

/**
 * Reads the product's records of many instances: BatchGetItem, 100 keys a call, at most
 * `concurrency` calls at a time, only the fields the audit shows. Keys DynamoDB leaves
 * unprocessed (throttling) are asked again with backoff, a few times.
 *
 * @example
 * const { records } = await readOnboardingSnapshots('cwap-dev-state', ['i-0abc'], 8);
 */
export async function readOnboardingSnapshots(
  clients: Clients,
  table: string,
  instanceIds: string[],
  concurrency: number,
): Promise<{ records: Map<string, OnboardingSnapshot>; failures: RecordReadFailure[] }> {
  const records = new Map<string, OnboardingSnapshot>();
  const failures: RecordReadFailure[] = [];
  await mapBounded(chunksOf(instanceIds, maxKeysPerBatchGet), concurrency, async (chunk) => {
    let keys: Record<string, unknown>[] = chunk.map((instanceId) => ({ recordKey: recordKeyOf(clients.place, instanceId) }));
    try {
      for (let attempt = 0; keys.length; attempt++) {
        if (attempt > 0) {
          if (attempt > 5) throw new Error(`DynamoDB left ${keys.length} keys unprocessed after 5 retries`);
          await sleep(100 * 2 ** attempt);
        }
        const result = await stateTableClient(clients).send(
          new BatchGetCommand({
            RequestItems: {
              [table]: {
                Keys: keys,
                ProjectionExpression: projected.map((_, index) => `#f${index}`).join(', '),
                ExpressionAttributeNames: Object.fromEntries(projected.map((name, index) => [`#f${index}`, name])),
              },
            },
          }),
        );
        for (const item of result.Responses?.[table] ?? []) {
          const record = item as OnboardingSnapshot;
          records.set(record.instanceId, record);
        }
        keys = (result.UnprocessedKeys?.[table]?.Keys ?? []) as Record<string, unknown>[];
      }
    } catch (error) {
      failures.push({ instanceIds: chunk, error });
    }
  });
  return { records, failures };
}
