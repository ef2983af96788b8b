import { PublishCommand } from '@aws-sdk/client-sns';
import { sns } from './aws-clients.js';
import type { Diagnosis } from './check-diagnosis.js';
import { explain } from './check-explanation.js';
import type { OnboardingRecord } from './onboarding-state.js';
import type { Settings } from './settings.js';

/** One message for the product's SNS topic. */
export interface AlertMessage {
  /** SNS subjects: printable ASCII, one line, fewer than 100 characters. */
  subject: string;
  body: string;
  /** String message attributes subscribers can filter on: severity, event, diagnosis, instanceId, os. */
  attributes: Record<string, string>;
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

/**
 * Renders the alert for an instance whose metrics are missing: the subject names the instance and
 * the diagnosis; the body says what happened, what was tried, the evidence and the next step.
 *
 * @example
 * const message = renderAlert({ record, diagnosis, checks: 3, settings });
 * await publish(message, settings);
 */
export function renderAlert(input: {
  record: OnboardingRecord;
  diagnosis: Diagnosis;
  checks: number;
  settings: Pick<Settings, 'region' | 'metrics'>;
}): AlertMessage {
  const { record, diagnosis, checks, settings } = input;
  const label = instanceLabel(record);
  const region = settings.region;
  const explanation = explain(diagnosis);
  const body = [
    `CloudWatch agent metrics are missing for ${label}.`,
    '',
    `Diagnosis: ${diagnosis.code}`,
    explanation.summary,
    '',
    `Instance: ${label}, ${record.os ?? 'unknown OS'}, launched ${record.launchTime ?? 'at an unknown time'}`,
    `Console: https://${region}.console.aws.amazon.com/ec2/home?region=${region}#InstanceDetails:instanceId=${record.instanceId}`,
    '',
    'What was tried:',
    ...whatWasTried(record, checks).map((line) => `- ${line}`),
    '',
    'Evidence:',
    ...explanation.evidence.map((line) => (line.startsWith('  |') ? `  ${line}` : `- ${line}`)),
    '',
    'Next step:',
    explanation.nextStep,
    '',
    `This is the only alert for this launch of ${record.instanceId}; a recovery message follows if its metrics arrive.`,
  ].join('\n');
  return {
    subject: snsSubject(`[cw-agent-autopilot] ${subjectLabel(record)}: metrics missing - ${diagnosis.code}`),
    body,
    attributes: { severity: 'critical', event: 'alert', diagnosis: diagnosis.code, instanceId: record.instanceId, os: record.os ?? 'unknown' },
  };
}

/** Renders the one recovery message for an instance that alerted and now publishes its metrics. */
export function renderRecovery(input: { record: OnboardingRecord; firstDatapointAt: string | undefined; alarmNames: string[] }): AlertMessage {
  const { record } = input;
  const label = instanceLabel(record);
  const body = [
    `CloudWatch agent metrics now arrive for ${label}.`,
    '',
    `It was alerted at ${record.alertedAt ?? '?'} with diagnosis ${record.alertedDiagnosis ?? '?'}.`,
    `First datapoint seen: ${input.firstDatapointAt ?? '?'}.`,
    input.alarmNames.length ? `Alarms now watch it: ${input.alarmNames.join(', ')}.` : 'No alarms were created.',
    '',
    'Nothing to do.',
  ].join('\n');
  return {
    subject: snsSubject(`[cw-agent-autopilot] ${subjectLabel(record)}: recovered, metrics arrive`),
    body,
    attributes: {
      severity: 'info',
      event: 'recovery',
      diagnosis: record.alertedDiagnosis ?? 'unknown',
      instanceId: record.instanceId,
      os: record.os ?? 'unknown',
    },
  };
}

/** Publishes a message on the product's topic. Returns the SNS message id. */
export async function publish(message: AlertMessage, settings: Pick<Settings, 'alertTopicArn'>): Promise<string> {
  const result = await sns.send(
    new PublishCommand({
      TopicArn: settings.alertTopicArn,
      Subject: message.subject,
      Message: message.body,
      MessageAttributes: Object.fromEntries(
        Object.entries(message.attributes).map(([name, value]) => [name, { DataType: 'String', StringValue: value }]),
      ),
    }),
  );
  return result.MessageId ?? '';
}
