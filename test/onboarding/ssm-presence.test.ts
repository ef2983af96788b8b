// What Systems Manager says of instances it has never heard of: an empty list, or (the API
// reference's "If you specify a node ID that isn't valid ... you receive an error") InvalidInstanceId.
// Either way the instance is NotRegistered, and its neighbours in a batch are still read.
import { beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeInstanceInformationCommand, SSMClient, type DescribeInstanceInformationCommandInput } from '@aws-sdk/client-ssm';
import { describeInstanceInformation, ssmPresence } from '../../shared/onboarding/ssm-presence.js';
import { testClients } from '../harness/test-clients.js';

const clients = testClients();

const ssm = mockClient(SSMClient);
const unknown = 'i-0ffffffffffffffff';

function invalidInstanceId(): Error {
  return Object.assign(new Error('Instance ids not valid'), { name: 'InvalidInstanceId', $fault: 'client' });
}

/** SSM as it would answer if unknown ids make the whole call fail. */
function ssmThatRefusesUnknownIds(registered: string[]): void {
  ssm.on(DescribeInstanceInformationCommand).callsFake((input: DescribeInstanceInformationCommandInput) => {
    const wanted = input.Filters?.find((filter) => filter.Key === 'InstanceIds')?.Values ?? [];
    if (wanted.some((id) => !registered.includes(id))) throw invalidInstanceId();
    return { InstanceInformationList: wanted.map((id) => ({ InstanceId: id, PingStatus: 'Online', PlatformType: 'Linux' })) };
  });
}

beforeEach(() => {
  ssm.reset();
});

describe('an instance SSM has never heard of', () => {
  it('is NotRegistered when SSM answers InvalidInstanceId for it', async () => {
    ssmThatRefusesUnknownIds([]);
    expect(await ssmPresence(clients, unknown)).toMatchObject({ pingStatus: 'NotRegistered' });
  });

  it('does not hide its neighbours in a batch: the batch is halved until the unknown id stands alone', async () => {
    const registered = Array.from({ length: 7 }, (_, n) => `i-0${String(n).padStart(16, '0')}`);
    ssmThatRefusesUnknownIds(registered);
    const presence = await describeInstanceInformation(clients, [...registered.slice(0, 3), unknown, ...registered.slice(3)]);
    expect(presence.get(unknown)?.pingStatus).toBe('NotRegistered');
    for (const id of registered) expect(presence.get(id)?.pingStatus, id).toBe('Online');
    // The 8 refused; its halves: 4 with the unknown id (refused) and 4 read; then 2 read and 2
    // refused; then 1 read and the unknown one alone (refused): 7 calls in all.
    expect(ssm.commandCalls(DescribeInstanceInformationCommand)).toHaveLength(7);
  });

  it('other errors still fail the read', async () => {
    ssm.on(DescribeInstanceInformationCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException', $fault: 'client' }));
    await expect(ssmPresence(clients, unknown)).rejects.toThrow('denied');
    await expect(describeInstanceInformation(clients, [unknown, 'i-00000000000000001'])).rejects.toThrow('denied');
  });
});
