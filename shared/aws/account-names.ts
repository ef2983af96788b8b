import { DescribeAccountCommand, OrganizationsClient } from '@aws-sdk/client-organizations';
import type { Clients } from './client-factory.js';

/** Names are looked up again after this long (an account can be renamed); failures too. */
const cacheMs = 60 * 60 * 1000;
const cache = new Map<string, { name: string | undefined; until: number }>();

/**
 * The name Organizations gives an account, for alerts: DescribeAccount from the hub, which only
 * answers in the management account or a delegated administrator (and only with
 * `organizations:DescribeAccount`, granted when the organization id is set). Anything else
 * (no organization, access denied, throttled) gives undefined: the alert names the id alone.
 * Cached per container for an hour, failures included, so a burst costs one call per account.
 */
export async function accountName(clients: Pick<Clients, 'hub'>, account: string, enabled: boolean, now = Date.now()): Promise<string | undefined> {
  if (!enabled) return undefined;
  const cached = cache.get(account);
  if (cached && cached.until > now) return cached.name;
  let name: string | undefined;
  try {
    const result = await clients.hub(OrganizationsClient).send(new DescribeAccountCommand({ AccountId: account }));
    name = result.Account?.Name;
  } catch {
    name = undefined;
  }
  cache.set(account, { name, until: now + cacheMs });
  return name;
}

/** `111111111111 (payments-prod)`, or the id alone without a name. */
export function accountLabel(account: string, name: string | undefined): string {
  return name ? `${account} (${name})` : account;
}
