import { randomUUID } from 'node:crypto';
import type { EventBridgeEvent } from 'aws-lambda';
import { DescribeImagesCommand, EC2Client, RunInstancesCommand, type Instance, type _InstanceType, type Tag } from '@aws-sdk/client-ec2';
import {
  AddRoleToInstanceProfileCommand,
  AttachRolePolicyCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  IAMClient,
} from '@aws-sdk/client-iam';
import type { OsFamily } from '../../shared/agent-config.js';
import type { Place } from '../../shared/aws/place.js';
import { localClientConfig, type LocalClientConfig } from './client-config.js';
import { testAccountId, testRegion } from './stack.js';

/** Options of {@link launchInstance}. */
export interface LaunchOptions {
  os: OsFamily;
  tags?: Record<string, string>;
  /** Instance profile to launch with (name). Default: none. */
  profileName?: string;
  /** Default `t3.micro`. */
  instanceType?: _InstanceType;
  endpoint?: string;
  /** Another account and region to launch in: its region and that account's credentials. Default moto's account in us-east-1. */
  in?: AccountRegion;
}

/** An account and region the harness acts in: the region, and credentials moto serves as that account. */
export interface AccountRegion {
  region: string;
  credentials: LocalClientConfig['credentials'] & { sessionToken?: string };
}

/** Client settings for harness calls at `endpoint`, in another account and region when given. */
function configIn(endpoint: string | undefined, where: AccountRegion | undefined): LocalClientConfig {
  const config = localClientConfig(endpoint);
  return where ? { ...config, region: where.region, credentials: where.credentials } : config;
}

/** An instance launched in moto. */
export interface LaunchedInstance {
  instanceId: string;
  os: OsFamily;
  imageId: string;
  /** As RunInstances returned it (moto: `Platform` 'windows' or absent, `PlatformDetails` empty). */
  instance: Instance;
}

// Images of moto's built-in catalogue, by OS; the catalogue is the same after every reset.
const imageCache = new Map<string, Promise<Record<OsFamily, string>>>();

/**
 * A Linux and a Windows AMI from moto's catalogue. Linux: an Amazon Linux 2023 x86_64 image, whose
 * `Platform` is absent as on AWS (some of moto's Linux images say `Platform: "Linux/UNIX"`,
 * which AWS never does). Windows: Windows Server 2016 Base (`Platform: "windows"`).
 */
export function testImages(endpoint?: string, where?: AccountRegion): Promise<Record<OsFamily, string>> {
  const config = configIn(endpoint, where);
  // moto's catalogue is per region (the same images in every account).
  const cacheKey = `${config.endpoint} ${config.region}`;
  const cached = imageCache.get(cacheKey);
  if (cached) return cached;
  const lookup = (async () => {
    const ec2 = new EC2Client(config);
    try {
      const find = async (namePattern: string, platformIs: (platform: string | undefined) => boolean) => {
        const result = await ec2.send(new DescribeImagesCommand({ Filters: [{ Name: 'name', Values: [namePattern] }] }));
        const image = (result.Images ?? []).find((candidate) => platformIs(candidate.Platform) && candidate.ImageId);
        if (!image?.ImageId) throw new Error(`no moto image matches ${namePattern}`);
        return image.ImageId;
      };
      return {
        linux: await find('al2023-ami-2023*-x86_64', (platform) => platform === undefined),
        windows: await find('Windows_Server-2016-English-Full-Base-*', (platform) => platform === 'windows'),
      };
    } finally {
      ec2.destroy();
    }
  })();
  lookup.catch(() => imageCache.delete(cacheKey));
  imageCache.set(cacheKey, lookup);
  return lookup;
}

/**
 * Launches one running instance in moto.
 *
 * @example
 * const { instanceId } = await launchInstance({ os: 'windows', tags: { team: 'web' } });
 */
export async function launchInstance(options: LaunchOptions): Promise<LaunchedInstance> {
  const config = configIn(options.endpoint, options.in);
  const imageId = (await testImages(config.endpoint, options.in))[options.os];
  const tags: Tag[] = Object.entries(options.tags ?? {}).map(([Key, Value]) => ({ Key, Value }));
  const ec2 = new EC2Client(config);
  try {
    const result = await ec2.send(
      new RunInstancesCommand({
        ImageId: imageId,
        InstanceType: options.instanceType ?? 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        ...(options.profileName ? { IamInstanceProfile: { Name: options.profileName } } : {}),
        ...(tags.length > 0 ? { TagSpecifications: [{ ResourceType: 'instance', Tags: tags }] } : {}),
      }),
    );
    const instance = result.Instances?.[0];
    if (!instance?.InstanceId) throw new Error('RunInstances returned no instance');
    return { instanceId: instance.InstanceId, os: options.os, imageId, instance };
  } finally {
    ec2.destroy();
  }
}

/** A workload's own instance profile. */
export interface WorkloadProfile {
  profileName: string;
  profileArn: string;
  roleName: string;
  roleArn: string;
}

/**
 * Creates an instance profile of a workload's own (role trusted by EC2, with the given managed
 * policies and none of the CloudWatch ones unless asked), like the profiles the product must
 * not replace.
 *
 * @example
 * const web = await createWorkloadProfile('web-app', { policies: ['arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess'] });
 * await launchInstance({ os: 'linux', profileName: web.profileName });
 */
export async function createWorkloadProfile(
  name: string,
  options: { policies?: string[]; endpoint?: string; in?: AccountRegion } = {},
): Promise<WorkloadProfile> {
  const iam = new IAMClient(configIn(options.endpoint, options.in));
  try {
    const role = await iam.send(
      new CreateRoleCommand({
        RoleName: name,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        }),
      }),
    );
    for (const policyArn of options.policies ?? []) {
      await iam.send(new AttachRolePolicyCommand({ RoleName: name, PolicyArn: policyArn }));
    }
    const profile = await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: name }));
    await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: name, RoleName: name }));
    return {
      profileName: name,
      profileArn: profile.InstanceProfile?.Arn ?? '',
      roleName: name,
      roleArn: role.Role?.Arn ?? '',
    };
  } finally {
    iam.destroy();
  }
}

/** EC2 instance states, as the state-change event names them. */
export type InstanceState = 'pending' | 'running' | 'stopping' | 'stopped' | 'shutting-down' | 'terminated';

/** The detail of an "EC2 Instance State-change Notification". */
export interface InstanceStateChangeDetail {
  'instance-id': string;
  state: InstanceState;
}

/** An EventBridge "EC2 Instance State-change Notification" event. */
export type InstanceStateChangeEvent = EventBridgeEvent<'EC2 Instance State-change Notification', InstanceStateChangeDetail>;

/**
 * The event EventBridge delivers when an instance changes state, shaped as AWS sends it. `place`
 * is the instance's account and region (default moto's account in the tests' region): an event a
 * member forwards to the hub bus keeps the member's `account` and `region`.
 *
 * @example
 * await handler(stateChangeEvent(instanceId, 'running'), context);
 */
export function stateChangeEvent(
  instanceId: string,
  state: InstanceState,
  time: Date = new Date(),
  place: Place = { account: testAccountId, region: testRegion },
): InstanceStateChangeEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'EC2 Instance State-change Notification',
    source: 'aws.ec2',
    account: place.account,
    time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: place.region,
    resources: [`arn:aws:ec2:${place.region}:${place.account}:instance/${instanceId}`],
    detail: { 'instance-id': instanceId, state },
  };
}
