import { InvalidSettingsError } from '../../shared/errors.js';
import { describe, expect, it } from 'vitest';
import { parseSettings } from '../../shared/config/settings.js';

const required = {
  RESOURCE_PREFIX: 'cwap-dev',
  STATE_TABLE: 'cwap-dev-records',
  AGENT_PROFILE_NAME: 'cwap-dev-agent',
  AGENT_DOCUMENT_NAME: 'cwap-dev-install-agent',
  LINUX_CONFIG_PARAMETER: 'AmazonCloudWatch-cwap-dev-linux',
  WINDOWS_CONFIG_PARAMETER: 'AmazonCloudWatch-cwap-dev-windows',
  ONBOARD_FUNCTION_ARN: 'arn:aws:lambda:us-east-1:123456789012:function:cwap-dev-onboard',
  CHECK_FUNCTION_ARN: 'arn:aws:lambda:us-east-1:123456789012:function:cwap-dev-check',
  SCHEDULER_ROLE_ARN: 'arn:aws:iam::123456789012:role/cwap-dev-scheduler',
  ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:cwap-dev-alerts',
};

function errorOf(env: Record<string, string | undefined>): InvalidSettingsError {
  try {
    parseSettings(env);
  } catch (error) {
    if (error instanceof InvalidSettingsError) return error;
    throw error;
  }
  throw new Error('parseSettings accepted the environment');
}

describe('settings', () => {
  it('a deployment that sets only the stack-provided values gets the documented defaults', () => {
    const settings = parseSettings(required);
    expect(settings.metrics).toEqual({
      namespace: 'CloudWatch/TestMetrics',
      memory: 'MEMORY_USED',
      disk: 'DISK_USED',
      windowsDiskFree: 'DISK_FREE',
    });
    expect(settings.optOutTag).toEqual({ key: 'cw-autopilot:skip', value: 'true' });
    expect(settings.optInTag).toBeUndefined();
    expect(settings.modifyExistingRoles).toBe(true);
    expect(settings.ssmMaxAttempts).toBe(8);
    expect(settings.checkDelaySeconds).toBe(300);
    expect(settings.windowsGraceSeconds).toBe(300);
  });

  it('reads tags as key=value, a bare key, and "false"-like booleans', () => {
    const settings = parseSettings({ ...required, OPT_IN_TAG: 'monitoring', OPT_OUT_TAG: 'team=legacy', MODIFY_EXISTING_ROLES: 'no' });
    expect(settings.optInTag).toEqual({ key: 'monitoring' });
    expect(settings.optOutTag).toEqual({ key: 'team', value: 'legacy' });
    expect(settings.modifyExistingRoles).toBe(false);
  });

  it('names the setting and the value it got when a number is not a number', () => {
    expect(errorOf({ ...required, SSM_MAX_ATTEMPTS: 'lots' }).message).toMatch(/SSM_MAX_ATTEMPTS: .*\(got "lots"\)/);
  });

  it('rejects an agent config parameter the agent policy could not read', () => {
    const message = errorOf({ ...required, LINUX_CONFIG_PARAMETER: 'my-agent-config' }).message;
    expect(message).toContain('LINUX_CONFIG_PARAMETER');
    expect(message).toContain('AmazonCloudWatch-');
    expect(message).toContain('"my-agent-config"');
  });

  it('refuses a Windows free-space metric named *_USED', () => {
    expect(errorOf({ ...required, WINDOWS_DISK_FREE_METRIC: 'DISK_USED' }).message).toMatch(/WINDOWS_DISK_FREE_METRIC: .*free space/);
  });

  it('lists every missing required setting at once', () => {
    const message = errorOf({}).message;
    for (const name of ['STATE_TABLE', 'AGENT_PROFILE_NAME', 'ONBOARD_FUNCTION_ARN', 'SCHEDULER_ROLE_ARN']) {
      expect(message).toContain(`${name}:`);
    }
    expect(message).toContain('(got nothing)');
  });

  it('keeps a terminated instance\'s record GONE_RECORD_RETENTION_DAYS days (default 90); anything but a whole number of days from 1 to 3650 is refused, naming it', () => {
    expect(parseSettings(required).goneRecordRetentionDays).toBe(90);
    expect(parseSettings({ ...required, GONE_RECORD_RETENTION_DAYS: '7' }).goneRecordRetentionDays).toBe(7);
    for (const wrong of ['0', '-1', '1.5', 'ninety', '', '3651']) {
      const message = errorOf({ ...required, GONE_RECORD_RETENTION_DAYS: wrong }).message;
      expect(message, wrong).toContain('GONE_RECORD_RETENTION_DAYS: ');
      expect(message, wrong).toContain(`(got ${JSON.stringify(wrong)})`);
    }
  });

  it('paces with half of each account bucket and two containers (the queue mapping\'s maximum concurrency) by default; reads PACING_SHARE and PACING_CONCURRENCY', () => {
    expect(parseSettings(required).pacing).toEqual({ share: 0.5, concurrency: 2 });
    expect(parseSettings({ ...required, PACING_SHARE: '1', PACING_CONCURRENCY: '10' }).pacing).toEqual({ share: 1, concurrency: 10 });
    expect(parseSettings({ ...required, PACING_SHARE: '0.25' }).pacing.share).toBe(0.25);
  });

  it('refuses a pacing share outside (0, 1] and a concurrency that is no whole number of containers, naming the setting', () => {
    for (const share of ['0', '-0.5', '1.5', 'half']) expect(errorOf({ ...required, PACING_SHARE: share }).message).toMatch(new RegExp(`PACING_SHARE: .*\\(got "${share}"\\)`));
    for (const concurrency of ['0', '2.5', 'many']) expect(errorOf({ ...required, PACING_CONCURRENCY: concurrency }).message).toMatch(new RegExp(`PACING_CONCURRENCY: .*\\(got "${concurrency}"\\)`));
    expect(errorOf({ ...required, PACING_CONCURRENCY: '0' }).message).toContain('reserved concurrency');
    expect(errorOf({ ...required, PACING_SHARE: '1.5' }).message).toContain('at most 1');
  });

  it('gathers small batches\' installs in 60 s install windows by default; INSTALL_WINDOW_SECONDS 0 installs right away', () => {
    expect(parseSettings(required).installWindowSeconds).toBe(60);
    expect(parseSettings({ ...required, INSTALL_WINDOW_SECONDS: '0' }).installWindowSeconds).toBe(0);
    expect(parseSettings({ ...required, INSTALL_WINDOW_SECONDS: '900' }).installWindowSeconds).toBe(900);
  });

  it('refuses an install window that is no whole number of seconds from 0 to 900, naming the setting and what it costs', () => {
    for (const seconds of ['-1', '1.5', 'soon', '901']) expect(errorOf({ ...required, INSTALL_WINDOW_SECONDS: seconds }).message).toMatch(new RegExp(`INSTALL_WINDOW_SECONDS: .*\\(got "${seconds}"\\)`));
    expect(errorOf({ ...required, INSTALL_WINDOW_SECONDS: 'soon' }).message).toContain('0 (install right away) to 900');
    expect(errorOf({ ...required, INSTALL_WINDOW_SECONDS: '901' }).message).toContain('every small batch\'s install waits up to this long');
  });

  it('rejects a retry delay shorter than Scheduler can honour', () => {
    expect(errorOf({ ...required, SSM_RETRY_DELAY_SECONDS: '5' }).message).toContain('SSM_RETRY_DELAY_SECONDS');
  });
});

describe('tag settings', () => {
  it('an empty opt-out tag turns the opt-out off; unset keeps the default', () => {
    expect(parseSettings({ ...required, OPT_OUT_TAG: '' }).optOutTag).toBeUndefined();
    expect(parseSettings({ ...required, OPT_OUT_TAG: '  ' }).optOutTag).toBeUndefined();
    expect(parseSettings(required).optOutTag).toEqual({ key: 'cw-autopilot:skip', value: 'true' });
  });

  it('a tag with an empty key is rejected, naming the setting', () => {
    expect(errorOf({ ...required, OPT_IN_TAG: '=yes' }).message).toMatch(/OPT_IN_TAG: the tag key before "=" is empty \(got "=yes"\)/);
  });
});

describe('alarm settings', () => {
  it('refuses periods an alarm cannot have: shorter than the agent interval, or over a day in all', () => {
    expect(errorOf({ ...required, ALARM_PERIOD_SECONDS: '30' }).message).toContain('ALARM_PERIOD_SECONDS: must be a multiple of 60');
    expect(errorOf({ ...required, ALARM_PERIOD_SECONDS: '3600', ALARM_EVALUATION_PERIODS: '25' }).message).toContain(
      'ALARM_EVALUATION_PERIODS: ALARM_PERIOD_SECONDS x ALARM_EVALUATION_PERIODS must be at most one day',
    );
    expect(parseSettings({ ...required, ALARM_PERIOD_SECONDS: '3600', ALARM_EVALUATION_PERIODS: '24' }).alarms.evaluationPeriods).toBe(24);
  });
});


describe('the organization settings', () => {
  it('default to the hub alone: its account (from the function ARN) and region, no member role, no organization', () => {
    const settings = parseSettings({ ...required, AWS_REGION: 'eu-west-1' });
    expect(settings.hubPlace).toEqual({ account: '123456789012', region: 'eu-west-1' });
    expect(settings.accounts).toEqual({ kind: 'hub' });
    expect(settings.regions).toEqual(['eu-west-1']);
    expect(settings.memberRoleName).toBeUndefined();
    expect(settings.organizationId).toBeUndefined();
  });

  it('read the organization, a list of accounts, regions, the member role and the organization id', () => {
    expect(parseSettings({ ...required, ACCOUNTS: 'organization' }).accounts).toEqual({ kind: 'organization' });
    const settings = parseSettings({
      ...required,
      ACCOUNTS: ' 222222222222, 333333333333,222222222222 ',
      REGIONS: 'eu-west-1, us-east-1',
      MEMBER_ROLE_NAME: 'cwap-dev-member-check',
      ORGANIZATION_ID: 'o-abcd123456',
    });
    expect(settings.accounts).toEqual({ kind: 'list', ids: ['222222222222', '333333333333'] });
    expect(settings.regions).toEqual(['eu-west-1', 'us-east-1']);
    expect(settings.memberRoleName).toBe('cwap-dev-member-check');
    expect(settings.organizationId).toBe('o-abcd123456');
  });

  it('refuse what is not an account, a region, a role name or an organization id, naming the setting', () => {
    expect(errorOf({ ...required, ACCOUNTS: '2222,333333333333' }).message).toMatch(/ACCOUNTS: .*not 2222/);
    expect(errorOf({ ...required, REGIONS: 'eu-west-1,Frankfurt' }).message).toMatch(/REGIONS: .*not Frankfurt/);
    expect(errorOf({ ...required, MEMBER_ROLE_NAME: 'role/with/slashes' }).message).toMatch(/MEMBER_ROLE_NAME: an IAM role name/);
    expect(errorOf({ ...required, ORGANIZATION_ID: 'org-1' }).message).toMatch(/ORGANIZATION_ID: an organization id/);
    expect(errorOf({ ...required, ONBOARD_FUNCTION_ARN: 'arn:aws:lambda:us-east-1::function:x' }).message).toMatch(/ONBOARD_FUNCTION_ARN: expected a function ARN with its 12-digit account/);
  });
});
