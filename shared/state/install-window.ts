import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { stateTableClient, type Clients } from '../aws/client-factory.js';
import { awsErrorName } from '../aws/errors.js';
import type { Place } from '../aws/place.js';

/**
 * The state table's item of one install window of one place (key
 * `install-window:<account>:<region>:<windowEnd>`, beside the instance records): the instances
 * that small queue batches claimed over the window, whose Systems Manager steps its run does
 * together. It is a set that concurrent containers add to (UpdateItem ADD), unlike the instance
 * records, which stay versioned Puts; once its run has closed it (`closedAt`), nobody joins it.
 */
export interface InstallWindowItem {
  recordKey: string;
  kind: 'install-window';
  account: string;
  region: string;
  /** The window's end, epoch seconds. */
  windowEnd: number;
  /**
   * What joined, `<instanceId>:<attempt>`: each instance with the onboarding retry attempt its
   * window run is (the record's `ssmAttempts + 1` when it joined). The run is a retry of that
   * attempt, so the records' currency rules decide whether it still applies (decideOnboarding).
   */
  entries?: Set<string>;
  /** When the window's run closed it (ISO time). */
  closedAt?: string;
  /** The table's TTL attribute (epoch seconds): a window item is dropped a day after its end. */
  expiresAt: number;
}

/** One instance in a window: the retry attempt its window run is. */
export interface WindowEntry {
  instanceId: string;
  attempt: number;
}

/** How long a window item outlives its end: long enough to read what a window held when debugging. */
const windowRetentionSeconds = 86_400;

/** The key of a place's install window ending at `windowEnd` (epoch seconds). */
export function installWindowKey(place: Place, windowEnd: number): string {
  return `install-window:${place.account}:${place.region}:${windowEnd}`;
}

/**
 * Adds instances to a place's install window, unless its run has closed it: one UpdateItem
 * (`ADD entries`, conditioned on `attribute_not_exists(closedAt)`). Returns false when the window
 * is closed: the caller joins the next one.
 */
export async function addToInstallWindow(clients: Pick<Clients, 'hub' | 'place'>, table: string, windowEnd: number, entries: readonly WindowEntry[]): Promise<boolean> {
  const { place } = clients;
  try {
    await stateTableClient(clients).send(
      new UpdateCommand({
        TableName: table,
        Key: { recordKey: installWindowKey(place, windowEnd) },
        UpdateExpression: 'ADD #entries :entries SET #kind = :kind, #account = :account, #region = :region, #windowEnd = :windowEnd, #expiresAt = :expiresAt',
        ConditionExpression: 'attribute_not_exists(#closedAt)',
        ExpressionAttributeNames: { '#entries': 'entries', '#kind': 'kind', '#account': 'account', '#region': 'region', '#windowEnd': 'windowEnd', '#expiresAt': 'expiresAt', '#closedAt': 'closedAt' },
        ExpressionAttributeValues: {
          ':entries': new Set(entries.map((entry) => `${entry.instanceId}:${entry.attempt}`)),
          ':kind': 'install-window',
          ':account': place.account,
          ':region': place.region,
          ':windowEnd': windowEnd,
          ':expiresAt': windowEnd + windowRetentionSeconds,
        },
      }),
    );
    return true;
  } catch (error) {
    if (awsErrorName(error) === 'ConditionalCheckFailedException') return false;
    throw error;
  }
}

/**
 * Closes a place's install window (`closedAt`, kept from the first close when its run comes again)
 * and returns what it held; undefined when no instance ever joined it (no item). A join after this
 * goes to the next window.
 */
export async function closeInstallWindow(clients: Pick<Clients, 'hub' | 'place'>, table: string, windowEnd: number, now: Date): Promise<{ entries: WindowEntry[]; closedAt: string } | undefined> {
  let item: InstallWindowItem;
  try {
    const result = await stateTableClient(clients).send(
      new UpdateCommand({
        TableName: table,
        Key: { recordKey: installWindowKey(clients.place, windowEnd) },
        UpdateExpression: 'SET #closedAt = if_not_exists(#closedAt, :now)',
        ConditionExpression: 'attribute_exists(#recordKey)',
        ExpressionAttributeNames: { '#closedAt': 'closedAt', '#recordKey': 'recordKey' },
        ExpressionAttributeValues: { ':now': now.toISOString() },
        ReturnValues: 'ALL_NEW',
      }),
    );
    item = result.Attributes as InstallWindowItem;
  } catch (error) {
    if (awsErrorName(error) === 'ConditionalCheckFailedException') return undefined;
    throw error;
  }
  const entries = [...(item.entries ?? [])].flatMap((text) => {
    const at = text.lastIndexOf(':');
    const attempt = Number(text.slice(at + 1));
    return at > 0 && Number.isInteger(attempt) && attempt >= 1 ? [{ instanceId: text.slice(0, at), attempt }] : [];
  });
  return { entries, closedAt: item.closedAt ?? now.toISOString() };
}
