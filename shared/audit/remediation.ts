import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { ClientFactory, Clients } from '../aws/client-factory.js';
import { describeError } from '../aws/errors.js';
import { samePlace, type Place } from '../aws/place.js';
import { runOnboarding } from '../onboarding/onboarding.js';
import type { Settings } from '../config/settings.js';
import type { RemediationOutcome } from './audit-summary.js';
import { mapBounded } from './concurrency.js';
import type { AuditRow } from './instance-status.js';

/** Starts onboarding for one instance of the place it was made for; says what happened. */
export type Remediator = (instanceId: string) => Promise<{ outcome: 'started' | 'requested'; detail: string }>;

/** The rows `--remediate` acts on: those onboarding can fix and that nothing is working on. */
export function remediationCandidates(rows: AuditRow[]): AuditRow[] {
  return rows.filter((row) => row.remedy === 'onboard');
}

/** What a dry run reports: the same candidates, nothing changed. Pure. */
export function dryRunRemediation(rows: AuditRow[]): RemediationOutcome[] {
  return remediationCandidates(rows).map((row) => ({
    account: row.account,
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
    const base = { account: row.account, region: row.region, instanceId: row.instanceId, status: row.status };
    try {
      return { ...base, ...(await remediator(row.instanceId)) };
    } catch (error) {
      return { ...base, outcome: 'failed', detail: `${describeError(error)}: run the audit again, or look at the onboarding record of ${row.instanceId}` };
    }
  });
}

/**
 * Remediates the instances of one place in this process, through the same code path as the EC2
 * event: {@link runOnboarding} with a `remediate` trigger for that place, acting there with the
 * factory's clients (its own credentials in its hub's place, its role elsewhere).
 *
 * @example
 * await remediate(rows, onboardInProcess(settings, factory, place), 4);
 */
export function onboardInProcess(settings: Settings, factory: ClientFactory, place: Place, requestedBy = 'audit'): Remediator {
  return async (instanceId) => {
    const trigger = { kind: 'remediate' as const, instanceId, requestedBy, place: samePlace(place, factory.hubPlace) ? undefined : place };
    const result = await runOnboarding(trigger, settings, undefined, factory);
    return { outcome: 'started', detail: `onboarding ${result.action}: ${result.reason}${result.status ? ` (now ${result.status})` : ''}` };
  };
}

/**
 * Remediates by asking the deployed onboard function (asynchronous Invoke, `Event`), which runs
 * {@link runOnboarding} with the `remediate` trigger it parses from
 * `{ instanceId, remediate: true, requestedBy, account, region }` (account and region left out for
 * the hub's own place, as the EC2 event of the hub's own instances has them). The caller needs
 * only lambda:InvokeFunction, in the hub.
 */
export function onboardByInvoking(clients: Clients, onboardFunctionArn: string, requestedBy = 'audit'): Remediator {
  const where = samePlace(clients.place, clients.hubPlace) ? {} : { account: clients.place.account, region: clients.place.region };
  return async (instanceId) => {
    const result = await clients.hub(LambdaClient).send(
      new InvokeCommand({
        FunctionName: onboardFunctionArn,
        InvocationType: 'Event',
        Payload: new TextEncoder().encode(JSON.stringify({ instanceId, remediate: true, requestedBy, ...where })),
      }),
    );
    return { outcome: 'requested', detail: `asked ${onboardFunctionArn.split(':').at(-1)} to onboard it (HTTP ${result.StatusCode ?? '?'})` };
  };
}
