import { describe, expect, it } from 'vitest';
import { abandonedClaimMs, decideOnboarding, exclusionReason, stalledAfterMs, type OnboardingDecision } from '../../shared/onboarding/onboarding-decision.js';
import type { InstanceFacts } from '../../shared/aws/instances.js';
import type { OnboardingRecord, OnboardingStatus } from '../../shared/state/instance-record.js';
import type { Settings } from '../../shared/config/settings.js';
import type { OnboardTrigger } from '../../shared/input/triggers.js';
import { hubRecordKey } from '../harness/test-clients.js';

const now = new Date('2025-03-04T10:00:00.000Z');
const launch = '2025-03-04T09:58:30.000Z';
const earlierLaunch = '2025-03-01T08:00:00.000Z';
const id = 'i-0abc1234def567890';

const defaults: Pick<Settings, 'optOutTag' | 'optInTag'> = { optOutTag: { key: 'cw-autopilot:skip', value: 'true' }, optInTag: undefined };
const event: OnboardTrigger = { kind: 'state-change', instanceId: id, state: 'running', time: now.toISOString() };
const retry = (attempt: number): OnboardTrigger => ({ kind: 'retry', instanceId: id, attempt });
const remediation: OnboardTrigger = { kind: 'remediate', instanceId: id, requestedBy: 'audit' };

function instance(changes: Partial<InstanceFacts> = {}): InstanceFacts {
  return {
    instanceId: id,
    state: 'running',
    os: 'linux',
    name: 'web-1',
    tags: { Name: 'web-1' },
    profileArn: undefined,
    launchTime: launch,
    availabilityZone: 'us-east-1a',
    ...changes,
  };
}

function record(changes: Partial<OnboardingRecord> = {}): OnboardingRecord {
  return {
    ...hubRecordKey(id),
    instanceId: id,
    status: 'checking',
    version: 4,
    os: 'linux',
    launchTime: launch,
    ssmAttempts: 0,
    checkAttempts: 0,
    createdAt: '2025-03-04T09:59:00.000Z',
    updatedAt: '2025-03-04T09:59:30.000Z',
    history: [],
    ...changes,
  };
}

function decide(facts: {
  trigger?: OnboardTrigger;
  instance?: InstanceFacts | undefined;
  record?: OnboardingRecord | undefined;
  settings?: Pick<Settings, 'optOutTag' | 'optInTag'>;
  at?: Date;
}): OnboardingDecision {
  return decideOnboarding({
    trigger: facts.trigger ?? event,
    instance: 'instance' in facts ? facts.instance : instance(),
    record: facts.record,
    settings: facts.settings ?? defaults,
    now: facts.at ?? now,
  });
}

describe('an instance seen for the first time', () => {
  it('is onboarded from the start', () => {
    expect(decide({})).toEqual({ action: 'onboard', reason: 'first time seen', fresh: true });
  });

  it('is onboarded while still pending', () => {
    expect(decide({ instance: instance({ state: 'pending' }) })).toMatchObject({ action: 'onboard', fresh: true });
  });
});

describe('an instance that is no longer running', () => {
  it('is gone when EC2 does not know it', () => {
    expect(decide({ instance: undefined })).toEqual({
      action: 'record-gone',
      reason: 'EC2 does not know this instance (terminated, or not in this account and region)',
    });
  });

  it.each(['terminated', 'shutting-down'])('is gone when %s, whatever the record says', (state) => {
    expect(decide({ instance: instance({ state }), record: record({ status: 'healthy' }) })).toEqual({
      action: 'record-gone',
      reason: `instance is ${state}`,
    });
  });

  it.each(['stopped', 'stopping'])('is recorded as stopped when %s', (state) => {
    expect(decide({ instance: instance({ state }) })).toEqual({ action: 'record-stopped', reason: `instance is ${state}, no longer running` });
  });
});

describe('opt-out and opt-in tags', () => {
  it('an opt-out tag with the configured value skips it, naming the tag', () => {
    expect(decide({ instance: instance({ tags: { 'cw-autopilot:skip': 'True' } }) })).toEqual({
      action: 'skip',
      reason: 'opt-out tag cw-autopilot:skip=true is set',
    });
  });

  it('an opt-out tag with another value does not skip it', () => {
    expect(decide({ instance: instance({ tags: { 'cw-autopilot:skip': 'no' } }) }).action).toBe('onboard');
  });

  it('an opt-out setting without a value skips on the key alone', () => {
    const settings = { optOutTag: { key: 'no-monitoring' }, optInTag: undefined };
    expect(decide({ instance: instance({ tags: { 'no-monitoring': '' } }), settings })).toEqual({
      action: 'skip',
      reason: 'opt-out tag no-monitoring is set',
    });
  });

  it('the opt-out tag skips an instance even in the middle of its onboarding', () => {
    expect(decide({ instance: instance({ tags: { 'cw-autopilot:skip': 'true' } }), record: record({ status: 'waiting-for-ssm' }) }).action).toBe('skip');
  });

  it('a required opt-in tag that is missing skips it, naming the tag', () => {
    const settings = { optOutTag: undefined, optInTag: { key: 'monitoring', value: 'on' } };
    expect(decide({ settings })).toEqual({ action: 'skip', reason: 'opt-in tag monitoring=on is required and missing' });
    expect(decide({ settings, instance: instance({ tags: { monitoring: 'off' } }) }).action).toBe('skip');
    expect(decide({ settings, instance: instance({ tags: { monitoring: 'ON' } }) }).action).toBe('onboard');
  });

  it('an opt-in key without a value accepts any value', () => {
    const settings = { optOutTag: undefined, optInTag: { key: 'monitoring' } };
    expect(decide({ settings, instance: instance({ tags: { monitoring: 'anything' } }) }).action).toBe('onboard');
    expect(exclusionReason(instance(), settings)).toBe('opt-in tag monitoring is required and missing');
  });

  it('opt-out wins over opt-in', () => {
    const settings = { optOutTag: { key: 'skip' }, optInTag: { key: 'monitoring' } };
    expect(exclusionReason(instance({ tags: { skip: 'x', monitoring: 'x' } }), settings)).toBe('opt-out tag skip is set');
  });

  it('with neither setting every instance is in scope', () => {
    expect(exclusionReason(instance({ tags: { 'cw-autopilot:skip': 'true' } }), { optOutTag: undefined, optInTag: undefined })).toBeUndefined();
  });
});

describe('the same launch seen again by a state-change event', () => {
  it.each<OnboardingStatus>(['installing', 'checking', 'healthy', 'alerting', 'alerted', 'waiting-for-ssm'])(
    'a launch already %s is a duplicate: ignored',
    (status) => {
      expect(decide({ record: record({ status }) })).toEqual({ action: 'ignore', reason: `duplicate event: this launch is already ${status}` });
    },
  );

  it('a launch recorded gone that EC2 says is running (a not-found answer right after launch) is onboarded afresh', () => {
    expect(decide({ record: record({ status: 'gone' }) })).toEqual({ action: 'onboard', reason: 'was recorded gone, but EC2 says it is running', fresh: true });
  });

  it.each<OnboardingStatus>(['waiting-for-ssm', 'installing', 'checking', 'alerting'])(
    'a launch %s but untouched for more than 6 hours stalled (its chain of invocations died): resumed',
    (status) => {
      const updatedAt = new Date(now.getTime() - stalledAfterMs - 1000).toISOString();
      expect(decide({ record: record({ status, updatedAt }) })).toEqual({
        action: 'onboard',
        reason: `resuming a stalled onboarding (${status}, untouched since ${updatedAt})`,
        fresh: false,
      });
      const recent = new Date(now.getTime() - stalledAfterMs + 60_000).toISOString();
      expect(decide({ record: record({ status, updatedAt: recent }) }).action).toBe('ignore');
    },
  );

  it('a stalled record is not resumed by a scheduled retry that is not current', () => {
    const updatedAt = new Date(now.getTime() - stalledAfterMs - 1000).toISOString();
    expect(decide({ trigger: retry(5), record: record({ status: 'checking', updatedAt, ssmAttempts: 1 }) }).action).toBe('ignore');
  });

  it('a launch that was skipped and is now in scope is onboarded afresh', () => {
    expect(decide({ record: record({ status: 'skipped' }) })).toEqual({ action: 'onboard', reason: 'was skipped, now in scope and running', fresh: true });
  });

  it('a launch that was stopped before its agent was installed is onboarded afresh', () => {
    expect(decide({ record: record({ status: 'stopped', commandId: undefined }) })).toEqual({
      action: 'onboard',
      reason: 'was stopped before its agent was installed, now running',
      fresh: true,
    });
  });

  // EC2 gives a started instance a new LaunchTime, but an out-of-order or re-delivered event (or an
  // emulator) can show the old one: an installed agent is checked, never reinstalled.
  it('a launch that was stopped with its agent installed gets a check, not a reinstall, even with the same launch time', () => {
    expect(decide({ record: record({ status: 'stopped', commandId: 'cmd-0001' }) })).toEqual({
      action: 'recheck',
      reason: 'started again with the agent already installed',
    });
  });

  it('a launch whose last invocation hit an error is resumed where it stopped', () => {
    expect(decide({ record: record({ status: 'error', profilePath: 'associated-agent-profile' }) })).toEqual({
      action: 'onboard',
      reason: 'resuming after an error',
      fresh: false,
    });
  });

  it('a claim younger than 15 minutes belongs to a running invocation: ignored', () => {
    const claimedAt = new Date(now.getTime() - abandonedClaimMs).toISOString();
    expect(decide({ record: record({ status: 'onboarding', updatedAt: claimedAt }) })).toEqual({
      action: 'ignore',
      reason: 'another invocation is onboarding this instance',
    });
  });

  it('a claim older than 15 minutes was abandoned (Lambda runs 15 minutes at most): resumed', () => {
    const claimedAt = new Date(now.getTime() - abandonedClaimMs - 1000).toISOString();
    expect(decide({ record: record({ status: 'onboarding', updatedAt: claimedAt }) })).toEqual({
      action: 'onboard',
      reason: `resuming a stalled onboarding (onboarding, untouched since ${claimedAt})`,
      fresh: false,
    });
  });

  it('the abandoned-claim limit is 15 minutes', () => {
    expect(abandonedClaimMs).toBe(15 * 60 * 1000);
  });
});

describe('a scheduled retry while waiting for Systems Manager', () => {
  it('the current retry (one more than the attempts made) continues the onboarding', () => {
    expect(decide({ trigger: retry(3), record: record({ status: 'waiting-for-ssm', ssmAttempts: 2 }) })).toEqual({
      action: 'onboard',
      reason: 'scheduled retry 3 while waiting for Systems Manager',
      fresh: false,
    });
  });

  it.each([2, 4])('retry %s when 2 attempts were made is stale: ignored', (attempt) => {
    expect(decide({ trigger: retry(attempt), record: record({ status: 'waiting-for-ssm', ssmAttempts: 2 }) })).toEqual({
      action: 'ignore',
      reason: `retry ${attempt} is not current (status waiting-for-ssm, 2 attempts made)`,
    });
  });

  it.each<OnboardingStatus>(['checking', 'installing', 'onboarding'])('a retry for a launch now %s is ignored', (status) => {
    expect(decide({ trigger: retry(2), record: record({ status, ssmAttempts: 1 }) }).action).toBe('ignore');
  });

  it('a retry for an instance that has no record yet onboards it', () => {
    expect(decide({ trigger: retry(2) })).toMatchObject({ action: 'onboard', fresh: true });
  });
});

describe('a new launch of an instance with a record (stopped and started again)', () => {
  const previous = (changes: Partial<OnboardingRecord>) => record({ launchTime: earlierLaunch, ...changes });

  it.each<OnboardingStatus>(['installing', 'checking', 'healthy', 'alerting', 'alerted', 'stopped'])(
    'was %s with the install command sent: a metric check, no reinstall',
    (status) => {
      expect(decide({ record: previous({ status, commandId: 'cmd-0001' }) })).toEqual({
        action: 'recheck',
        reason: 'started again with the agent already installed',
      });
    },
  );

  it.each<OnboardingStatus>(['waiting-for-ssm', 'onboarding', 'skipped', 'stopped', 'error'])(
    'was %s without an install command: onboarded afresh',
    (status) => {
      expect(decide({ record: previous({ status, commandId: undefined }) })).toEqual({
        action: 'onboard',
        reason: 'a new launch of an instance that was not onboarded',
        fresh: true,
      });
    },
  );

  it('a record without a launch time counts as another launch', () => {
    expect(decide({ record: record({ launchTime: undefined, status: 'healthy', commandId: 'cmd-0001' }) }).action).toBe('recheck');
  });

  it('a retry scheduled for the previous launch onboards the new one afresh', () => {
    expect(decide({ trigger: retry(2), record: previous({ status: 'waiting-for-ssm', ssmAttempts: 1 }) })).toMatchObject({ action: 'onboard', fresh: true });
  });
});

describe('a remediation requested by an audit', () => {
  it.each<OnboardingStatus>(['healthy', 'alerted'])('restarts a finished launch (%s) from the start, naming who asked', (status) => {
    expect(decide({ trigger: remediation, record: record({ status, commandId: 'cmd-0001' }) })).toEqual({
      action: 'onboard',
      reason: `remediation requested by audit (was ${status})`,
      fresh: true,
    });
  });

  it('asks for a reinstall of a restarted instance, not only a check', () => {
    expect(decide({ trigger: remediation, record: record({ launchTime: earlierLaunch, status: 'healthy', commandId: 'cmd-0001' }) })).toMatchObject({
      action: 'onboard',
      fresh: true,
    });
  });

  it('leaves an onboarding in progress to the invocation that owns it', () => {
    expect(decide({ trigger: remediation, record: record({ status: 'checking' }) }).action).toBe('ignore');
  });

  it('still honours the opt-out tag', () => {
    expect(decide({ trigger: remediation, instance: instance({ tags: { 'cw-autopilot:skip': 'true' } }), record: record({ status: 'alerted' }) }).action).toBe('skip');
  });
});
