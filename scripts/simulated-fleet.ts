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
import { mockClient } from 'aws-sdk-client-mock';

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
export function generateFleet(size: number, options: { workloadProfiles?: number; now?: Date } = {}): SimulatedFleet {
  const workloadProfiles = options.workloadProfiles ?? 20;
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
      az: `us-east-1${'abc'[i % 3]}`,
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
  return { accountId: '123456789012', instances, profiles, rolePolicies, table: 'cwap-bench-records' };
}

/** What the fake counted, and how to stop it. */
export interface FakeAws {
  calls: Record<string, number>;
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

/**
 * Installs the fake on every SDK client of the process (module-level clients included).
 *
 * @example
 * const aws = installFakeAws(generateFleet(10_000)); ...; aws.calls.GetMetricData; aws.restore();
 */
export function installFakeAws(fleet: SimulatedFleet, now = new Date(), latencyMs = 0): FakeAws {
  const calls: Record<string, number> = {};
  let failing: { api: string; errorName: string } | undefined;
  const count = async (api: string) => {
    calls[api] = (calls[api] ?? 0) + 1;
    if (latencyMs) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    if (failing?.api === api) throw Object.assign(new Error(`simulated ${failing.errorName} on ${api}`), { name: failing.errorName });
  };
  const byId = new Map(fleet.instances.map((instance) => [instance.instanceId, instance]));
  const profileArn = (name: string) => `arn:aws:iam::${fleet.accountId}:instance-profile/${name}`;

  const ec2 = mockClient(EC2Client);
  ec2.on(DescribeInstancesCommand).callsFake(async (input) => {
    await count('DescribeInstances');
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
  ec2.on(DescribeIamInstanceProfileAssociationsCommand).callsFake(async (input) => {
    await count('DescribeIamInstanceProfileAssociations');
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
  iam.on(GetInstanceProfileCommand).callsFake(async (input) => {
    await count('GetInstanceProfile');
    const role = fleet.profiles.get(input.InstanceProfileName ?? '');
    if (!role) throw Object.assign(new Error('not found'), { name: 'NoSuchEntity' });
    return { InstanceProfile: { InstanceProfileName: input.InstanceProfileName, Roles: [{ RoleName: role }] } };
  });
  iam.on(ListAttachedRolePoliciesCommand).callsFake(async (input) => {
    await count('ListAttachedRolePolicies');
    const { items, next } = page(fleet.rolePolicies.get(input.RoleName ?? '') ?? [], input.MaxItems ?? 100, input.Marker);
    return { AttachedPolicies: items.map((arn) => ({ PolicyArn: arn, PolicyName: arn.split('/').at(-1) })), IsTruncated: next !== undefined, Marker: next };
  });

  const ssm = mockClient(SSMClient);
  ssm.on(DescribeInstanceInformationCommand).callsFake(async (input) => {
    await count('DescribeInstanceInformation');
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
  cloudwatch.on(GetMetricDataCommand).callsFake(async (input) => {
    await count('GetMetricData');
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
    await count('BatchGetItem');
    const request = input.RequestItems?.[fleet.table];
    if (!request) throw Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' });
    const keys = request.Keys ?? [];
    if (keys.length > 100) throw tooMany('Keys', 100, keys.length);
    const items = keys.flatMap((key: Record<string, unknown>) => {
      const record = byId.get(String(key.recordKey).split(':')[2] ?? '')?.record;
      return record ? [record] : [];
    });
    return { Responses: { [fleet.table]: items }, UnprocessedKeys: {} };
  });

  return {
    calls,
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
