import { recordKeyOf } from '../../shared/state/instance-record.js';
import type { Place } from '../../shared/aws/place.js';
import { hubPlace } from '../harness/test-clients.js';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { installWindowKey } from '../../shared/state/install-window.js';
import type { OnboardingRecord } from '../../shared/state/instance-record.js';
import { localClientConfig } from '../harness/client-config.js';

/** One message published on an SNS topic, as moto keeps it. */
export interface PublishedMessage {
  topicArn: string;
  messageId: string;
  subject: string;
  /**
   * What an e-mail subscriber reads: the `default` text of a message published with
   * `MessageStructure: 'json'`, else the message as published (CloudWatch alarm notifications).
   */
  message: string;
  /** The per-protocol messages (`default`, `email`, `sqs`, ...) of a `MessageStructure: 'json'` publish; undefined for a plain one. */
  protocols: Record<string, string> | undefined;
  attributes: Record<string, string>;
}

type MotoNotification = [string, string, string | null, Record<string, { Type?: string; Value?: string }> | null, ...unknown[]];

/**
 * The protocol map of a structured publish: moto keeps the Message as published, so one with a JSON
 * object whose every value is a string and which has `default` was published with
 * MessageStructure json (the Publish API requires `default`).
 */
function protocolsOf(message: string): Record<string, string> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const entries = Object.entries(parsed);
  if (!entries.some(([key]) => key === 'default') || !entries.every(([, value]) => typeof value === 'string')) return undefined;
  return Object.fromEntries(entries) as Record<string, string>;
}

/** Every message published on SNS topics, in order, read back from moto (`GET /moto-api/data.json`). */
export async function publishedMessages(motoUrl: string, topicArn?: string): Promise<PublishedMessage[]> {
  const response = await fetch(`${motoUrl}/moto-api/data.json`);
  if (!response.ok) throw new Error(`moto-api/data.json answered ${response.status}`);
  const data = (await response.json()) as { sns?: { Topic?: { arn: string; sent_notifications?: MotoNotification[] }[] } };
  const messages: PublishedMessage[] = [];
  for (const topic of data.sns?.Topic ?? []) {
    if (topicArn && topic.arn !== topicArn) continue;
    for (const [messageId, message, subject, attributes] of topic.sent_notifications ?? []) {
      const protocols = protocolsOf(message);
      messages.push({
        topicArn: topic.arn,
        messageId,
        message: protocols?.default ?? message,
        protocols,
        subject: subject ?? '',
        attributes: Object.fromEntries(Object.entries(attributes ?? {}).map(([name, value]) => [name, value?.Value ?? ''])),
      });
    }
  }
  return messages;
}

/** The JSON payload a protocol's subscribers got (`sqs` unless named), parsed; throws for a plain message. */
export function payloadOf(message: PublishedMessage, protocol = 'sqs'): unknown {
  const text = message.protocols?.[protocol];
  if (text === undefined) throw new Error(`message ${message.messageId} has no ${protocol} message: it was not published with MessageStructure json`);
  return JSON.parse(text);
}

/** Reads the product's state table straight from moto (not through the fault-injecting proxy). */
export class StateTableReader {
  readonly #client: DynamoDBDocumentClient;

  constructor(
    motoUrl: string,
    readonly table: string,
  ) {
    this.#client = DynamoDBDocumentClient.from(new DynamoDBClient(localClientConfig(motoUrl)));
  }

  async record(instanceId: string, place: Place = hubPlace): Promise<OnboardingRecord | undefined> {
    const result = await this.#client.send(new GetCommand({ TableName: this.table, Key: { recordKey: recordKeyOf(place, instanceId) }, ConsistentRead: true }));
    return result.Item as OnboardingRecord | undefined;
  }

  /** The records of several instances, by record key (`recordKeyOf`), 100 keys a BatchGetItem; missing ones are absent. */
  async records(instances: readonly { instanceId: string; place: Place }[]): Promise<Map<string, OnboardingRecord>> {
    const found = new Map<string, OnboardingRecord>();
    const keys = [...new Set(instances.map(({ instanceId, place }) => recordKeyOf(place, instanceId)))];
    for (let start = 0; start < keys.length; start += 100) {
      let pending: Record<string, unknown>[] | undefined = keys.slice(start, start + 100).map((recordKey) => ({ recordKey }));
      while (pending && pending.length > 0) {
        const page = await this.#client.send(new BatchGetCommand({ RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true } } }));
        for (const item of (page.Responses?.[this.table] ?? []) as OnboardingRecord[]) found.set(item.recordKey, item);
        pending = page.UnprocessedKeys?.[this.table]?.Keys as Record<string, unknown>[] | undefined;
      }
    }
    return found;
  }

  /**
   * The instances that joined a place's install window (its item's `<instanceId>:<attempt>`
   * entries, shared/state/install-window.ts), so that the window's run is about them; none when no
   * instance joined it.
   */
  async windowInstances(windowEnd: number, place: Place = hubPlace): Promise<string[]> {
    const result = await this.#client.send(new GetCommand({ TableName: this.table, Key: { recordKey: installWindowKey(place, windowEnd) }, ConsistentRead: true }));
    const entries = (result.Item?.entries as Set<string> | undefined) ?? new Set<string>();
    return [...new Set([...entries].map((entry) => entry.slice(0, entry.lastIndexOf(':'))))];
  }

  async all(): Promise<OnboardingRecord[]> {
    const records: OnboardingRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.#client.send(new ScanCommand({ TableName: this.table, ExclusiveStartKey: start }));
      records.push(...((page.Items ?? []) as OnboardingRecord[]));
      start = page.LastEvaluatedKey;
    } while (start);
    return records;
  }

  destroy(): void {
    this.#client.destroy();
  }
}
