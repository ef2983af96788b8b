import { describe, expect, it } from 'vitest';
import { diagnose } from '../../shared/checking/check-diagnosis.js';
import { alertRetryAt, checkCurrency, decideAfterDiagnosis, retryDelaySeconds } from '../../shared/checking/check-policy.js';
import { commandOfThisLaunch } from '../../shared/checking/checking.js';
import { parseSettings } from '../../shared/config/settings.js';
import { commandStatusOf, env, factsOf, recordOf, settings } from './fixtures.js';

const now = new Date('2026-01-10T10:10:00.000Z');
const failedInstall = diagnose(factsOf({ command: commandStatusOf({ state: 'failed', status: 'Failed', step: 'installAgent' }) }));
const noDatapoints = diagnose(factsOf());
const noProfile = diagnose(factsOf({ profileArn: undefined, role: undefined }));

describe('which checks run', () => {
  it('the scheduled check the record waits for runs; a duplicate or an old one is ignored', () => {
    expect(checkCurrency(1, recordOf({ checkAttempts: 0 }))).toEqual({ run: true, attempt: 1 });
    expect(checkCurrency(1, recordOf({ checkAttempts: 1 }))).toMatchObject({ run: false });
    expect(checkCurrency(3, recordOf({ checkAttempts: 1 }))).toMatchObject({ run: false });
  });

  it('a scheduled check of a healthy or alerted instance does nothing', () => {
    expect(checkCurrency(2, recordOf({ status: 'healthy', checkAttempts: 1 }))).toMatchObject({ run: false });
    expect(checkCurrency(2, recordOf({ status: 'alerted', checkAttempts: 1 }))).toMatchObject({ run: false });
  });

  it('an alert whose publish failed is retried by the next check', () => {
    expect(checkCurrency(4, recordOf({ status: 'alerting', checkAttempts: 3 }))).toEqual({ run: true, attempt: 4 });
  });

  it('a check by hand runs as the next attempt, but not while onboarding works on the instance', () => {
    expect(checkCurrency(undefined, recordOf({ status: 'alerted', checkAttempts: 3 }))).toEqual({ run: true, attempt: 4 });
    expect(checkCurrency(undefined, recordOf({ status: 'waiting-for-ssm' }))).toMatchObject({ run: false, reason: 'onboarding is in progress (status waiting-for-ssm)' });
    expect(checkCurrency(undefined, undefined)).toMatchObject({ run: false });
  });

  it('a check by hand of an instance onboarding skipped (opt-out or no opt-in tag) does nothing, so no install is sent', () => {
    expect(checkCurrency(undefined, recordOf({ status: 'skipped', reason: 'opt-out tag cw-autopilot:skip=true' }))).toEqual({
      run: false,
      reason: 'the instance is out of scope (opt-out tag cw-autopilot:skip=true): onboarding skipped it',
    });
    expect(checkCurrency(1, recordOf({ status: 'skipped', checkAttempts: 0 }))).toMatchObject({ run: false });
  });
});

describe('retry policy', () => {
  const decide = (attempt: number, diagnosis = noDatapoints, record = recordOf(), os: 'linux' | 'windows' = 'linux', policy = settings) =>
    decideAfterDiagnosis({ diagnosis, record, attempt, os, settings: policy, now });

  it('a failed install on check 1 of 3 re-sends the command and re-checks after the retry delay', () => {
    expect(decide(1, failedInstall)).toEqual({
      action: 'retry',
      nextAttempt: 2,
      at: new Date(now.getTime() + 300_000),
      reinstall: true,
      reason: 'command-failed: check 2 of 3 in 300 s, install command re-sent',
    });
  });

  it('the delay doubles with each check (backoff)', () => {
    expect(decide(2)).toMatchObject({ action: 'retry', nextAttempt: 3, at: new Date(now.getTime() + 600_000), reinstall: false });
  });

  it('missing datapoints are re-checked without re-sending the command', () => {
    expect(decide(1)).toMatchObject({ action: 'retry', reinstall: false });
  });

  it('the last allowed check alerts (CHECK_MAX_ATTEMPTS, default 3)', () => {
    expect(decide(3)).toEqual({ action: 'alert', reason: 'metrics still missing after 3 of 3 checks' });
    expect(decide(3, failedInstall)).toMatchObject({ action: 'alert' });
  });

  it('CHECK_MAX_ATTEMPTS=1 alerts on the first check; =5 still retries on the fourth', () => {
    expect(decide(1, noDatapoints, recordOf(), 'linux', parseSettings({ ...env, CHECK_MAX_ATTEMPTS: '1' }))).toMatchObject({ action: 'alert' });
    expect(decide(4, noDatapoints, recordOf(), 'linux', parseSettings({ ...env, CHECK_MAX_ATTEMPTS: '5' }))).toMatchObject({ action: 'retry', nextAttempt: 5 });
  });

  it('the install command is re-sent at most CHECK_MAX_ATTEMPTS times per launch', () => {
    expect(decide(1, failedInstall, recordOf({ reinstalls: 2 }))).toMatchObject({ action: 'retry', reinstall: true });
    expect(decide(1, failedInstall, recordOf({ reinstalls: 3 }))).toMatchObject({ action: 'retry', reinstall: false });
  });

  it('a diagnosis no retry can fix goes straight to the alert, even on check 1', () => {
    expect(decide(1, noProfile)).toEqual({ action: 'alert', reason: 'no-instance-profile cannot be fixed by a retry' });
  });

  it('an instance onboarding gave up on (never online in SSM) is alerted on its first check, not waited for again', () => {
    const offline = diagnose(factsOf({ ssm: { pingStatus: 'NotRegistered', agentVersion: undefined, platformType: undefined, lastPing: undefined }, command: undefined }));
    expect(offline.code).toBe('ssm-offline');
    expect(decide(1, offline, recordOf({ reason: 'ssm-unreachable' }))).toEqual({
      action: 'alert',
      reason: 'onboarding already waited its SSM_MAX_ATTEMPTS looks for Systems Manager',
    });
    // The same diagnosis after a normal onboarding is retried: the agent may just be restarting.
    expect(decide(1, offline)).toMatchObject({ action: 'retry', nextAttempt: 2 });
  });

  it('a Windows instance waits its grace period longer before each re-check', () => {
    expect(retryDelaySeconds(1, 'windows', settings)).toBe(600);
    expect(retryDelaySeconds(2, 'windows', settings)).toBe(900);
    expect(retryDelaySeconds(1, 'linux', settings)).toBe(300);
    const windows = parseSettings({ ...env, WINDOWS_GRACE_SECONDS: '1200' });
    expect(decide(1, noDatapoints, recordOf({ os: 'windows' }), 'windows', windows)).toMatchObject({ at: new Date(now.getTime() + 1500_000) });
  });

  it('a launch that was already alerted is never alerted again, whatever the diagnosis', () => {
    const alerted = recordOf({ status: 'alerted', alertedAt: '2026-01-10T10:09:00.000Z', alertedLaunch: recordOf().launchTime });
    expect(decide(4, noProfile, alerted)).toMatchObject({ action: 'already-alerted' });
  });

  it('an alert from an earlier launch does not silence this launch', () => {
    const earlier = recordOf({ alertedAt: '2026-01-01T00:00:00.000Z', alertedLaunch: '2026-01-01T00:00:00.000Z' });
    expect(decide(1, noProfile, earlier)).toMatchObject({ action: 'alert' });
  });

  it('an alert that was not confirmed sent is sent on the next check, without more retries', () => {
    expect(decide(4, noDatapoints, recordOf({ status: 'alerting', checkAttempts: 3 }))).toMatchObject({ action: 'alert' });
  });

  it('a failed alert is retried after the retry delay, as many times as there are checks', () => {
    expect(alertRetryAt(3, settings, now)).toEqual(new Date(now.getTime() + 300_000));
    expect(alertRetryAt(5, settings, now)).toEqual(new Date(now.getTime() + 300_000));
    expect(alertRetryAt(6, settings, now)).toBeUndefined();
  });
});

describe('whose install command the diagnosis reads', () => {
  it('the command of an earlier launch says nothing about a restarted instance (SSM also forgets commands after 30 days)', () => {
    const launchedAt = { launchTime: '2026-01-10T10:00:00.000Z' };
    expect(commandOfThisLaunch({ commandId: 'cmd-1', commandSentAt: '2026-01-10T10:02:00.000Z' }, launchedAt)).toBe(true);
    expect(commandOfThisLaunch({ commandId: 'cmd-1', commandSentAt: '2025-11-01T08:00:00.000Z' }, launchedAt)).toBe(false);
    expect(commandOfThisLaunch({ commandId: undefined, commandSentAt: undefined }, launchedAt)).toBe(false);
  });

  it('a check redelivered after it claimed an alert runs again; a recovery still pending lets one more check run', () => {
    expect(checkCurrency(3, recordOf({ status: 'alerting', checkAttempts: 3 }))).toEqual({ run: true, attempt: 3 });
    expect(checkCurrency(2, recordOf({ status: 'alerting', checkAttempts: 3 })).run).toBe(false);
    expect(checkCurrency(4, recordOf({ status: 'healthy', checkAttempts: 3, alertedAt: '2026-01-10T10:05:00.000Z' }))).toEqual({ run: true, attempt: 4 });
    expect(checkCurrency(4, recordOf({ status: 'healthy', checkAttempts: 3 })).run).toBe(false);
  });
});

