import type { Clients } from '../aws/client-factory.js';
import { describeError } from '../aws/errors.js';
import type { InstanceFacts } from '../aws/instances.js';
import { expectedMetrics, maxQueriesPerCall, seriesPresence, type SeriesPresence } from '../checking/metric-queries.js';
import type { Settings } from '../config/settings.js';
import { describeInstanceInformation, maxInstanceInformationPerCall, type SsmPresence } from '../onboarding/ssm-presence.js';
import { chunksOf, mapBounded } from './concurrency.js';
import { listProfileAssociations, listRunningInstances, type FleetScope, type ProfileAssociation } from './fleet-instances.js';
import { readOnboardingSnapshots, type OnboardingSnapshot } from './onboarding-records.js';
import { profileStandings, type ProfileStanding } from './role-policies.js';

/** An AWS read that kept failing: the report is partial, and says where. */
export interface AuditFailure {
  /** The account of the read (set by an audit of several accounts). */
  account?: string;
  region: string;
  api: string;
  /** How many instances lack this fact because of it. */
  instances: number;
  error: string;
}

/** The facts that could not be read for one instance, each with why. */
export type UnreadFacts = Partial<Record<'profile' | 'ssm' | 'metrics' | 'record', string>>;

/** Everything the audit read about one running instance, before any judgement. */
export interface InstanceAuditFacts {
  account: string;
  region: string;
  instance: InstanceFacts;
  /** The associated profile (bulk associations, else DescribeInstances); undefined = none. */
  association: ProfileAssociation | undefined;
  standing: ProfileStanding | undefined;
  ssm: SsmPresence | undefined;
  metrics: SeriesPresence[] | undefined;
  record: OnboardingSnapshot | undefined;
  unread: UnreadFacts;
}

/** What one region's inventory found. */
export interface FleetInventory {
  region: string;
  accountId: string | undefined;
  facts: InstanceAuditFacts[];
  failures: AuditFailure[];
}

/** A step of a long scan, for a progress display. */
export interface InventoryProgress {
  step: 'instances' | 'profiles' | 'roles' | 'ssm' | 'metrics' | 'records';
  done: number;
  total: number | undefined;
}

/** How far back the audit looks for an instance's last datapoint, and at which resolution. */
export const metricHistory = { seconds: 3 * 3600, periodSeconds: 300 } as const;

export interface InventoryOptions {
  region: string;
  scope: FleetScope;
  settings: Pick<Settings, 'stateTable' | 'metrics'>;
  now: Date;
  /** Calls in flight per fan-out (SSM chunks, GetMetricData calls, IAM reads, BatchGetItem). */
  concurrency: number;
  onProgress?: (progress: InventoryProgress) => void;
}

/** Packs instances into GetMetricData calls of at most 500 queries (one per expected series). */
function metricBatches(instances: InstanceFacts[], metrics: Settings['metrics']): InstanceFacts[][] {
  const batches: InstanceFacts[][] = [];
  let current: InstanceFacts[] = [];
  let queries = 0;
  for (const instance of instances) {
    const needed = expectedMetrics(instance.os, metrics).length;
    if (queries + needed > maxQueriesPerCall && current.length) {
      batches.push(current);
      current = [];
      queries = 0;
    }
    current.push(instance);
    queries += needed;
  }
  if (current.length) batches.push(current);
  return batches;
}

/**
 * Reads the facts of every running instance in scope with batch APIs only: DescribeInstances
 * pages, bulk profile associations, one IAM read per distinct profile and role,
 * DescribeInstanceInformation 50 ids a call, GetMetricData 500 queries a call, BatchGetItem 100
 * keys a call. A read that keeps failing marks the facts it would have given as unread and is
 * listed in `failures`; the rest of the inventory goes on.
 *
 * @example
 * const inventory = await gatherFleetInventory({ region: 'eu-west-1', scope: { tags: [], instanceIds: [] }, settings, now: new Date(), concurrency: 4 });
 */
export async function gatherFleetInventory(clients: Clients, options: InventoryOptions): Promise<FleetInventory> {
  const { region, scope, settings, now, concurrency, onProgress } = options;
  const failures: AuditFailure[] = [];
  const fail = (api: string, instances: number, error: unknown) =>
    failures.push({ region, api, instances, error: typeof error === 'string' ? error : describeError(error) });

  const running = await listRunningInstances(clients, scope, (done) => onProgress?.({ step: 'instances', done, total: undefined }));
  if (running.failure) fail('DescribeInstances', 0, `the instance list is incomplete, ${running.failure}`);
  const instances = running.instances;
  const ids = instances.map((instance) => instance.instanceId);
  const unread = new Map<string, UnreadFacts>(ids.map((id) => [id, {}]));
  const markUnread = (instanceIds: Iterable<string>, fact: keyof UnreadFacts, why: string) => {
    for (const id of instanceIds) {
      const entry = unread.get(id);
      if (entry) entry[fact] = why;
    }
  };

  // Associations first: they say which profiles the IAM step must read.
  let associations = new Map<string, ProfileAssociation>();
  try {
    associations = await listProfileAssociations(clients, scope.instanceIds);
  } catch (error) {
    // DescribeInstances already carries each instance's profile ARN: fall back to it.
    fail('DescribeIamInstanceProfileAssociations', 0, `${describeError(error)} (profiles taken from DescribeInstances instead)`);
  }
  const associationOf = (instance: InstanceFacts): ProfileAssociation | undefined =>
    associations.get(instance.instanceId) ?? (instance.profileArn ? { profileArn: instance.profileArn, state: 'associated' } : undefined);
  onProgress?.({ step: 'profiles', done: instances.length, total: instances.length });

  const [roles, ssm, metrics, records] = await Promise.all([
    (async () => {
      const arns = instances.map(associationOf).flatMap((association) => (association ? [association.profileArn] : []));
      const result = await profileStandings(clients, arns, concurrency);
      for (const failure of result.failures) {
        const affected = instances.filter((instance) => associationOf(instance)?.profileArn === failure.profileArn);
        markUnread(affected.map((instance) => instance.instanceId), 'profile', `${failure.api}: ${failure.error}`);
        fail(failure.api, affected.length, `${failure.profileArn}: ${failure.error}`);
      }
      onProgress?.({ step: 'roles', done: result.standings.size, total: result.standings.size });
      return result.standings;
    })(),
    (async () => {
      const found = new Map<string, SsmPresence>();
      const chunks = chunksOf(ids, maxInstanceInformationPerCall);
      let done = 0;
      await mapBounded(chunks, concurrency, async (chunk) => {
        try {
          for (const [id, presence] of await describeInstanceInformation(clients, chunk)) found.set(id, presence);
        } catch (error) {
          markUnread(chunk, 'ssm', describeError(error));
          fail('DescribeInstanceInformation', chunk.length, error);
        }
        onProgress?.({ step: 'ssm', done: (done += chunk.length), total: ids.length });
      });
      return found;
    })(),
    (async () => {
      const found = new Map<string, SeriesPresence[]>();
      const window = { start: new Date(now.getTime() - metricHistory.seconds * 1000), end: now, periodSeconds: metricHistory.periodSeconds };
      let done = 0;
      await mapBounded(metricBatches(instances, settings.metrics), concurrency, async (batch) => {
        try {
          const series = await seriesPresence(clients, batch, settings.metrics, window);
          for (const presence of series) found.set(presence.instanceId, [...(found.get(presence.instanceId) ?? []), presence]);
        } catch (error) {
          markUnread(batch.map((instance) => instance.instanceId), 'metrics', describeError(error));
          fail('GetMetricData', batch.length, error);
        }
        onProgress?.({ step: 'metrics', done: (done += batch.length), total: instances.length });
      });
      return found;
    })(),
    (async () => {
      const result = await readOnboardingSnapshots(clients, settings.stateTable, ids, concurrency);
      for (const failure of result.failures) {
        markUnread(failure.instanceIds, 'record', describeError(failure.error));
        fail('BatchGetItem', failure.instanceIds.length, `${settings.stateTable}: ${describeError(failure.error)}`);
      }
      onProgress?.({ step: 'records', done: ids.length, total: ids.length });
      return result.records;
    })(),
  ]);

  const facts = instances.map((instance): InstanceAuditFacts => {
    const association = associationOf(instance);
    return {
      account: clients.place.account,
      region,
      instance,
      association,
      standing: association ? roles.get(association.profileArn) : undefined,
      ssm: ssm.get(instance.instanceId),
      metrics: metrics.get(instance.instanceId),
      record: records.get(instance.instanceId),
      unread: unread.get(instance.instanceId) ?? {},
    };
  });
  return { region, accountId: running.accountId, facts, failures: mergeFailures(failures) };
}

/** One line per API and error kind, so 40 failed GetMetricData calls read as one finding. */
function mergeFailures(failures: AuditFailure[]): AuditFailure[] {
  const merged = new Map<string, AuditFailure>();
  for (const failure of failures) {
    const key = `${failure.api}|${failure.error.split(':')[0]}`;
    const seen = merged.get(key);
    if (seen) seen.instances += failure.instances;
    else merged.set(key, { ...failure });
  }
  return [...merged.values()];
}
