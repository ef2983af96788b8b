import { PublishCommand } from '@aws-sdk/client-sns';
import type { Clients } from '../aws/client-factory.js';
import { SNSClient } from '@aws-sdk/client-sns';
import {
  accountOf,
  payloadEvidence,
  payloadSchemaVersion,
  topicAttributes,
  type AlertPayload,
  type MemberUnreachablePayload,
  type PayloadEnvelope,
  type PayloadInstance,
  type RecoveryPayload,
  type TopicAttributes,
  type TopicPayload,
} from './alert-payload.js';
import type { MemberAccessError } from '../errors.js';
import { diagnosisCodeOf, type Diagnosis } from './check-diagnosis.js';
import { explain } from './check-explanation.js';
import type { OnboardingRecord } from '../state/instance-record.js';
import type { Settings } from '../config/settings.js';

/** One message for the product's SNS topic: text for people, a JSON payload for machines. */
export interface TopicMessage<P extends TopicPayload = TopicPayload> {
  /** SNS subjects: printable ASCII, one line, fewer than 100 characters. */
  subject: string;
  /** What e-mail (and every protocol without a key of its own) receives. */
  body: string;
  /** What http, https, sqs, lambda and firehose subscriptions receive, as JSON. */
  payload: P;
  /** String message attributes subscribers filter on, derived from the payload ({@link topicAttributes}). */
  attributes: TopicAttributes;
}

/** Builds a message, its attributes taken from its payload. */
export function topicMessage<P extends TopicPayload>(subject: string, body: string, payload: P): TopicMessage<P> {
  return { subject, body, payload, attributes: topicAttributes(payload) };
}

/** The settings every payload's envelope names. */
export type EnvelopeSettings = Pick<Settings, 'region' | 'alertTopicArn' | 'resourcePrefix'>;

/** Where a message's instance lives, and the account's name when known. */
export interface MessagePlace {
  account: string;
  region: string;
  accountName?: string | undefined;
}

/** The envelope fields of a payload published now by this stack. */
export function envelope<E extends PayloadEnvelope['event'], S extends PayloadEnvelope['severity']>(
  event: E,
  severity: S,
  settings: EnvelopeSettings,
  now: Date,
  place?: MessagePlace,
): PayloadEnvelope & { event: E; severity: S } {
  return {
    schemaVersion: payloadSchemaVersion,
    event,
    severity,
    time: now.toISOString(),
    account: place?.account ?? accountOf(settings.alertTopicArn),
    region: place?.region ?? settings.region,
    ...(place ? { accountName: place.accountName ?? null } : {}),
    stack: settings.resourcePrefix,
  };
}

/** The place of a record (records before the organization release lack it: the stack's own). */
function placeOfRecord(record: Pick<OnboardingRecord, 'account' | 'region'>, settings: EnvelopeSettings, accountName: string | undefined): MessagePlace {
  return { account: record.account ?? accountOf(settings.alertTopicArn), region: record.region ?? settings.region, accountName };
}

/** Whether a place is the stack's own account and region. */
function isStackPlace(place: MessagePlace, settings: EnvelopeSettings): boolean {
  return place.account === accountOf(settings.alertTopicArn) && place.region === settings.region;
}

/** `account 111111111111 (payments-prod), eu-west-1`: where an instance lives, for bodies. */
export function placeLine(place: MessagePlace): string {
  return `account ${place.account}${place.accountName ? ` (${place.accountName})` : ''}, ${place.region}`;
}

/**
 * The subject of a message about one instance: `[cw-agent-autopilot] <label>: <what>`, with the
 * account and region first outside the stack's own place (`[cw-agent-autopilot] 111111111111/
 * eu-west-1 web-1 (i-...): ...`); there, when that is too long for SNS, the Name tag goes first (the
 * body and payload keep it). Then the end is cut.
 */
function instanceSubject(record: OnboardingRecord, what: string, place: MessagePlace, settings: EnvelopeSettings): string {
  const where = isStackPlace(place, settings) ? '' : `${place.account}/${place.region} `;
  const full = `[cw-agent-autopilot] ${where}${subjectLabel(record)}: ${what}`;
  return snsSubject(!where || full.length <= subjectLimit ? full : `[cw-agent-autopilot] ${where}${record.instanceId}: ${what}`);
}

/** The Publish API reference: a subject is "less than 100 characters long". */
const subjectLimit = 99;

/** A subject SNS accepts: printable ASCII only, one line, fewer than 100 characters. */
export function snsSubject(text: string): string {
  const ascii = text.replace(/\s+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
  return ascii.length <= subjectLimit ? ascii : `${ascii.slice(0, subjectLimit - 3)}...`;
}

/** "web-1 (i-0abc...)", or the id alone when the instance has no Name tag: the name as written, for bodies. */
export function instanceLabel(record: Pick<OnboardingRecord, 'instanceId' | 'name'>): string {
  return record.name ? `${record.name} (${record.instanceId})` : record.instanceId;
}

/**
 * The instance as a subject names it: "web-1 (i-0abc...)" when the Name tag is printable ASCII after
 * trimming, else the id alone. SNS subjects are ASCII only, and a name such as "웹서버-1" would
 * become question marks there; the body and the payload carry it as written.
 */
export function subjectLabel(record: Pick<OnboardingRecord, 'instanceId' | 'name'>): string {
  const name = record.name?.trim();
  return name && /^[\x20-\x7e]+$/.test(name) ? `${name} (${record.instanceId})` : record.instanceId;
}

/** What the product did for this launch, in order, from the record. */
export function whatWasTried(record: OnboardingRecord, checks: number): string[] {
  const tried: string[] = [];
  if (record.profilePath) tried.push(`instance profile: ${record.profilePath}${record.profileArn ? ` (${record.profileArn})` : ''}`);
  if (record.ssmAttempts > 0) tried.push(`waited for Systems Manager: ${record.ssmAttempts} attempt(s)`);
  if (record.commandId) {
    tried.push(
      `install command ${record.commandId} sent${record.commandSentAt ? ` at ${record.commandSentAt}` : ''}${
        record.reinstalls ? ` (install command re-sent ${record.reinstalls} time(s))` : ''
      }`,
    );
  }
  tried.push(`checked the metrics ${checks} time(s)`);
  return tried;
}

function payloadInstance(record: OnboardingRecord): PayloadInstance {
  return { id: record.instanceId, name: record.name ?? null, os: record.os ?? null, launchTime: record.launchTime ?? null };
}

/**
 * Renders the alert for an instance whose metrics are missing: the subject names the instance and
 * the diagnosis; the body says what happened, what was tried, the evidence and the next step; the
 * payload says the same for machines.
 *
 * @example
 * const message = renderAlert({ record, diagnosis, checks: 3, scheduleNames: [], settings, now });
 * await publish(message, settings);
 */
export function renderAlert(input: {
  record: OnboardingRecord;
  diagnosis: Diagnosis;
  checks: number;
  /** The schedule that ran this check, if a schedule did. */
  scheduleNames: string[];
  settings: EnvelopeSettings;
  now: Date;
  /** The account's name in Organizations, when known. */
  accountName?: string | undefined;
}): TopicMessage<AlertPayload> {
  const { record, diagnosis, checks, settings } = input;
  const label = instanceLabel(record);
  const place = placeOfRecord(record, settings, input.accountName);
  const region = place.region;
  const explanation = explain(diagnosis);
  const consoleUrl = `https://${region}.console.aws.amazon.com/ec2/home?region=${region}#InstanceDetails:instanceId=${record.instanceId}`;
  const tried = whatWasTried(record, checks);
  const body = [
    `CloudWatch agent metrics are missing for ${label}.`,
    '',
    `Diagnosis: ${diagnosis.code}`,
    explanation.summary,
    '',
    `Instance: ${label}, ${record.os ?? 'unknown OS'}, launched ${record.launchTime ?? 'at an unknown time'}`,
    `Where: ${placeLine(place)}`,
    `Console: ${consoleUrl}${isStackPlace(place, settings) ? '' : ` (signed in to account ${place.account})`}`,
    '',
    'What was tried:',
    ...tried.map((line) => `- ${line}`),
    '',
    'Evidence:',
    ...explanation.evidence.map((line) => (line.startsWith('  |') ? `  ${line}` : `- ${line}`)),
    '',
    'Next step:',
    explanation.nextStep,
    '',
    `This is the only alert for this launch of ${record.instanceId}; a recovery message follows if its metrics arrive.`,
  ].join('\n');
  return topicMessage(instanceSubject(record, `metrics missing - ${diagnosis.code}`, place, settings), body, {
    ...envelope('alert', 'critical', settings, input.now, place),
    instance: payloadInstance(record),
    diagnosis: diagnosis.code,
    retryable: diagnosis.retryable,
    summary: explanation.summary,
    evidence: diagnosis.evidence.map(payloadEvidence),
    nextStep: explanation.nextStep,
    whatWasTried: tried,
    checks,
    commandId: record.commandId ?? null,
    scheduleNames: input.scheduleNames,
    consoleUrl,
  });
}

/** Renders the one recovery message for an instance that alerted and now publishes its metrics. */
export function renderRecovery(input: {
  record: OnboardingRecord;
  firstDatapointAt: string | undefined;
  alarmNames: string[];
  /** The schedule that ran this check, if a schedule did. */
  scheduleNames: string[];
  settings: EnvelopeSettings;
  now: Date;
  /** The account's name in Organizations, when known. */
  accountName?: string | undefined;
}): TopicMessage<RecoveryPayload> {
  const { record } = input;
  const label = instanceLabel(record);
  const place = placeOfRecord(record, input.settings, input.accountName);
  const arrive = `First datapoint seen: ${input.firstDatapointAt ?? '?'}.`;
  const alarms = input.alarmNames.length ? `Alarms now watch it: ${input.alarmNames.join(', ')}.` : 'No alarms were created.';
  const summary = `CloudWatch agent metrics now arrive for ${label}.`;
  const body = [
    summary,
    '',
    `Where: ${placeLine(place)}`,
    `It was alerted at ${record.alertedAt ?? '?'} with diagnosis ${record.alertedDiagnosis ?? '?'}.`,
    arrive,
    alarms,
    '',
    'Nothing to do.',
  ].join('\n');
  return topicMessage(instanceSubject(record, 'recovered, metrics arrive', place, input.settings), body, {
    ...envelope('recovery', 'info', input.settings, input.now, place),
    instance: payloadInstance(record),
    diagnosis: diagnosisCodeOf(record.alertedDiagnosis),
    summary,
    evidence: [{ kind: 'metrics-arrive', firstDatapointAt: input.firstDatapointAt ?? null, alarmNames: input.alarmNames, text: `${arrive} ${alarms}` }],
    nextStep: null,
    commandId: record.commandId ?? null,
    scheduleNames: input.scheduleNames,
    alertedAt: record.alertedAt ?? null,
  });
}

/** SNS takes at most 256 KiB a publish (the Publish API reference), message and attributes together. */
export const maxPublishBytes = 262_144;

/** The protocols whose subscribers get the JSON payload; every other protocol (e-mail, SMS) gets the text. */
export const payloadProtocols = ['http', 'https', 'sqs', 'lambda', 'firehose'] as const;

/**
 * The `Message` of a `MessageStructure: 'json'` publish: a JSON object whose keys are protocols, each
 * a string; `default` is what a protocol without its own key receives.
 */
export function structuredMessage(message: TopicMessage): string {
  const payload = JSON.stringify(message.payload);
  return JSON.stringify({
    default: message.body,
    email: message.body,
    ...Object.fromEntries(payloadProtocols.map((protocol) => [protocol, payload])),
  });
}

/** The bytes a publish of this message counts against {@link maxPublishBytes}. */
export function publishedBytes(message: TopicMessage): number {
  const attributes = Object.entries(message.attributes).reduce((sum, [name, value]) => sum + Buffer.byteLength(name) + Buffer.byteLength(String(value)) + 'String'.length, 0);
  return Buffer.byteLength(structuredMessage(message)) + attributes;
}

/** Publishes a message on the product's topic: text for people, the payload for machines. Returns the SNS message id. */
export async function publish(clients: Clients, message: TopicMessage, settings: Pick<Settings, 'alertTopicArn'>): Promise<string> {
  const result = await clients.hub(SNSClient).send(
    new PublishCommand({
      TopicArn: settings.alertTopicArn,
      Subject: message.subject,
      MessageStructure: 'json',
      Message: structuredMessage(message),
      MessageAttributes: Object.fromEntries(
        Object.entries(message.attributes)
          .filter((entry): entry is [string, string] => typeof entry[1] === 'string')
          .map(([name, value]) => [name, { DataType: 'String', StringValue: value }]),
      ),
    }),
  );
  return result.MessageId ?? '';
}

/**
 * Renders the one alert for a member account and region the hub cannot act in: which role it
 * tried, what STS said, what that stops, and how to fix it.
 */
export function renderMemberUnreachable(input: {
  error: MemberAccessError;
  instanceId: string;
  settings: EnvelopeSettings;
  now: Date;
  accountName?: string | undefined;
}): TopicMessage<MemberUnreachablePayload> {
  const { error, settings } = input;
  const place: MessagePlace = { ...error.place, accountName: input.accountName };
  const cause = error.cause instanceof Error ? `${error.cause.name}: ${error.cause.message}` : error.message;
  const summary = `cw-agent-autopilot cannot act in ${placeLine(place)}: assuming ${error.roleArn} failed, so no instance there is onboarded, checked or cleaned up.`;
  const nextStep = [
    `Deploy the member stack (member/member-stack.json) to account ${place.account} in ${place.region}, or fix its execution role's trust policy so it trusts this stack's function roles (README: Deploy to an organization).`,
    `Then onboard what was missed: npx cw-autopilot audit --accounts ${place.account} --regions ${place.region} --remediate`,
  ].join(' ');
  const body = [
    summary,
    '',
    `Role: ${error.roleArn}`,
    `STS said: ${cause}`,
    `Found while handling ${input.instanceId}; instances there are recorded with status error until it works.`,
    '',
    'Next step:',
    nextStep,
    '',
    `This is the only alert for ${place.account} ${place.region} until the hub can act there again.`,
  ].join('\n');
  return topicMessage(snsSubject(`[cw-agent-autopilot] account ${place.account} ${place.region}: member role not assumable`), body, {
    ...envelope('member-unreachable', 'critical', settings, input.now, place),
    member: { account: place.account, region: place.region, roleArn: error.roleArn, error: cause.slice(0, 1000) },
    instanceId: input.instanceId,
    summary,
    nextStep,
  });
}
