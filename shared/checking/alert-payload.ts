import type { OsFamily } from '../agent-config.js';
import type { DiagnosisCode, Evidence } from './check-diagnosis.js';
import { evidenceLines } from './check-explanation.js';
import type { CommandState } from './command-status.js';
import type { AuditFailure } from '../audit/fleet-inventory.js';
import type { Attention, CoverageTally } from '../audit/audit-summary.js';
import type { PlaceTally, UnreadablePlace } from '../audit/organization-audit.js';

/**
 * The version of the JSON payload machines receive (schemas/alert-payload.v<version>.json). A field
 * added is still version 1; a field removed, renamed or given another meaning is version 2.
 */
export const payloadSchemaVersion = '1';

/** Every kind of message the product publishes on its topic. */
export type TopicEvent = 'alert' | 'recovery' | 'audit-summary' | 'member-unreachable';
export type Severity = 'critical' | 'warning' | 'info';

/** What every payload carries: what happened, how bad, when, and where the product runs. */
export interface PayloadEnvelope {
  schemaVersion: typeof payloadSchemaVersion;
  event: TopicEvent;
  severity: Severity;
  /** When the product published it (ISO 8601, UTC). */
  time: string;
  /**
   * Where what the message is about lives: the instance's account and region (a member's, in an
   * organization), the hub's for an audit summary. SNS filter policies on `account` route by it.
   */
  account: string;
  region: string;
  /** The account's name in Organizations, when the hub may read it (null otherwise). */
  accountName?: string | null;
  /** The stack's resource prefix, e.g. `cwap-prod`. */
  stack: string;
}

/** The instance a message is about; `name` is the Name tag as written (any language), null without one. */
export interface PayloadInstance {
  id: string;
  name: string | null;
  os: OsFamily | null;
  launchTime: string | null;
}

/** A fact an alert rests on: its kind, the line a person reads (`text`), and the fact's fields. */
export type PayloadEvidence = { text: string } & (
  | { kind: 'no-instance-profile' }
  | { kind: 'role-policies'; profileArn: string; roleName: string | null; missing: string[] }
  | { kind: 'ssm-presence'; pingStatus: string; agentVersion: string | null; lastPing: string | null }
  | {
      kind: 'install-command';
      commandId: string;
      state: CommandState;
      status: string | null;
      statusDetails: string | null;
      step: string | null;
      responseCode: number | null;
      errorLines: string[];
    }
  | { kind: 'metrics-present'; metricNames: string[] }
  | { kind: 'metrics-missing'; namespace: string; metricNames: string[]; instanceId: string; window: { start: string; end: string } }
  | { kind: 'metrics-arrive'; firstDatapointAt: string | null; alarmNames: string[] }
);

/** Fields of the messages about one instance (alert, recovery). */
interface InstancePayload extends PayloadEnvelope {
  instance: PayloadInstance;
  /** Alert: the diagnosis. Recovery: the diagnosis that was alerted (null if not recorded). */
  diagnosis: DiagnosisCode | null;
  /** One sentence: what happened. */
  summary: string;
  evidence: PayloadEvidence[];
  /** What a person should do (null: nothing). */
  nextStep: string | null;
  /** The install command last sent for the instance, null if none. */
  commandId: string | null;
  /** The EventBridge Scheduler schedules (in the stack's group) whose invocation sent this message; empty for a check by hand. */
  scheduleNames: string[];
}

/** Metrics are missing: one per instance per failed launch. */
export interface AlertPayload extends InstancePayload {
  event: 'alert';
  severity: 'critical';
  diagnosis: DiagnosisCode;
  /** Whether waiting or re-sending the install could have fixed it (it was retried before alerting). */
  retryable: boolean;
  nextStep: string;
  whatWasTried: string[];
  checks: number;
  consoleUrl: string;
}

/** An alerted instance's metrics now arrive. */
export interface RecoveryPayload extends InstancePayload {
  event: 'recovery';
  severity: 'info';
  alertedAt: string | null;
  nextStep: null;
}

/** The fleet audit's numbers (see the README's fleet audit section). */
export interface PayloadFleet {
  generatedAt: string;
  regions: string[];
  running: number;
  healthy: number;
  /** healthy / running, 0..1. */
  coverage: number;
  byStatus: Record<string, number>;
  byOs: Record<string, CoverageTally>;
  byAvailabilityZone: Record<string, CoverageTally>;
  remediable: number;
  underWay: number;
  /** How many instances need a person (the list below may be cut). */
  needsPerson: number;
  partial: boolean;
  failures: AuditFailure[];
}

/** An audit of several accounts or regions: the figures per account and the places not read, cut to fit. */
export interface PayloadOrganization {
  accounts: number;
  regions: string[];
  places: number;
  /** Worst first (places not read, then coverage); the best covered are the ones cut. */
  byAccount: Record<string, PlaceTally>;
  byAccountOmitted: number;
  unreadable: UnreadablePlace[];
  unreadableOmitted: number;
}

/** The fleet audit's summary: coverage in numbers and who needs a person. */
export interface AuditSummaryPayload extends PayloadEnvelope {
  event: 'audit-summary';
  /** `warning` when not every running instance is healthy or the audit is partial, else `info`. */
  severity: 'warning' | 'info';
  fleet: PayloadFleet;
  /** The first of the instances that need a person (all of them when `needsPersonOmitted` is 0). */
  needsPerson: Attention[];
  needsPersonOmitted: number;
  /** What remediation did, by outcome; null when it did not run. */
  remediation: Record<string, number> | null;
  /** Present when the audit covered accounts and regions (runOrganizationAudit). */
  organization?: PayloadOrganization;
}

/**
 * The hub cannot act in a member account and region (its execution role is missing or does not
 * trust the hub): one per place until it can again, not one per instance.
 */
export interface MemberUnreachablePayload extends PayloadEnvelope {
  event: 'member-unreachable';
  severity: 'critical';
  member: { account: string; region: string; roleArn: string; error: string };
  /** The instance whose event or check found it out. */
  instanceId: string;
  summary: string;
  nextStep: string;
}

export type TopicPayload = AlertPayload | RecoveryPayload | AuditSummaryPayload | MemberUnreachablePayload;

/** The SNS message attributes of a message: one scheme for every kind (README: "How to read an alert"). */
export interface TopicAttributes {
  event: TopicEvent;
  severity: Severity;
  /** The diagnosis code, `member-unreachable`, or `none` (audit summaries). */
  diagnosis: string;
  /** Absent on audit summaries. */
  instanceId?: string;
  /** `linux`, `windows` or `unknown`; absent on audit summaries. */
  os?: string;
  account: string;
  region: string;
  schemaVersion: typeof payloadSchemaVersion;
}

/**
 * The message attributes of a payload, so the scheme is the same for every kind and cannot disagree
 * with the payload.
 *
 * @example
 * topicAttributes(payload); // { event: 'alert', severity: 'critical', diagnosis: 'no-datapoints', instanceId: 'i-...', os: 'linux', ... }
 */
export function topicAttributes(payload: TopicPayload): TopicAttributes {
  const common = { event: payload.event, severity: payload.severity, account: payload.account, region: payload.region, schemaVersion: payload.schemaVersion };
  if (payload.event === 'audit-summary') return { ...common, diagnosis: 'none' };
  if (payload.event === 'member-unreachable') return { ...common, diagnosis: 'member-unreachable', instanceId: payload.instanceId };
  return { ...common, diagnosis: payload.diagnosis ?? 'none', instanceId: payload.instance.id, os: payload.instance.os ?? 'unknown' };
}

/** A diagnosis' evidence as the payload carries it: each fact with its line, unknown fields null. */
export function payloadEvidence(evidence: Evidence): PayloadEvidence {
  const text = evidenceLines(evidence).join('\n');
  switch (evidence.kind) {
    case 'no-instance-profile':
    case 'metrics-present':
    case 'metrics-missing':
      return { ...evidence, text };
    case 'role-policies':
      return { ...evidence, roleName: evidence.roleName ?? null, text };
    case 'ssm-presence':
      return { kind: evidence.kind, pingStatus: evidence.pingStatus, agentVersion: evidence.agentVersion ?? null, lastPing: evidence.lastPing ?? null, text };
    case 'install-command':
      return {
        kind: evidence.kind,
        commandId: evidence.commandId,
        state: evidence.state,
        status: evidence.status ?? null,
        statusDetails: evidence.statusDetails ?? null,
        step: evidence.step ?? null,
        responseCode: evidence.responseCode ?? null,
        errorLines: evidence.errorLines,
        text,
      };
  }
}

/** The account id in an ARN (`arn:aws:sns:us-east-1:123456789012:topic` -> `123456789012`). */
export function accountOf(arn: string): string {
  return arn.split(':')[4] ?? '';
}
