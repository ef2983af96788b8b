import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClientFactory, memberRoleArn } from '../../shared/aws/client-factory.js';
import { MemberAccessError } from '../../shared/errors.js';
import { scheduleName, placeInput } from '../../shared/aws/schedules.js';
import { shortRegion } from '../../shared/aws/place.js';

const hub = { account: '123456789012', region: 'us-east-1' };
const member = { account: '222222222222', region: 'eu-west-1' };
const sts = mockClient(STSClient);
const ec2 = mockClient(EC2Client);

const credentials = (key: string, expiresInMs: number) => ({
  Credentials: { AccessKeyId: key, SecretAccessKey: 's', SessionToken: 't', Expiration: new Date(Date.now() + expiresInMs) },
});
const factory = () => new ClientFactory({ hubPlace: hub, roleFor: (place) => memberRoleArn(place, 'cwap-dev-member-onboard') });

beforeEach(() => {
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
});
afterEach(() => {
  sts.reset();
  ec2.reset();
  vi.unstubAllEnvs();
});

describe('the client factory', () => {
  it('acts in the hub place with its own credentials: no AssumeRole', async () => {
    sts.on(AssumeRoleCommand).resolves(credentials('AKIAMEMBER', 3600_000));
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIAHUBOWN');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'hub-secret');
    const clients = factory().clients();
    const own = await clients.of(EC2Client).config.credentials();
    expect(own.accessKeyId).toBe('AKIAHUBOWN');
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(0);
    expect(await clients.of(EC2Client).config.region()).toBe('us-east-1');
  });

  it('acts in a member place through its execution role, in its region, assuming it once for many calls and clients', async () => {
    sts.on(AssumeRoleCommand).resolves(credentials('AKIAMEMBER', 3600_000));
    const made = factory();
    const clients = made.clients(member);
    // The mocked send skips signing: resolve the credentials as signing each request would.
    await Promise.all([1, 2, 3].map(() => clients.of(EC2Client).config.credentials()));
    await made.clients(member).of(STSClient).config.credentials();
    expect(sts.commandCalls(AssumeRoleCommand).map((call) => call.args[0].input.RoleArn)).toEqual(['arn:aws:iam::222222222222:role/cwap-dev-member-onboard-eu-west-1']);
    expect(made.assumeRoleCalls).toBe(1);
    expect(clients.of(EC2Client)).toBe(made.clients(member).of(EC2Client));
    expect(await clients.of(EC2Client).config.region()).toBe('eu-west-1');
    const used = await clients.of(EC2Client).config.credentials();
    expect(used.accessKeyId).toBe('AKIAMEMBER');
  });

  it('renews credentials that expire within 5 minutes, and keeps ones that do not', async () => {
    sts.on(AssumeRoleCommand).resolvesOnce(credentials('AKIAFIRST', 4 * 60_000)).resolves(credentials('AKIASECOND', 3600_000));
    const clients = factory().clients(member);
    const provider = clients.of(EC2Client).config.credentials;
    // The first ones expire within 5 minutes: replaced at once, and the new ones kept.
    expect((await provider()).accessKeyId).toBe('AKIASECOND');
    expect((await provider()).accessKeyId).toBe('AKIASECOND');
    expect((await clients.of(EC2Client).config.credentials()).accessKeyId).toBe('AKIASECOND');
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(2);
  });

  it('turns a refused AssumeRole into a MemberAccessError naming the account, region and role, and tries again next time', async () => {
    sts.on(AssumeRoleCommand).rejects(Object.assign(new Error('not authorized to perform: sts:AssumeRole'), { name: 'AccessDenied' }));
    const made = factory();
    const failure = await made.verifyAccess(member).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(MemberAccessError);
    expect((failure as MemberAccessError).place).toEqual(member);
    expect((failure as MemberAccessError).roleArn).toBe('arn:aws:iam::222222222222:role/cwap-dev-member-onboard-eu-west-1');
    expect((failure as Error).message).toMatch(/^account 222222222222 in eu-west-1: cannot assume arn:aws:iam::222222222222:role\/cwap-dev-member-onboard-eu-west-1 \(AccessDenied: /);
    await expect(made.clients(member).of(EC2Client).config.credentials()).rejects.toBeInstanceOf(MemberAccessError);
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(2);
  });
});

describe('schedules of a member place', () => {
  const settings = { resourcePrefix: 'cwap-dev' };
  it('name the account and the short region, and carry them in the input; the hub place keeps the old names and inputs', () => {
    expect(scheduleName({ place: member, hubPlace: hub }, settings, 'check', 'i-0123456789abcdef0', 2)).toBe('cwap-dev-check-222222222222-euw1-i-0123456789abcdef0-2');
    expect(scheduleName({ place: hub, hubPlace: hub }, settings, 'check', 'i-0123456789abcdef0', 2)).toBe('cwap-dev-check-i-0123456789abcdef0-2');
    expect(placeInput({ place: member, hubPlace: hub })).toEqual(member);
    expect(placeInput({ place: hub, hubPlace: hub })).toEqual({});
    // Different regions of one account never share a name.
    expect(new Set(['us-east-1', 'us-east-2', 'us-west-1', 'eu-west-1', 'eu-west-3', 'ap-southeast-1', 'ap-south-1', 'ap-northeast-1', 'us-gov-west-1', 'eu-central-1', 'ca-central-1'].map(shortRegion)).size).toBe(11);
    expect(scheduleName({ place: { account: '222222222222', region: 'ap-southeast-2' }, hubPlace: hub }, { resourcePrefix: 'cwap-production-12345678' }, 'onboard', 'i-0123456789abcdef0', 10).length).toBeLessThanOrEqual(64);
  });
});

describe("a member place's agent profile", () => {
  it('is the one the member stack creates in that region; the hub place keeps the hub stack\'s', async () => {
    const { readFileSync } = await import('node:fs');
    const { agentProfileNameIn } = await import('../../shared/onboarding/instance-profiles.js');
    const template = JSON.parse(readFileSync(new URL('../../member/member-stack.json', import.meta.url), 'utf8')) as {
      Resources: Record<string, { Type: string; Properties: { InstanceProfileName?: { 'Fn::Sub': string } } }>;
    };
    const profile = Object.values(template.Resources).find((resource) => resource.Type === 'AWS::IAM::InstanceProfile');
    const rendered = profile?.Properties.InstanceProfileName?.['Fn::Sub'].replace('${Stage}', 'dev').replace('${AWS::Region}', member.region);
    const settings = { resourcePrefix: 'cwap-dev', agentProfileName: 'cwap-dev-us-east-1-agent' };
    expect(agentProfileNameIn({ place: member, hubPlace: hub }, settings)).toBe(rendered);
    expect(agentProfileNameIn({ place: hub, hubPlace: hub }, settings)).toBe('cwap-dev-us-east-1-agent');
  });
});
