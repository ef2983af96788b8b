import { InvokeCommand } from '@aws-sdk/client-lambda';
import type { Clients } from '../aws/client-factory.js';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { describeError } from '../aws/errors.js';
import { runOnboarding } from '../onboarding/onboarding.js';
import type { Settings } from '../config/settings.js';
import type { RemediationOutcome } from './audit-summary.js';
import { mapBounded } from './concurrency.js';
import type { AuditRow } from './instance-status.js';

/** Starts onboarding for one instance; says what happened. */
export type Remediator = (instanceId: string) => Promise<{ outcome: 'started' | 'requested'; detail: string }>;

/** The rows `--remediate` acts on: those onboarding can fix and that nothing is working on. */
export function remediationCandidates(rows: AuditRow[]): AuditRow[] {
  return rows.filter((row) => row.remedy === 'onboard');
}

/** What a dry run reports: the same candidates, nothing changed. Pure. */
export function dryRunRemediation(rows: AuditRow[]): RemediationOutcome[] {
  return remediationCandidates(rows).map((row) => ({
    region: row.region,
    instanceId: row.instanceId,
    status: row.status,
    outcome: 'would-start',
    detail: `would start onboarding (a 'remediate' trigger through runOnboarding): ${row.fix}`,
  }));
}

/**
 * Starts onboarding for every candidate row, at most `concurrency` at a time. One failure does not
 * stop the others; it is reported with its error.
 */
export async function remediate(rows: AuditRow[], remediator: Remediator, concurrency: number): Promise<RemediationOutcome[]> {
  return mapBounded(remediationCandidates(rows), concurrency, async (row): Promise<RemediationOutcome> => {
    const base = { region: row.region, instanceId: row.instanceId, status: row.status };
    try {
      return { ...base, ...(await remediator(row.instanceId)) };
    } catch (error) {
      return { ...base, outcome: 'failed', detail: `${describeError(error)}: run the audit again, or look at the onboarding record of ${row.instanceId}` };
    }
  });
}

/**
 * Remediates in this process with the caller's credentials, through the same code path as the
 * EC2 event: {@link runOnboarding} with a `remediate` trigger.
 *
 * @example
 * await remediate(rows, onboardInProcess(settings), 4);
 */
export function onboardInProcess(settings: Settings, requestedBy = 'audit'): Remediator {
  return async (instanceId) => {
    const result = await runOnboarding({ kind: 'remediate', instanceId, requestedBy }, settings);
    return { outcome: 'started', detail: `onboarding ${result.action}: ${result.reason}${result.status ? ` (now ${result.status})` : ''}` };
  };
}

/**
 * Remediates by asking the deployed onboard function (asynchronous Invoke, `Event`), which runs
 * {@link runOnboarding} with the `remediate` trigger it parses from
 * `{ instanceId, remediate: true, requestedBy }`. The caller needs only lambda:InvokeFunction.
 */
export function onboardByInvoking(clients: Clients, onboardFunctionArn: string, requestedBy = 'audit'): Remediator {
  return async (instanceId) => {
    const result = await clients.hub(LambdaClient).send(
      new InvokeCommand({
        FunctionName: onboardFunctionArn,
        InvocationType: 'Event',
        Payload: new TextEncoder().encode(JSON.stringify({ instanceId, remediate: true, requestedBy })),
      }),
    );
    return { outcome: 'requested', detail: `asked ${onboardFunctionArn.split(':').at(-1)} to onboard it (HTTP ${result.StatusCode ?? '?'})` };
  };
}
