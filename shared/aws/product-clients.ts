import { MemberAccessError } from '../errors.js';
import type { Settings } from '../config/settings.js';
import { ClientFactory, memberRoleArn } from './client-factory.js';
import { placeLabel, type Place } from './place.js';

const factories = new WeakMap<Settings, ClientFactory>();

/**
 * The functions' client factory, one per cold start (per settings object): the hub's own place
 * with the function's own credentials, every other place through the function's member execution
 * role (`MEMBER_ROLE_NAME`-<region>). Without MEMBER_ROLE_NAME, only the hub's place is reachable:
 * any other is a {@link MemberAccessError} naming the setting.
 */
export function clientFactoryOf(settings: Settings): ClientFactory {
  let factory = factories.get(settings);
  if (!factory) {
    factory = new ClientFactory({
      hubPlace: settings.hubPlace,
      roleFor: (place: Place) => {
        if (!settings.memberRoleName) {
          throw new MemberAccessError(`${placeLabel(place)} is not the hub's account and region, and MEMBER_ROLE_NAME is not set: no role to act there`, {
            place,
            roleArn: '(none)',
          });
        }
        return memberRoleArn(place, settings.memberRoleName);
      },
      sessionName: settings.resourcePrefix,
    });
    factories.set(settings, factory);
  }
  return factory;
}
