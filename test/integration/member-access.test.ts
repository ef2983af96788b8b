// A member account whose execution role cannot be assumed, against moto: the real flows, moto's
// DynamoDB and SNS. moto's STS never refuses an AssumeRole, so STS alone is mocked
// (aws-sdk-client-mock), answering as real STS does for a role that is missing or does not trust
// the caller: AccessDenied "... is not authorized to perform: sts:AssumeRole on resource: <arn>"
// (STS AssumeRole API reference, Errors; IAM troubleshooting "I can't assume a role").
import { GetItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClientFactory, memberRoleArn } from '../../shared/aws/client-factory.js';
import type { Place } from '../../shared/aws/place.js';
import type { Settings } from '../../shared/config/settings.js';
import { runCheck } from '../../shared/checking/checking.js';
import { runOnboarding } from '../../shared/onboarding/onboarding.js';
import { readRecord } from '../../shared/state/instance-record.js';
import { placeAccessKey } from '../../shared/state/place-access.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { launchInstance } from '../harness/fleet.js';
import { deployStack } from '../harness/stack.js';
import { hubPlace } from '../harness/test-clients.js';
import { payloadOf, publishedMessages } from '../simulator/moto-state.js';

const aws = useAws();
const member: Place = { account: '111111111111', region: 'eu-west-1' };
const sts = mockClient(STSClient);
let settings: Settings;

const denied = (roleArn: string) =>
  Object.assign(new Error(`User: arn:aws:sts::123456789012:assumed-role/cwap-test-us-east-1-onboard/cwap-test is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`), {
    name: 'AccessDenied',
    $fault: 'client',
    $metadata: { httpStatusCode: 403 },
  });

function factory(): ClientFactory {
  return new ClientFactory({ hubPlace, roleFor: (place) => memberRoleArn(place, 'cwap-test-member-onboard') });
}

const event = (instanceId: string, place: Place) => ({
  kind: 'state-change' as const,
  instanceId,
  state: 'running',
  time: undefined,
  place,
});

beforeEach(async () => {
  settings = (await deployStack()).settings;
  sts.reset();
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn?: string }) => {
    throw denied(input.RoleArn ?? '');
  });
});
afterEach(() => sts.reset());

describe('a member account whose execution role cannot be assumed', () => {
  it('gets one alert naming the account, region and role, its instances are recorded in error, and the hub place goes on', async () => {
    const roleArn = 'arn:aws:iam::111111111111:role/cwap-test-member-onboard-eu-west-1';
    const results = [];
    for (const id of ['i-0aaaaaaaaaaaaaaa1', 'i-0aaaaaaaaaaaaaaa2', 'i-0aaaaaaaaaaaaaaa1']) {
      // A new factory each time: a new container, as after Lambda's retries or a burst.
      results.push(await runOnboarding(event(id, member), settings, new Date(), factory()));
    }
    expect(results.map((result) => result.action)).toEqual(['unreachable', 'unreachable', 'unreachable']);
    expect(results[0]?.reason).toContain(roleArn);

    const messages = (await publishedMessages(aws.motoUrl, settings.alertTopicArn)).filter((message) => message.subject?.includes('member role'));
    expect(messages).toHaveLength(1);
    expect(messages[0]?.subject).toBe('[cw-agent-autopilot] account 111111111111 eu-west-1: member role not assumable');
    expect(payloadOf(messages[0]!)).toMatchObject({ event: 'member-unreachable', account: '111111111111', region: 'eu-west-1', member: { roleArn }, instanceId: 'i-0aaaaaaaaaaaaaaa1' });

    const memberClients = factory().clients(member);
    for (const id of ['i-0aaaaaaaaaaaaaaa1', 'i-0aaaaaaaaaaaaaaa2']) {
      const record = await readRecord(memberClients, settings.stateTable, id);
      expect(record).toMatchObject({ recordKey: `111111111111:eu-west-1:${id}`, account: '111111111111', region: 'eu-west-1', status: 'error' });
      expect(record?.lastError).toContain(roleArn);
    }
    // A check of that place is handled the same way, without another alert.
    expect((await runCheck({ instanceId: 'i-0aaaaaaaaaaaaaaa2', attempt: 1, place: member }, settings, new Date(), factory())).action).toBe('unreachable');
    expect((await publishedMessages(aws.motoUrl, settings.alertTopicArn)).filter((message) => message.subject?.includes('member role'))).toHaveLength(1);

    // The hub's own place needs no AssumeRole and is not affected.
    const own = await launchInstance({ os: 'linux' });
    const result = await runOnboarding(event(own.instanceId, hubPlace), settings, new Date(), factory());
    expect(result.action).toBe('onboard');
    expect(sts.commandCalls(AssumeRoleCommand).map((call) => call.args[0].input.RoleArn)).not.toContain(memberRoleArn(hubPlace, 'cwap-test-member-onboard'));
  });

  it('once the role works again the place is recorded reachable, so a later failure alerts anew', async () => {
    await runOnboarding(event('i-0bbbbbbbbbbbbbbb1', member), settings, new Date(), factory());
    sts.reset();
    sts.on(AssumeRoleCommand).resolves({
      Credentials: { AccessKeyId: 'AKIAMEMBER', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date(Date.now() + 3600_000) },
    });
    await runOnboarding(event('i-0bbbbbbbbbbbbbbb1', member), settings, new Date(), factory()).catch(() => undefined);
    const item = await new DynamoDBClient(localClientConfig()).send(
      new GetItemCommand({ TableName: settings.stateTable, Key: { recordKey: { S: placeAccessKey(member) } }, ConsistentRead: true }),
    );
    expect(item.Item?.status?.S).toBe('reachable');

    sts.reset();
    sts.on(AssumeRoleCommand).callsFake((input: { RoleArn?: string }) => {
      throw denied(input.RoleArn ?? '');
    });
    await runOnboarding(event('i-0bbbbbbbbbbbbbbb2', member), settings, new Date(), factory());
    expect((await publishedMessages(aws.motoUrl, settings.alertTopicArn)).filter((message) => message.subject?.includes('member role'))).toHaveLength(2);
  });

  it('one factory assumes a member role once for a burst of instances in that place', async () => {
    sts.reset();
    sts.on(AssumeRoleCommand).resolves({
      Credentials: { AccessKeyId: 'AKIAMEMBER', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date(Date.now() + 3600_000) },
    });
    const shared = factory();
    await Promise.all(['i-0ccccccccccccccc1', 'i-0ccccccccccccccc2', 'i-0ccccccccccccccc3'].map((id) => runOnboarding(event(id, member), settings, new Date(), shared).catch(() => undefined)));
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(1);
    expect(shared.assumeRoleCalls).toBe(1);
  });
});
