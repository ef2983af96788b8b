import type { AuditFailure } from './fleet-inventory.js';
import { auditStatuses, type AuditRow, type AuditStatus } from './instance-status.js';
import type { OrganizationSummary } from './organization-audit.js';

/** Running and healthy counts of one group (an OS, an availability zone). */
export interface CoverageTally {
  running: number;
  healthy: number;
}

/** An instance a person must look at, with what to do. */
export interface Attention {
  account: string;
  region: string;
  instanceId: string;
  name: string | null;
  status: AuditStatus;
  fix: string;
}

/** The fleet in numbers: what someone asking "are we covered?" reads first. */
export interface AuditSummary {
  generatedAt: string;
  regions: string[];
  running: number;
  healthy: number;
  /** healthy / running, 0..1 (1 when nothing runs). Skipped-by-tag instances count as running, not healthy. */
  coverage: number;
  byStatus: Record<AuditStatus, number>;
  byOs: Record<string, CoverageTally>;
  byAvailabilityZone: Record<string, CoverageTally>;
  /** Instances onboarding cannot fix (or whose facts could not be read). */
  needsPerson: Attention[];
  /** Instances `--remediate` would start onboarding for. */
  remediable: number;
  /** Instances whose onboarding is under way. */
  underWay: number;
  /** True when some AWS read failed: the rows say which facts are missing. */
  partial: boolean;
  failures: AuditFailure[];
}

/** What a remediation did (or, in a dry run, would do) for one instance. */
export interface RemediationOutcome {
  account: string;
  region: string;
  instanceId: string;
  status: AuditStatus;
  outcome: 'would-start' | 'started' | 'requested' | 'failed';
  detail: string;
}

/**
 * The whole audit: summary, one row per running instance, and what remediation did; an audit of
 * accounts and regions (runOrganizationAudit) adds the figures per account and region.
 */
export interface AuditReport {
  summary: AuditSummary;
  instances: AuditRow[];
  remediation: RemediationOutcome[] | null;
  organization?: OrganizationSummary;
}

function tally(groups: Record<string, CoverageTally>, key: string, healthy: boolean): void {
  const group = (groups[key] ??= { running: 0, healthy: 0 });
  group.running += 1;
  if (healthy) group.healthy += 1;
}

/**
 * Builds the summary of a set of rows. Pure.
 *
 * @example
 * summarizeAudit(rows, { regions: ['eu-west-1'], failures: [], now: new Date() }).coverage; // 0.93
 */
export function summarizeAudit(rows: AuditRow[], context: { regions: string[]; failures: AuditFailure[]; now: Date }): AuditSummary {
  const byStatus = Object.fromEntries(auditStatuses.map((status) => [status, 0])) as Record<AuditStatus, number>;
  const byOs: Record<string, CoverageTally> = {};
  const byAvailabilityZone: Record<string, CoverageTally> = {};
  for (const row of rows) {
    byStatus[row.status] += 1;
    tally(byOs, row.os, row.status === 'healthy');
    tally(byAvailabilityZone, row.availabilityZone ?? 'unknown', row.status === 'healthy');
  }
  const healthy = byStatus.healthy;
  return {
    generatedAt: context.now.toISOString(),
    regions: context.regions,
    running: rows.length,
    healthy,
    coverage: rows.length === 0 ? 1 : Math.floor((healthy / rows.length) * 10_000) / 10_000,
    byStatus,
    byOs,
    byAvailabilityZone,
    needsPerson: rows
      .filter((row) => row.remedy === 'person')
      .map(({ account, region, instanceId, name, status, fix }) => ({ account, region, instanceId, name, status, fix })),
    remediable: rows.filter((row) => row.remedy === 'onboard').length,
    underWay: rows.filter((row) => row.remedy === 'wait').length,
    partial: context.failures.length > 0,
    failures: context.failures,
  };
}
