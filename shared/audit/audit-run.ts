import type { Clients } from '../aws/client-factory.js';
import type { Place } from '../aws/place.js';
import type { Settings } from '../config/settings.js';
import { summarizeAudit, type AuditReport } from './audit-summary.js';
import { gatherFleetInventory, type InventoryProgress } from './fleet-inventory.js';
import type { FleetScope } from './fleet-instances.js';
import { classifyInstance } from './instance-status.js';
import { dryRunRemediation, remediate, type Remediator } from './remediation.js';

/** Whether, and how, the audit fixes what it finds. */
export type RemediationMode =
  | { mode: 'off' }
  | { mode: 'dry-run' }
  /** `remediatorFor` gets the place the instances are in. */
  | { mode: 'apply'; remediatorFor: (place: Place) => Remediator };

/** The settings the audit reads: names of the stack's resources and the onboarding policy. */
export type AuditSettings = Pick<Settings, 'stateTable' | 'metrics' | 'agentProfileName' | 'optOutTag' | 'optInTag' | 'modifyExistingRoles'>;

export interface AuditOptions {
  region: string;
  scope: FleetScope;
  settings: AuditSettings;
  remediation: RemediationMode;
  /** A datapoint younger than this counts as recent (default 15 minutes). */
  recentSeconds?: number;
  /** Calls in flight per fan-out (default 4). */
  concurrency?: number;
  /** The command named in fixes, e.g. `npx cw-autopilot audit --stage dev --region eu-west-1`. */
  auditCommand: string;
  now?: Date;
  onProgress?: (progress: InventoryProgress) => void;
}

/**
 * Audits the running instances of one region: gathers the facts in bulk, classifies each
 * instance, optionally remediates, and summarizes. Shared by the CLI and the audit function.
 *
 * @example
 * const report = await runAudit({ region: 'eu-west-1', scope: { tags: [], instanceIds: [] }, settings, remediation: { mode: 'off' }, auditCommand: 'npx cw-autopilot audit --stage dev' });
 */
export async function runAudit(clients: Clients, options: AuditOptions): Promise<AuditReport> {
  const now = options.now ?? new Date();
  const concurrency = options.concurrency ?? 4;
  const inventory = await gatherFleetInventory(clients, {
    region: options.region,
    scope: options.scope,
    settings: options.settings,
    now,
    concurrency,
    onProgress: options.onProgress,
  });
  const rows = inventory.facts
    .map((facts) =>
      classifyInstance(facts, {
        now,
        settings: options.settings,
        recentSeconds: options.recentSeconds ?? 900,
        auditCommand: options.auditCommand,
      }),
    )
    .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  const remediation =
    options.remediation.mode === 'off'
      ? null
      : options.remediation.mode === 'dry-run'
        ? dryRunRemediation(rows)
        : await remediate(rows, options.remediation.remediatorFor(clients.place), concurrency);
  return {
    summary: summarizeAudit(rows, { regions: [options.region], failures: inventory.failures, now }),
    instances: rows,
    remediation,
  };
}
