import { accountName } from '../aws/account-names.js';
import { memberRoleArn, type ClientFactory, type Clients } from '../aws/client-factory.js';
import { describeError } from '../aws/errors.js';
import { placeLabel, samePlace, type Place } from '../aws/place.js';
import type { Settings } from '../config/settings.js';
import { MemberAccessError, StaleRecordError } from '../errors.js';
import { logAbout, logger } from '../observability/logger.js';
import { advance, newRecord, readRecord, saveRecord } from '../state/instance-record.js';
import { recordReachable, recordUnreachable } from '../state/place-access.js';
import { publish, renderMemberUnreachable } from './alerts.js';

/** Places this container has confirmed reachable since its cold start (one conditional write each). */
const confirmed = new Set<string>();

/**
 * Runs a flow for the instance of a request, with the clients of its place (the hub's when it
 * names none), once the hub can act there. The member's credentials are
 * resolved first (cached per place), so a missing or untrusting execution role is found before
 * anything is read or changed. Then, instead of the flow:
 * - the instance's record gets status `error` with the reason (it stays visible in the audit and
 *   `status`, and the audit's remediation onboards it once the role works);
 * - the place is recorded unreachable, and the one invocation that recorded it publishes the
 *   member-unreachable alert (every other instance of that place adds nothing to the topic);
 * - the invocation succeeds (returns `unreachable(reason)`): Lambda's retries and the on-failure
 *   destination would otherwise send one message per instance.
 * A place that works again is recorded reachable (once per container), so a later failure alerts anew.
 * A batch of a place passes all its instance ids: each is recorded, the alert names the first.
 */
export async function withMemberAccess<R>(
  request: { place?: Place | undefined } & ({ instanceId: string } | { instanceIds: readonly string[] }),
  settings: Settings,
  now: Date,
  factory: ClientFactory,
  flow: (clients: Clients) => Promise<R>,
  unreachable: (reason: string) => R,
): Promise<R> {
  const ids = 'instanceIds' in request ? request.instanceIds : [request.instanceId];
  const place = request.place ?? factory.hubPlace;
  const clients = factory.clients(place);
  if ('instanceId' in request) logAbout(request.instanceId, undefined, place);
  if (samePlace(place, factory.hubPlace)) return flow(clients);
  try {
    await factory.verifyAccess(place);
  } catch (error) {
    if (!(error instanceof MemberAccessError)) throw error;
    for (const instanceId of ids) await recordInstanceUnreachable(factory, place, instanceId, error, settings, now);
    await alertOnce(factory, error, ids[0] ?? '', settings, now);
    return unreachable(error.message);
  }
  const label = placeLabel(place);
  if (!confirmed.has(label)) {
    confirmed.add(label);
    const roleArn = settings.memberRoleName ? memberRoleArn(place, settings.memberRoleName) : '';
    if (await recordReachable(clients, settings.stateTable, place, roleArn, now).catch(() => false)) {
      logger.info('member place reachable again', { account: place.account, instanceRegion: place.region });
    }
  }
  return flow(clients);
}

async function recordInstanceUnreachable(factory: ClientFactory, place: Place, instanceId: string, error: MemberAccessError, settings: Settings, now: Date): Promise<void> {
  const clients = factory.clients(place);
  try {
    const existing = (await readRecord(clients, settings.stateTable, instanceId)) ?? newRecord(place, instanceId, now);
    await saveRecord(
      clients,
      settings.stateTable,
      advance(existing, { status: 'error', lastError: error.message }, 'member-unreachable', now, `cannot assume ${error.roleArn}`),
    );
  } catch (writeError) {
    if (writeError instanceof StaleRecordError) return;
    logger.error('could not record the unreachable instance', { instanceId, error: describeError(writeError) });
  }
}

async function alertOnce(factory: ClientFactory, error: MemberAccessError, instanceId: string, settings: Settings, now: Date): Promise<void> {
  const hub = factory.clients();
  if (!(await recordUnreachable(hub, settings.stateTable, error, now))) {
    logger.warn('member place unreachable (already alerted)', { account: error.place.account, instanceRegion: error.place.region, roleArn: error.roleArn });
    return;
  }
  const name = await accountName(hub, error.place.account, settings.organizationId !== undefined);
  try {
    const messageId = await publish(hub, renderMemberUnreachable({ error, instanceId, settings, now, accountName: name }), settings);
    logger.error('member place unreachable: alerted', { account: error.place.account, instanceRegion: error.place.region, roleArn: error.roleArn, messageId });
  } catch (publishError) {
    // Not sent: forget the record, so the next instance of that place (or Lambda's retry) alerts.
    await recordReachable(hub, settings.stateTable, error.place, error.roleArn, now).catch(() => false);
    throw publishError;
  }
}
