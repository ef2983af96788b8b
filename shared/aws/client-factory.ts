import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { MemberAccessError } from '../errors.js';
import { describeError } from './errors.js';
import { partitionOfRegion } from './partitions.js';
import { placeLabel, samePlace, type Place } from './place.js';

/**
 * Where and how a process's SDK clients talk to AWS, when not from the environment: the CLI's
 * `--profile` and `--endpoint-url`, and its retry mode. The functions leave all of it unset.
 */
export interface AwsConnection {
  /** A shared-config profile (credentials and default region), as `AWS_PROFILE` would name it. */
  profile?: string;
  /** Every call goes here (wins over `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`). */
  endpoint?: string;
  /**
   * The SDK's retry mode. Default: the SDK's (`standard`, or `AWS_RETRY_MODE`). The functions keep
   * `standard`: `adaptive` rate-limits a client for the rest of its life after one throttling
   * error, which turns a Lambda's sparse calls into 1-2 s waits each (measured: onboarding 0.8 s
   * -> 65 s with 5% throttling). The audit CLI, a dense scan, asks for `adaptive`.
   */
  retryMode?: 'standard' | 'adaptive';
}

/** What every SDK client is built with: `region`, `credentials`, `maxAttempts`, and the {@link AwsConnection}. */
export interface SdkClientConfig extends AwsConnection {
  region: string;
  maxAttempts: number;
  credentials?: AwsCredentialIdentityProvider;
}

/** An AWS SDK v3 client class (`EC2Client`, `SSMClient`, ...). */
export type SdkClientClass<C> = new (config: SdkClientConfig) => C;

/**
 * The SDK clients one flow uses: `of(EC2Client)` acts in the place the flow works on (through the
 * member account's execution role, unless that place is the hub's own), `hub(SNSClient)` in the
 * hub's account and region (state table, schedules, topic, functions). Clients are built on first
 * use and reused: a module names the client classes it needs, so a function's bundle holds only
 * those (the old module-level clients' tree-shaking, kept).
 */
export interface Clients {
  /** The account and region this flow acts in. */
  readonly place: Place;
  /** The hub's own account and region. */
  readonly hubPlace: Place;
  of<C>(Client: SdkClientClass<C>): C;
  hub<C>(Client: SdkClientClass<C>): C;
}

/** How the factory reaches a place that is not the hub's own. */
export interface ClientFactoryOptions {
  hubPlace: Place;
  /**
   * The role to assume in a place, or undefined to use the caller's own credentials there. The
   * functions assume their member execution role everywhere but in the hub's own place; the CLI
   * assumes a role only in other accounts.
   */
  roleFor: (place: Place) => string | undefined;
  /** RoleSessionName of AssumeRole calls (shown in the member's CloudTrail). */
  sessionName?: string;
  /** Default 5. */
  maxAttempts?: number;
  /** Default: the environment's (see {@link AwsConnection}). */
  connection?: AwsConnection;
}

/** Credentials are renewed this long before they expire. */
const renewBeforeMs = 5 * 60 * 1000;

/**
 * The role ARN of a member execution role: `<memberRoleName>-<region>` in the place's account
 * (the member stack creates one per function and region; IAM names are global to an account).
 *
 * @example
 * memberRoleArn({ account: '111111111111', region: 'eu-west-1' }, 'cwap-prod-member-onboard');
 * // 'arn:aws:iam::111111111111:role/cwap-prod-member-onboard-eu-west-1'
 */
export function memberRoleArn(place: Place, memberRoleName: string): string {
  return `arn:${partitionOfRegion(place.region)}:iam::${place.account}:role/${memberRoleName}-${place.region}`;
}

/**
 * Builds and caches SDK clients per account and region. Assumed-role credentials are cached per
 * place for their lifetime (renewed 5 minutes before they expire), and one AssumeRole in flight is
 * shared by every client of that place: a burst in one account costs one AssumeRole per container.
 *
 * @example
 * const factory = new ClientFactory({ hubPlace, roleFor: (place) => memberRoleArn(place, 'cwap-dev-member-onboard') });
 * const ec2 = factory.clients({ account: '111111111111', region: 'eu-west-1' }).of(EC2Client);
 */
export class ClientFactory {
  readonly hubPlace: Place;
  #options: ClientFactoryOptions;
  #clients = new Map<string, Map<SdkClientClass<unknown>, unknown>>();
  #credentials = new Map<string, AwsCredentialIdentityProvider>();
  #sts: STSClient | undefined;
  #assumeRoleCalls = 0;

  constructor(options: ClientFactoryOptions) {
    this.hubPlace = options.hubPlace;
    this.#options = options;
  }

  /** AssumeRole calls this factory made (for benchmarks and tests). */
  get assumeRoleCalls(): number {
    return this.#assumeRoleCalls;
  }

  /** The clients of one place (default: the hub's). */
  clients(place: Place = this.hubPlace): Clients {
    const hubPlace = this.hubPlace;
    return {
      place,
      hubPlace,
      of: <C>(Client: SdkClientClass<C>) => this.client(Client, place),
      hub: <C>(Client: SdkClientClass<C>) => this.client(Client, hubPlace),
    };
  }

  /** One client of one place, built on first use. */
  client<C>(Client: SdkClientClass<C>, place: Place): C {
    const key = placeLabel(place);
    let byClass = this.#clients.get(key);
    if (!byClass) this.#clients.set(key, (byClass = new Map()));
    let client = byClass.get(Client) as C | undefined;
    if (!client) {
      const credentials = this.#credentialsFor(place);
      client = new Client({ ...this.#baseConfig(place.region), ...(credentials ? { credentials } : {}) });
      byClass.set(Client, client);
    }
    return client;
  }

  /**
   * Resolves the credentials of a place now, so a missing or untrusting execution role is found
   * before anything is changed (a {@link MemberAccessError} naming the account, region and role).
   */
  async verifyAccess(place: Place): Promise<void> {
    const provider = this.#credentialsFor(place);
    if (provider) await provider();
  }

  /**
   * The role this factory assumes to act in a place; undefined when it uses its own credentials
   * there (the hub's place, or where `roleFor` says so).
   *
   * @throws whatever `roleFor` throws for a place it cannot reach (e.g. a {@link MemberAccessError}).
   */
  roleArnFor(place: Place): string | undefined {
    return samePlace(place, this.hubPlace) ? undefined : this.#options.roleFor(place);
  }

  #baseConfig(region: string): SdkClientConfig {
    const { profile, endpoint, retryMode } = this.#options.connection ?? {};
    return {
      region,
      maxAttempts: this.#options.maxAttempts ?? 5,
      ...(profile ? { profile } : {}),
      ...(endpoint ? { endpoint } : {}),
      ...(retryMode ? { retryMode } : {}),
    };
  }

  #credentialsFor(place: Place): AwsCredentialIdentityProvider | undefined {
    const roleArn = this.roleArnFor(place);
    if (!roleArn) return undefined;
    const key = placeLabel(place);
    let provider = this.#credentials.get(key);
    if (!provider) {
      provider = this.#assumingRole(place, roleArn);
      this.#credentials.set(key, provider);
    }
    return provider;
  }

  #assumingRole(place: Place, roleArn: string): AwsCredentialIdentityProvider {
    let current: Promise<AwsCredentialIdentity> | undefined;
    const assume = async (): Promise<AwsCredentialIdentity> => {
      this.#sts ??= new STSClient(this.#baseConfig(this.hubPlace.region));
      this.#assumeRoleCalls += 1;
      try {
        const result = await this.#sts.send(
          new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: this.#options.sessionName ?? 'cw-agent-autopilot' }),
        );
        const c = result.Credentials;
        if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials');
        return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration };
      } catch (error) {
        throw new MemberAccessError(
          `account ${place.account} in ${place.region}: cannot assume ${roleArn} (${describeError(error)}); is the member stack deployed there, and does its role trust this function's role?`,
          { cause: error, place, roleArn },
        );
      }
    };
    return async () => {
      const pending = current;
      if (pending) {
        const credentials = await pending.catch(() => undefined);
        if (credentials && (!credentials.expiration || credentials.expiration.getTime() - Date.now() > renewBeforeMs)) return credentials;
        // A failed or expiring one is replaced, once, by whichever caller gets here first.
        if (current !== pending) return current ?? assume();
      }
      current = assume();
      current.catch(() => undefined);
      return current;
    };
  }
}

const documentClients = new WeakMap<DynamoDBClient, DynamoDBDocumentClient>();

/** The hub's state table client (the DynamoDB document client, `undefined` attributes dropped). */
export function stateTableClient(clients: Pick<Clients, 'hub'>): DynamoDBDocumentClient {
  const raw = clients.hub(DynamoDBClient);
  let client = documentClients.get(raw);
  if (!client) {
    client = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
    documentClients.set(raw, client);
  }
  return client;
}
