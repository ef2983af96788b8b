import { OrganizationsClient, paginateListAccounts } from '@aws-sdk/client-organizations';
import type { ClientFactory } from '../aws/client-factory.js';
import { describeError } from '../aws/errors.js';
import { placeLabel, type Place } from '../aws/place.js';
import type { AccountScope } from '../config/settings.js';
import { MemberAccessError } from '../errors.js';
import { runAudit, type AuditOptions } from './audit-run.js';
import { summarizeAudit, type AuditReport } from './audit-summary.js';
import { mapBounded } from './concurrency.js';
import type { AuditFailure, InventoryProgress } from './fleet-inventory.js';
import { auditStatuses, type AuditRow, type AuditStatus } from './instance-status.js';

/** Running, healthy and the statuses of one account or one region, across the places audited. */
export interface PlaceTally {
  running: number;
  healthy: number;
  /** healthy / running, 0..1 (1 when nothing runs). */
  coverage: number;
  byStatus: Record<AuditStatus, number>;
  /** Places of this account (or region) that could not be read: their instances are not counted. */
  unreadablePlaces: number;
}

/** A place the audit could not read: its instances are missing from the report, and why. */
export interface UnreadablePlace {
  account: string;
  region: string;
  /** The role the audit assumed (or tried to) there; null where it used its own credentials. */
  roleArn: string | null;
  reason: string;
}

/** What an audit of several accounts and regions adds to the report of one. */
export interface OrganizationSummary {
  accounts: string[];
  regions: string[];
  /** Places read (accounts x regions, unreadable ones included). */
  places: number;
  byAccount: Record<string, PlaceTally>;
  byRegion: Record<string, PlaceTally>;
  unreadable: UnreadablePlace[];
}

/** The audit of every place: the one-place report's fields, totals across places, and the organization's. */
export interface OrganizationAuditReport extends AuditReport {
  organization: OrganizationSummary;
}

/** A step of one place's scan, or a place finished (`step: 'places'`, `done` of `total` places). */
export type OrganizationProgress = { place: Place } & (InventoryProgress | { step: 'places'; done: number; total: number; unreadable: boolean });

export interface OrganizationAuditOptions extends Omit<AuditOptions, 'region' | 'auditCommand' | 'onProgress'> {
  accounts: AccountScope;
  /** The regions of every account. */
  regions: string[];
  /** Places audited at once (default 4); each one bounds its own calls by `concurrency`. */
  placeConcurrency?: number;
  /** The command named in a place's fixes. */
  auditCommand: (place: Place) => string;
  onProgress?: (progress: OrganizationProgress) => void;
}

/**
 * The accounts of a scope: the hub's, the listed ones, or the ACTIVE accounts of the organization
 * (Organizations ListAccounts, every page, from the hub; needs organizations:ListAccounts, which
 * only the management account or a delegated administrator has).
 *
 * @example
 * await accountsOf({ kind: 'organization' }, factory); // ['111111111111', '222222222222']
 */
export async function accountsOf(scope: AccountScope, factory: ClientFactory): Promise<string[]> {
  if (scope.kind === 'hub') return [factory.hubPlace.account];
  if (scope.kind === 'list') return scope.ids;
  const accounts: string[] = [];
  const client = factory.clients().hub(OrganizationsClient);
  for await (const page of paginateListAccounts({ client }, {})) {
    for (const account of page.Accounts ?? []) {
      // State replaces the deprecated Status (both say ACTIVE for a member that can be read).
      if (account.Id && (account.State ?? account.Status) === 'ACTIVE') accounts.push(account.Id);
    }
  }
  return accounts;
}

function tallyOf(rows: AuditRow[], unreadablePlaces: number): PlaceTally {
  const byStatus = Object.fromEntries(auditStatuses.map((status) => [status, 0])) as Record<AuditStatus, number>;
  for (const row of rows) byStatus[row.status] += 1;
  const healthy = byStatus.healthy;
  return {
    running: rows.length,
    healthy,
    coverage: rows.length === 0 ? 1 : Math.floor((healthy / rows.length) * 10_000) / 10_000,
    byStatus,
    unreadablePlaces,
  };
}

function tallies(keys: string[], rows: AuditRow[], unreadable: UnreadablePlace[], keyOf: (item: { account: string; region: string }) => string): Record<string, PlaceTally> {
  return Object.fromEntries(
    keys.map((key) => [key, tallyOf(rows.filter((row) => keyOf(row) === key), unreadable.filter((place) => keyOf(place) === key).length)]),
  );
}

/** The audit of one place, or why it could not be read. */
type PlaceOutcome = { place: Place; report: AuditReport } | { place: Place; unreadable: UnreadablePlace };

async function auditPlace(factory: ClientFactory, place: Place, options: OrganizationAuditOptions, now: Date): Promise<PlaceOutcome> {
  let roleArn: string | null = null;
  const unreadable = (reason: string): PlaceOutcome => ({ place, unreadable: { account: place.account, region: place.region, roleArn, reason } });
  try {
    roleArn = factory.roleArnFor(place) ?? null;
    // Before any read: a missing member stack is one finding, not one failure per API.
    await factory.verifyAccess(place);
  } catch (error) {
    if (error instanceof MemberAccessError) {
      roleArn = error.roleArn;
      return unreadable(error.message);
    }
    return unreadable(describeError(error));
  }
  let report: AuditReport;
  try {
    report = await runAudit(factory.clients(place), {
      ...options,
      region: place.region,
      auditCommand: options.auditCommand(place),
      now,
      onProgress: options.onProgress ? (progress) => options.onProgress?.({ ...progress, place }) : undefined,
    });
  } catch (error) {
    return unreadable(describeError(error));
  }
  // No instance list at all (e.g. the role may not DescribeInstances): nothing of the place is known.
  const listing = report.summary.failures.find((failure) => failure.api === 'DescribeInstances');
  if (listing && report.instances.length === 0) return unreadable(`DescribeInstances: ${listing.error}`);
  return { place, report };
}

/**
 * Audits every (account, region) of the scope: the accounts of `accounts` (see
 * {@link accountsOf}) in each of `regions`, at most `placeConcurrency` places at a time, each
 * through the factory's clients of that place ({@link runAudit}). A place that cannot be read (its
 * role cannot be assumed, or its inventory failed) is listed in `organization.unreadable` with its
 * account, region, role and reason, and makes the report partial; the other places' rows stand.
 * `summary` is the totals across places, so a one-place audit's report reads as {@link runAudit}'s.
 *
 * @example
 * const report = await runOrganizationAudit(factory, { accounts: { kind: 'organization' }, regions: ['eu-west-1', 'us-east-1'], scope, settings, remediation: { mode: 'off' }, auditCommand: () => 'npx cw-autopilot audit' });
 * report.organization.byAccount['111111111111'].coverage; // 0.97
 */
export async function runOrganizationAudit(factory: ClientFactory, options: OrganizationAuditOptions): Promise<OrganizationAuditReport> {
  const now = options.now ?? new Date();
  const accounts = await accountsOf(options.accounts, factory);
  const places = accounts.flatMap((account) => options.regions.map((region): Place => ({ account, region })));
  let done = 0;
  const outcomes = await mapBounded(places, options.placeConcurrency ?? 4, async (place) => {
    const outcome = await auditPlace(factory, place, options, now);
    options.onProgress?.({ place, step: 'places', done: (done += 1), total: places.length, unreadable: 'unreadable' in outcome });
    return outcome;
  });

  return organizationReport({
    accounts,
    regions: options.regions,
    places: places.length,
    reports: outcomes.flatMap((outcome) => ('report' in outcome ? [{ place: outcome.place, report: outcome.report }] : [])),
    unreadable: outcomes.flatMap((outcome) => ('unreadable' in outcome ? [outcome.unreadable] : [])),
    remediated: options.remediation.mode !== 'off',
    now,
  });
}

/** What {@link organizationReport} is built from: the places' own reports and the places not read. */
export interface OrganizationParts {
  accounts: string[];
  regions: string[];
  places: number;
  /** A place's report; `place` names the account of its failures that do not say it. */
  reports: { place?: Place; report: AuditReport }[];
  unreadable: UnreadablePlace[];
  /** Whether remediation ran (or was dry-run): `remediation` is then a list, else null. */
  remediated: boolean;
  now: Date;
}

/** One report of places audited one by one: totals in `summary`, the figures per account and region. Pure. */
export function organizationReport(parts: OrganizationParts): OrganizationAuditReport {
  const { accounts, regions, unreadable, now } = parts;
  const instances = parts.reports.flatMap(({ report }) => report.instances);
  const failures = parts.reports.flatMap(({ place, report }): AuditFailure[] => report.summary.failures.map((failure) => ({ account: failure.account ?? place?.account, ...failure })));
  const summary = summarizeAudit(instances, { regions, failures, now });
  return {
    // A place not read leaves its instances out: the coverage is not proven.
    summary: { ...summary, partial: summary.partial || unreadable.length > 0 },
    instances,
    remediation: parts.remediated ? parts.reports.flatMap(({ report }) => report.remediation ?? []) : null,
    organization: {
      accounts,
      regions,
      places: parts.places,
      byAccount: tallies(accounts, instances, unreadable, (item) => item.account),
      byRegion: tallies(regions, instances, unreadable, (item) => item.region),
      unreadable,
    },
  };
}

/**
 * One report of several organization reports (the CLI audits each stack's regions with that
 * stack's settings). Pure.
 */
export function mergeOrganizationReports(reports: OrganizationAuditReport[], now: Date): OrganizationAuditReport {
  const union = (lists: string[][]) => [...new Set(lists.flat())];
  return organizationReport({
    accounts: union(reports.map((report) => report.organization.accounts)),
    regions: union(reports.map((report) => report.organization.regions)),
    places: reports.reduce((total, report) => total + report.organization.places, 0),
    // Their rows and failures already say where they are.
    reports: reports.map((report) => ({ report })),
    unreadable: reports.flatMap((report) => report.organization.unreadable),
    remediated: reports.some((report) => report.remediation !== null),
    now,
  });
}

/** `111111111111/eu-west-1 (role arn:...): reason` — an unreadable place in one line. Pure. */
export function describeUnreadable(place: UnreadablePlace): string {
  return `${placeLabel(place)}${place.roleArn ? ` (role ${place.roleArn})` : ''}: ${place.reason}`;
}
