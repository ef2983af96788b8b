// An in-process AWS fake at the SDK level (aws-sdk-client-mock) for fleets too big for moto: it
// answers the audit's read APIs from a generated fleet, enforces the page sizes AWS enforces
// (so a call-count regression shows up), counts every call by API, and can fail an API on demand.
import {
  DescribeIamInstanceProfileAssociationsCommand,
  DescribeInstancesCommand,
  EC2Client,
  type Filter,
  type Instance,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, SSMClient, type InstanceInformationStringFilter } from '@aws-sdk/client-ssm';
import { CloudWatchClient, GetMetricDataCommand, type Dimension, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import { BatchGetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { placeLabel, type Place } from '../shared/aws/place.js';

/** One simulated instance and the truth about its monitoring. */
export interface SimulatedInstance {
  instanceId: string;
  os: 'linux' | 'windows';
  az: string;
  tags: Record<string, string>;
  profileName: string | undefined;
  pingStatus: 'Online' | 'ConnectionLost' | undefined;
  /** Minutes since each expected series' last datapoint (undefined: none). */
  lastMetricMinutesAgo: number | undefined;
  record: Record<string, unknown> | undefined;
}

export interface SimulatedFleet {
  accountId: string;
  region: string;
  instances: SimulatedInstance[];
  /** Profile name -> role name; role name -> attached policy ARNs. */
  profiles: Map<string, string>;
  rolePolicies: Map<string, string[]>;
  table: string;
}

const agentPolicies = ['arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy', 'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore'];

/**
 * A deterministic mixed fleet: mostly healthy, with every audit status represented.
 * `workloadProfiles` distinct workload profiles (their roles alternate compliant / lacking a policy).
 */
export function generateFleet(size: number, options: { workloadProfiles?: number; now?: Date; accountId?: string; region?: string } = {}): SimulatedFleet {
  const workloadProfiles = options.workloadProfiles ?? 20;
  const accountId = options.accountId ?? '123456789012';
  const region = options.region ?? 'us-east-1';
  const now = options.now ?? new Date();
  const profiles = new Map<string, string>([['cwap-bench-agent', 'cwap-bench-agent']]);
  const rolePolicies = new Map<string, string[]>([['cwap-bench-agent', agentPolicies]]);
  for (let p = 0; p < workloadProfiles; p++) {
    profiles.set(`workload-${p}`, `workload-${p}-role`);
    rolePolicies.set(`workload-${p}-role`, p % 4 === 3 ? [agentPolicies[1] as string] : [...agentPolicies, 'arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess']);
  }
  const instances: SimulatedInstance[] = [];
  for (let i = 0; i < size; i++) {
    const instanceId = `i-${(0x10000000000 + i).toString(16).padStart(17, '0')}`;
    const kind = i % 50; // 0..39 healthy, then one of each other case
    const os = i % 5 === 0 ? 'windows' : 'linux';
    const profileName = kind === 40 ? undefined : kind === 41 ? 'workload-3' : i % 3 === 0 ? `workload-${(i % workloadProfiles) - ((i % workloadProfiles) % 4 === 3 ? 1 : 0)}` : 'cwap-bench-agent';
    const launch = new Date(now.getTime() - 86_400_000).toISOString();
    instances.push({
      instanceId,
      os,
      az: `${region}${'abc'[i % 3]}`,
      tags: { Name: `host-${i}`, ...(kind === 42 ? { 'cw-autopilot:skip': 'true' } : {}), team: i % 2 ? 'web' : 'data' },
      profileName,
      pingStatus: kind === 43 ? 'ConnectionLost' : kind === 44 ? undefined : 'Online',
      lastMetricMinutesAgo: kind < 40 ? 2 : kind === 45 ? 90 : undefined,
      record:
        kind === 46 || kind === 40
          ? undefined
          : { instanceId, status: kind < 40 ? 'healthy' : 'alerted', launchTime: launch, updatedAt: launch, commandId: `cmd-${i}`, history: [] },
    });
  }
  return { accountId, region, instances, profiles, rolePolicies, table: 'cwap-bench-records' };
}

/** What the fake counted, and how to stop it. */
export interface FakeAws {
  /** Calls by API (AssumeRole included, in an organization). */
  calls: Record<string, number>;
  /** Calls by place (`account/region`) and API; the state table's BatchGetItem counts for the place of its keys. */
  callsByPlace: Record<string, Record<string, number>>;
  /** Make every call of an API fail (as after the SDK's retries) with this error name. */
  failApi(api: string | undefined, errorName?: string): void;
  restore(): void;
}

function tooMany(name: string, max: number, got: number): Error {
  return Object.assign(new Error(`${name}: ${got} exceeds the maximum ${max}`), { name: 'ValidationException' });
}

function matches(instance: SimulatedInstance, filters: Filter[]): boolean {
  return filters.every((filter) => {
    const values = filter.Values ?? [];
    if (filter.Name === 'instance-state-name') return values.includes('running');
    if (filter.Name === 'instance-id') return values.includes(instance.instanceId);
    if (filter.Name === 'tag-key') return values.some((key) => key in instance.tags);
    if (filter.Name?.startsWith('tag:')) return values.includes(instance.tags[filter.Name.slice(4)] ?? '\u0000');
    return true;
  });
}

function page<T>(items: T[], maxResults: number, token: string | undefined): { items: T[]; next: string | undefined } {
  const from = token ? Number(token) : 0;
  const to = from + maxResults;
  return { items: items.slice(from, to), next: to < items.length ? String(to) : undefined };
}

/** The access key the fake's AssumeRole hands out for an account: how it tells the account of a client. */
const memberKey = (account: string) => `ASIAFAKE${account}`;

/** Options of {@link installOrganizationFakeAws}. */
export interface OrganizationFakeOptions {
  /** The account of the process's own credentials (the hub's). */
  hubAccount: string;
  now?: Date;
  latencyMs?: number;
  /** Role ARNs whose AssumeRole is refused (AccessDenied), as in an account without the member stack. */
  refusedRoles?: (roleArn: string) => boolean;
}

/**
 * Installs the fake on every SDK client of the process (module-level clients included).
 *
 * @example
 * const aws = installFakeAws(generateFleet(10_000)); ...; aws.calls.GetMetricData; aws.restore();
 */
export function installFakeAws(fleet: SimulatedFleet, now = new Date(), latencyMs = 0): FakeAws {
  return installFake(async () => fleet, () => fleet, now, latencyMs);
}

/**
 * The fake for a hub auditing several accounts and regions: each client is served the fleet of its
 * own place, told by its region and by its credentials (the hub's own, or the account-specific key
 * the fake's STS AssumeRole returned for a role of that account). A place without a fleet has no
 * instances.
 *
 * @example
 * const aws = installOrganizationFakeAws([generateFleet(500, { accountId: '111111111111', region: 'eu-west-1' })], { hubAccount: '123456789012' });
 */
export function installOrganizationFakeAws(fleets: SimulatedFleet[], options: OrganizationFakeOptions): FakeAws {
  const now = options.now ?? new Date();
  const byPlace = new Map(fleets.map((fleet) => [placeLabel({ account: fleet.accountId, region: fleet.region }), fleet]));
  const empty = (place: Place): SimulatedFleet => ({ accountId: place.account, region: place.region, instances: [], profiles: new Map(), rolePolicies: new Map(), table: fleets[0]?.table ?? 'cwap-bench-records' });
  const fleetAt = (place: Place) => byPlace.get(placeLabel(place)) ?? empty(place);
  const fake = installFake(
    async (client) => {
      const config = (client as { config: { region: () => Promise<string>; credentials: () => Promise<{ accessKeyId: string }> } }).config;
      const [region, credentials] = await Promise.all([config.region(), config.credentials()]);
      const account = credentials.accessKeyId.startsWith('ASIAFAKE') ? credentials.accessKeyId.slice('ASIAFAKE'.length) : options.hubAccount;
      return fleetAt({ account, region });
    },
    (recordKey) => {
      const [account = '', region = ''] = recordKey.split(':');
      return fleetAt({ account, region });
    },
    now,
    options.latencyMs ?? 0,
  );
  const sts = mockClient(STSClient);
  sts.on(AssumeRoleCommand).callsFake(async (input) => {
    await fake.count('AssumeRole', options.hubAccount, 'global');
    const roleArn = String(input.RoleArn);
    if (options.refusedRoles?.(roleArn)) {
      throw Object.assign(new Error(`User is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`), { name: 'AccessDenied' });
    }
    const account = roleArn.split(':')[4] ?? '';
    return { Credentials: { AccessKeyId: memberKey(account), SecretAccessKey: 'fake', SessionToken: 'fake', Expiration: new Date(Date.now() + 3600_000) } };
  });
  return {
    ...fake,
    restore() {
      fake.restore();
      sts.restore();
    },
  };
}

/** The fake, serving each client (or record key) the fleet `fleetOf` (`fleetOfKey`) says. */
function installFake(
  fleetOf: (client: unknown) => Promise<SimulatedFleet>,
  fleetOfKey: (recordKey: string) => SimulatedFleet,
  now: Date,
  latencyMs: number,
): FakeAws & { count: (api: string, account: string, region: string) => Promise<void> } {
  const calls: Record<string, number> = {};
  const callsByPlace: Record<string, Record<string, number>> = {};
  let failing: { api: string; errorName: string } | undefined;
  const count = async (api: string, account: string, region: string) => {
    calls[api] = (calls[api] ?? 0) + 1;
    const place = (callsByPlace[`${account}/${region}`] ??= {});
    place[api] = (place[api] ?? 0) + 1;
    if (latencyMs) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    if (failing?.api === api) throw Object.assign(new Error(`simulated ${failing.errorName} on ${api}`), { name: failing.errorName });
  };
  const ids = new WeakMap<SimulatedFleet, Map<string, SimulatedInstance>>();
  const byIdOf = (fleet: SimulatedFleet) => {
    let byId = ids.get(fleet);
    if (!byId) ids.set(fleet, (byId = new Map(fleet.instances.map((instance) => [instance.instanceId, instance]))));
    return byId;
  };
  const profileArnOf = (fleet: SimulatedFleet) => (name: string) => `arn:aws:iam::${fleet.accountId}:instance-profile/${name}`;
  /** The fleet of the calling client, counted as one call of `api` there. */
  const served = async (api: string, getClient: () => unknown) => {
    const fleet = await fleetOf(getClient());
    await count(api, fleet.accountId, fleet.region);
    return { fleet, byId: byIdOf(fleet), profileArn: profileArnOf(fleet) };
  };

  const ec2 = mockClient(EC2Client);
  ec2.on(DescribeInstancesCommand).callsFake(async (input, getClient) => {
    const { fleet, profileArn } = await served('DescribeInstances', getClient);
    const max = input.MaxResults ?? 1000;
    if (max > 1000) throw tooMany('MaxResults', 1000, max);
    const { items, next } = page(fleet.instances.filter((instance) => matches(instance, input.Filters ?? [])), max, input.NextToken);
    const reservations = [];
    for (let r = 0; r < items.length; r += 10) {
      reservations.push({
        OwnerId: fleet.accountId,
        Instances: items.slice(r, r + 10).map((instance): Instance => ({
          InstanceId: instance.instanceId,
          State: { Name: 'running' },
          // AWS reports lower-case "windows" although the SDK's enum says "Windows".
          Platform: instance.os === 'windows' ? ('windows' as Instance['Platform']) : undefined,
          PlatformDetails: instance.os === 'windows' ? 'Windows' : 'Linux/UNIX',
          Placement: { AvailabilityZone: instance.az },
          LaunchTime: new Date(now.getTime() - 86_400_000),
          Tags: Object.entries(instance.tags).map(([Key, Value]) => ({ Key, Value })),
          IamInstanceProfile: instance.profileName ? { Arn: profileArn(instance.profileName) } : undefined,
        })),
      });
    }
    return { Reservations: reservations, NextToken: next };
  });
  ec2.on(DescribeIamInstanceProfileAssociationsCommand).callsFake(async (input, getClient) => {
    const { fleet, profileArn } = await served('DescribeIamInstanceProfileAssociations', getClient);
    const max = input.MaxResults ?? 1000;
    if (max > 1000) throw tooMany('MaxResults', 1000, max);
    const ids = input.Filters?.find((filter: Filter) => filter.Name === 'instance-id')?.Values;
    const associated = fleet.instances.filter((instance) => instance.profileName && (!ids || ids.includes(instance.instanceId)));
    const { items, next } = page(associated, max, input.NextToken);
    return {
      IamInstanceProfileAssociations: items.map((instance) => ({
        InstanceId: instance.instanceId,
        State: 'associated',
        IamInstanceProfile: { Arn: profileArn(instance.profileName as string) },
      })),
      NextToken: next,
    };
  });

  const iam = mockClient(IAMClient);
  iam.on(GetInstanceProfileCommand).callsFake(async (input, getClient) => {
    const { fleet } = await served('GetInstanceProfile', getClient);
    const role = fleet.profiles.get(input.InstanceProfileName ?? '');
    if (!role) throw Object.assign(new Error('not found'), { name: 'NoSuchEntity' });
    return { InstanceProfile: { InstanceProfileName: input.InstanceProfileName, Roles: [{ RoleName: role }] } };
  });
  iam.on(ListAttachedRolePoliciesCommand).callsFake(async (input, getClient) => {
    const { fleet } = await served('ListAttachedRolePolicies', getClient);
    const { items, next } = page(fleet.rolePolicies.get(input.RoleName ?? '') ?? [], input.MaxItems ?? 100, input.Marker);
    return { AttachedPolicies: items.map((arn) => ({ PolicyArn: arn, PolicyName: arn.split('/').at(-1) })), IsTruncated: next !== undefined, Marker: next };
  });

  const ssm = mockClient(SSMClient);
  ssm.on(DescribeInstanceInformationCommand).callsFake(async (input, getClient) => {
    const { fleet, byId } = await served('DescribeInstanceInformation', getClient);
    const max = input.MaxResults ?? 50;
    if (max > 50) throw tooMany('MaxResults', 50, max);
    const ids = input.Filters?.find((filter: InstanceInformationStringFilter) => filter.Key === 'InstanceIds')?.Values;
    const registered = (ids ? ids.map((id: string) => byId.get(id)) : fleet.instances).filter((instance?: SimulatedInstance) => instance?.pingStatus) as SimulatedInstance[];
    const { items, next } = page(registered, max, input.NextToken);
    return {
      InstanceInformationList: items.map((instance) => ({
        InstanceId: instance.instanceId,
        PingStatus: instance.pingStatus,
        PlatformType: instance.os === 'windows' ? 'Windows' : 'Linux',
        AgentVersion: '3.3.1142.0',
        LastPingDateTime: new Date(now.getTime() - 60_000),
      })),
      NextToken: next,
    };
  });

  const cloudwatch = mockClient(CloudWatchClient);
  cloudwatch.on(GetMetricDataCommand).callsFake(async (input, getClient) => {
    const { byId } = await served('GetMetricData', getClient);
    const queries = input.MetricDataQueries ?? [];
    if (queries.length > 500) throw tooMany('MetricDataQueries', 500, queries.length);
    return {
      MetricDataResults: queries.map((query: MetricDataQuery) => {
        const id = query.MetricStat?.Metric?.Dimensions?.find((dimension: Dimension) => dimension.Name === 'InstanceId')?.Value ?? '';
        const minutes = byId.get(id)?.lastMetricMinutesAgo;
        const at = minutes === undefined ? [] : [new Date(now.getTime() - minutes * 60_000)];
        return { Id: query.Id, StatusCode: 'Complete', Timestamps: at, Values: at.map(() => 1) };
      }),
    };
  });

  const dynamodb = mockClient(DynamoDBDocumentClient);
  dynamodb.on(BatchGetCommand).callsFake(async (input) => {
    const keys = (Object.values(input.RequestItems ?? {})[0] as { Keys?: Record<string, unknown>[] } | undefined)?.Keys ?? [];
    // The hub's table: counted for the place its keys are of.
    const fleet = fleetOfKey(String(keys[0]?.recordKey ?? ''));
    await count('BatchGetItem', fleet.accountId, fleet.region);
    const request = input.RequestItems?.[fleet.table];
    if (!request) throw Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' });
    if (keys.length > 100) throw tooMany('Keys', 100, keys.length);
    const items = keys.flatMap((key: Record<string, unknown>) => {
      const record = byIdOf(fleetOfKey(String(key.recordKey))).get(String(key.recordKey).split(':')[2] ?? '')?.record;
      return record ? [record] : [];
    });
    return { Responses: { [fleet.table]: items }, UnprocessedKeys: {} };
  });

  return {
    calls,
    callsByPlace,
    count,
    failApi(api, errorName = 'ThrottlingException') {
      failing = api ? { api, errorName } : undefined;
    },
    restore() {
      for (const mock of [ec2, iam, ssm, cloudwatch, dynamodb]) mock.restore();
    },
  };
}

/** The fewest calls the APIs' page sizes allow for auditing this fleet (all of it, untagged). */
export function minimumCalls(fleet: SimulatedFleet): Record<string, number> {
  const instances = fleet.instances.length;
  const withProfile = fleet.instances.filter((instance) => instance.profileName);
  const profiles = new Set(withProfile.map((instance) => instance.profileName));
  const roles = new Set([...profiles].map((name) => fleet.profiles.get(name as string)));
  return {
    DescribeInstances: Math.max(1, Math.ceil(instances / 1000)),
    DescribeIamInstanceProfileAssociations: Math.max(1, Math.ceil(withProfile.length / 1000)),
    GetInstanceProfile: profiles.size,
    ListAttachedRolePolicies: roles.size,
    DescribeInstanceInformation: Math.ceil(instances / 50),
    GetMetricData: Math.ceil((instances * 2) / 500),
    BatchGetItem: Math.ceil(instances / 100),
  };
}
