import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { stateTableClient, type Clients } from '../aws/client-factory.js';
import { awsErrorName, describeError } from '../aws/errors.js';
import type { Place } from '../aws/place.js';
import type { MemberAccessError } from '../errors.js';

/**
 * The state table's record of one member place the hub could not act in (key
 * `place:<account>:<region>`, beside the instance records). It exists so that a whole account
 * without its member stack gets ONE alert, not one per instance and retry: the first invocation
 * to record it `unreachable` sends the alert, every later one finds it already recorded.
 */
export interface PlaceAccessRecord {
  recordKey: string;
  kind: 'place-access';
  account: string;
  region: string;
  status: 'unreachable' | 'reachable';
  roleArn: string;
  lastError: string;
  since: string;
  updatedAt: string;
}

/** The key of a place's access record. */
export function placeAccessKey(place: Place): string {
  return `place:${place.account}:${place.region}`;
}

/**
 * Records that a place is unreachable. Returns true for the one invocation that changed it from
 * reachable (or unknown) to unreachable: that one alerts.
 */
export async function recordUnreachable(clients: Pick<Clients, 'hub'>, table: string, error: MemberAccessError, now: Date): Promise<boolean> {
  const item: PlaceAccessRecord = {
    recordKey: placeAccessKey(error.place),
    kind: 'place-access',
    account: error.place.account,
    region: error.place.region,
    status: 'unreachable',
    roleArn: error.roleArn,
    lastError: describeError(error.cause ?? error),
    since: now.toISOString(),
    updatedAt: now.toISOString(),
  };
  try {
    await stateTableClient(clients).send(
      new PutCommand({
        TableName: table,
        Item: item,
        ConditionExpression: 'attribute_not_exists(recordKey) OR #status <> :unreachable',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':unreachable': 'unreachable' },
      }),
    );
    return true;
  } catch (writeError) {
    if (awsErrorName(writeError) === 'ConditionalCheckFailedException') return false;
    throw writeError;
  }
}

/**
 * Records that a place is reachable again, if it was recorded unreachable (a conditional write:
 * nothing is written otherwise). Returns true when it changed, so the next failure alerts again.
 */
export async function recordReachable(clients: Pick<Clients, 'hub'>, table: string, place: Place, roleArn: string, now: Date): Promise<boolean> {
  try {
    await stateTableClient(clients).send(
      new PutCommand({
        TableName: table,
        Item: {
          recordKey: placeAccessKey(place),
          kind: 'place-access',
          account: place.account,
          region: place.region,
          status: 'reachable',
          roleArn,
          lastError: '',
          since: now.toISOString(),
          updatedAt: now.toISOString(),
        } satisfies PlaceAccessRecord,
        ConditionExpression: 'attribute_exists(recordKey) AND #status = :unreachable',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':unreachable': 'unreachable' },
      }),
    );
    return true;
  } catch (writeError) {
    if (awsErrorName(writeError) === 'ConditionalCheckFailedException') return false;
    throw writeError;
  }
}
