import { ClientFactory, type Clients } from '../../shared/aws/client-factory.js';
import type { Place } from '../../shared/aws/place.js';

/** moto's default account and the tests' region: the hub's own place in every single-account test. */
export const hubPlace: Place = { account: '123456789012', region: 'us-east-1' };

/**
 * Clients of one place for a test that calls a shared module directly (the flows make their own
 * from the settings). Other places are reached without AssumeRole (moto's default account), unless
 * a test builds its own factory.
 */
export function testClients(place: Place = hubPlace, hub: Place = hubPlace): Clients {
  return new ClientFactory({ hubPlace: hub, roleFor: () => undefined }).clients(place);
}

/** The record-key fields of a record of the hub's place, for fixtures. */
export function hubRecordKey(instanceId: string): { recordKey: string; account: string; region: string } {
  return { recordKey: `${hubPlace.account}:${hubPlace.region}:${instanceId}`, account: hubPlace.account, region: hubPlace.region };
}
