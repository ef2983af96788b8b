// A hub covering 3 accounts x 2 regions (its own place among them) through the member stacks, with
// the real handlers: each function runs with its own execution role and assumes its own member
// role in a member's account and region. Instances everywhere, Linux and Windows, two of them faulty,
// and two with the same instance id in two accounts. A fourth account cannot be reached: no member
// stack in one region, a stack trusting another hub in the other.
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { beforeAll, describe, expect, it } from 'vitest';
import { placeLabel, samePlace, type Place } from '../../shared/aws/place.js';
import { recordKeyOf } from '../../shared/state/instance-record.js';
import { localClientConfig } from '../harness/client-config.js';
import { seedMoto } from '../harness/moto-server.js';
import { FleetSimulator, type InstanceOutcome, type SimulatedInstance } from '../simulator/fleet-simulator.js';
import { payloadOf, publishedMessages, StateTableReader, type PublishedMessage } from '../simulator/moto-state.js';
import { SeededRandom } from '../simulator/random.js';
import { planInstance, type InstanceFault, type InstanceSpec } from '../simulator/scenarios.js';
import { useSimulation } from '../simulator/vitest-simulation.js';

const hub: Place = { account: '123456789012', region: 'us-east-1' };
const members = ['111111111111', '222222222222'];
const unreachableAccount = '333333333333';
const regions = ['us-east-1', 'eu-west-1'];
const reachable: Place[] = [hub.account, ...members].flatMap((account) => regions.map((region) => ({ account, region })));
const missingRole: Place = { account: unreachableAccount, region: 'us-east-1' };
const untrustingRole: Place = { account: unreachableAccount, region: 'eu-west-1' };
const twinPlaces: [Place, Place] = [
  { account: '111111111111', region: 'eu-west-1' },
  { account: '222222222222', region: 'eu-west-1' },
];
const faulty: { place: Place; os: 'linux' | 'windows'; fault: InstanceFault }[] = [
  { place: { account: '111111111111', region: 'us-east-1' }, os: 'linux', fault: 'install-fails' },
  { place: { account: '222222222222', region: 'eu-west-1' }, os: 'windows', fault: 'agent-never-publishes' },
];

const simulation = useSimulation({
  organization: {
    accounts: [hub.account, ...members, unreachableAccount],
    regions,
    withoutMemberStack: [missingRole],
    untrustingMemberStack: [untrustingRole],
  },
});

const random = new SeededRandom('organization');
const short = (place: Place) => `${place.account.slice(0, 3)}-${place.region}`;
const spec = (place: Place, os: 'linux' | 'windows', fault: InstanceFault, name: string): InstanceSpec => ({
  ...planInstance({ name, os, fault }, random),
  place,
});

let simulator: FleetSimulator;
let outcomes: InstanceOutcome[];
let messages: PublishedMessage[];
let twins: SimulatedInstance[];

beforeAll(async () => {
  const { environment, clock } = simulation;
  simulator = new FleetSimulator(environment, clock);
  const fleet: InstanceSpec[] = [];
  for (const place of reachable) {
    fleet.push(spec(place, 'linux', 'none', `web-${short(place)}`), spec(place, 'windows', 'none', `win-${short(place)}`));
  }
  for (const { place, os, fault } of faulty) fleet.push(spec(place, os, fault, `${fault}-${short(place)}`));
  for (const place of [missingRole, untrustingRole]) {
    fleet.push(spec(place, 'linux', 'none', `web-${short(place)}`), spec(place, 'windows', 'none', `win-${short(place)}`));
  }
  for (const instance of fleet) await simulator.launchNow(instance);
  // moto's ids follow its random generator: the same seed before each launch, the same id in two accounts.
  twins = [];
  for (const place of twinPlaces) {
    await seedMoto(environment.motoUrl, 20_261_201);
    twins.push(await simulator.launchNow(spec(place, 'linux', 'none', `twin-${short(place)}`)));
  }
  await simulator.run();
  outcomes = await simulator.outcomes();
  messages = await publishedMessages(environment.motoUrl);
}, 300_000);

const inReachable = (outcome: InstanceOutcome) => reachable.some((place) => samePlace(place, outcome.spec.place ?? hub));
const alarmsIn = async (place: Place, instanceId: string): Promise<string[]> => {
  const organization = simulation.environment.organization;
  const credentials = samePlace(place, hub) ? undefined : organization?.credentials.get(place.account);
  const cloudwatch = new CloudWatchClient({ ...localClientConfig(simulation.environment.motoUrl), region: place.region, ...(credentials ? { credentials } : {}) });
  try {
    const prefix = `${simulation.environment.stack.settings.alarms.prefix}-${instanceId}-`;
    return ((await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNamePrefix: prefix }))).MetricAlarms ?? []).map((alarm) => alarm.AlarmName ?? '');
  } finally {
    cloudwatch.destroy();
  }
};

describe('a hub covering 3 accounts x 2 regions', () => {
  it('launched instances in every place, the hub\'s own among them, Linux and Windows', () => {
    for (const place of reachable) {
      const here = outcomes.filter((outcome) => samePlace(outcome.spec.place ?? hub, place));
      expect(here.map((outcome) => outcome.spec.os).sort(), placeLabel(place)).toEqual(expect.arrayContaining(['linux', 'windows']));
    }
  });

  it('every instance of a reachable place ends as its fault says: healthy, or alerted once with the right diagnosis', () => {
    const reached = outcomes.filter(inReachable);
    expect(reached).toHaveLength(reachable.length * 2 + faulty.length + twins.length);
    expect(reached.flatMap((outcome) => outcome.problems.map((problem) => `${outcome.label} [${outcome.spec.fault}]: ${problem}`))).toEqual([]);
    expect(reached.filter((outcome) => outcome.status === 'healthy')).toHaveLength(reached.length - faulty.length);
  });

  it('each record lives under its instance\'s account and region, and says so', () => {
    for (const outcome of outcomes.filter(inReachable)) {
      const place = outcome.spec.place ?? hub;
      expect(outcome.record, outcome.label).toMatchObject({ recordKey: recordKeyOf(place, outcome.instanceId), account: place.account, region: place.region });
    }
  });

  it('install commands went to the instance\'s own account and region', () => {
    const sent = simulation.environment.proxy.commands.sent();
    for (const outcome of outcomes.filter(inReachable)) {
      const place = outcome.spec.place ?? hub;
      const mine = sent.filter((command) => command.instanceIds.includes(outcome.instanceId) && samePlace(command, place));
      expect(mine.length, outcome.label).toBe(outcome.installs);
      expect(mine.length, outcome.label).toBeGreaterThan(0);
    }
  });

  it('an alert names the instance\'s account and region, and its console link opens that region', () => {
    for (const { place, fault } of faulty) {
      const outcome = outcomes.find((candidate) => candidate.spec.fault === fault && samePlace(candidate.spec.place ?? hub, place));
      expect(outcome?.alerts, `${fault} in ${placeLabel(place)}`).toHaveLength(1);
      const payload = payloadOf(outcome!.alerts[0]!) as { account: string; region: string; instance: { id: string }; consoleUrl: string };
      expect(payload).toMatchObject({ account: place.account, region: place.region, instance: { id: outcome!.instanceId } });
      expect(outcome!.alerts[0]!.attributes).toMatchObject({ account: place.account, region: place.region });
      const url = new URL(payload.consoleUrl);
      expect(url.hostname).toBe(`${place.region}.console.aws.amazon.com`);
      expect(url.searchParams.get('region')).toBe(place.region);
      expect(outcome!.alerts[0]!.message).toContain(place.account);
    }
  });

  it('two instances with the same id in two accounts are two records, each healthy with its own alarms in its own account', async () => {
    const [first, second] = twins;
    expect(first!.instanceId).toBe(second!.instanceId);
    const reader = new StateTableReader(simulation.environment.motoUrl, simulation.environment.stack.settings.stateTable);
    try {
      const records = await Promise.all(twinPlaces.map((place) => reader.record(first!.instanceId, place)));
      expect(records.map((record) => record?.recordKey)).toEqual(twinPlaces.map((place) => recordKeyOf(place, first!.instanceId)));
      expect(records.map((record) => record?.status)).toEqual(['healthy', 'healthy']);
      expect(records.map((record) => record?.commandId)).not.toContain(undefined);
      expect(records[0]?.commandId).not.toBe(records[1]?.commandId);
    } finally {
      reader.destroy();
    }
    const [alarmsA, alarmsB] = await Promise.all(twinPlaces.map((place) => alarmsIn(place, first!.instanceId)));
    expect(alarmsA!.length).toBeGreaterThan(0);
    expect(alarmsB).toEqual(alarmsA);
    // moto's default account has no alarms of theirs: each was created in its member account.
    expect(await alarmsIn({ account: hub.account, region: 'eu-west-1' }, first!.instanceId)).toEqual([]);
  });
});

describe('an account whose execution role is missing in one region and does not trust the hub in the other', () => {
  const memberUnreachable = () => messages.filter((message) => message.attributes.event === 'member-unreachable');

  it('STS refused the hub\'s AssumeRole there: AccessDenied', () => {
    const denied = simulation.environment.proxy.calls().filter((call) => call.service === 'sts' && call.operation === 'AssumeRole' && call.status === 403);
    expect(denied.length).toBeGreaterThan(0);
  });

  it('makes exactly one member-unreachable alert per account and region, naming the account, the region and the role', () => {
    const payloads = memberUnreachable().map((message) => payloadOf(message) as { member: { account: string; region: string; roleArn: string } });
    expect(payloads.map((payload) => `${payload.member.account}/${payload.member.region}`).sort()).toEqual([placeLabel(missingRole), placeLabel(untrustingRole)].sort());
    for (const payload of payloads) {
      expect(payload.member.roleArn).toBe(`arn:aws:iam::${unreachableAccount}:role/cwap-test-member-onboard-${payload.member.region}`);
    }
    for (const message of memberUnreachable()) expect(message.message).toContain(unreachableAccount);
  });

  it('records its instances in error, naming the role', () => {
    for (const place of [missingRole, untrustingRole]) {
      const here = outcomes.filter((outcome) => samePlace(outcome.spec.place ?? hub, place));
      expect(here, placeLabel(place)).toHaveLength(2);
      for (const outcome of here) {
        expect(outcome.record, outcome.label).toMatchObject({ recordKey: recordKeyOf(place, outcome.instanceId), status: 'error' });
        expect(outcome.record?.lastError, outcome.label).toContain(`arn:aws:iam::${unreachableAccount}:role/cwap-test-member-onboard-${place.region}`);
        expect(outcome.installs, outcome.label).toBe(0);
        expect(outcome.alerts, outcome.label).toEqual([]);
      }
    }
  });

  it('affects nothing else: no other alert, no invocation failed or lost', () => {
    const alerts = messages.filter((message) => message.attributes.event === 'alert');
    expect(alerts).toHaveLength(faulty.length);
    expect(simulator.failedDeliveries).toEqual([]);
  });
});

describe('stop and terminate events from a member clean up in that member', () => {
  it('a termination in one account deletes its alarms there, not its twin\'s; a stop in another region records it stopped', async () => {
    const [gone, twin] = twins;
    const stopped = outcomes.find((outcome) => outcome.spec.name === `win-${short({ account: '222222222222', region: 'us-east-1' })}`);
    expect(stopped?.status).toBe('healthy');
    const stoppedPlace = stopped!.spec.place!;
    expect(await alarmsIn(gone!.place, gone!.instanceId)).not.toEqual([]);
    expect(await alarmsIn(stoppedPlace, stopped!.instanceId)).not.toEqual([]);
    const offboardsBefore = simulator.invocations.offboard;

    await simulator.terminateNow(gone!.instanceId, gone!.place);
    await simulator.setPower(stopped!.instanceId, 'stop', stoppedPlace);
    await simulator.run();

    expect(simulator.invocations.offboard - offboardsBefore).toBe(2);
    const after = await simulator.outcomes();
    const find = (instanceId: string, place: Place) => after.find((outcome) => outcome.instanceId === instanceId && samePlace(outcome.spec.place ?? hub, place));
    expect(find(gone!.instanceId, gone!.place)?.record).toMatchObject({ recordKey: recordKeyOf(gone!.place, gone!.instanceId), status: 'gone' });
    expect(find(stopped!.instanceId, stoppedPlace)?.record).toMatchObject({ recordKey: recordKeyOf(stoppedPlace, stopped!.instanceId), status: 'stopped' });
    expect(await alarmsIn(gone!.place, gone!.instanceId)).toEqual([]);
    expect(await alarmsIn(stoppedPlace, stopped!.instanceId)).toEqual([]);
    const pending = await simulator.pendingSchedules();
    expect(pending.filter((name) => name.includes(gone!.instanceId) || name.includes(stopped!.instanceId))).toEqual([]);
    // The twin in the other account is untouched.
    expect(find(twin!.instanceId, twin!.place)?.status).toBe('healthy');
    expect(await alarmsIn(twin!.place, twin!.instanceId)).not.toEqual([]);
    expect(find(stopped!.instanceId, stoppedPlace)?.alarmNotifications).toEqual([]);
  }, 120_000);
});
