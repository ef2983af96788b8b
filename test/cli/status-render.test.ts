import { describe, expect, it } from 'vitest';
import { renderStatusMarkdown, renderStatusTable } from '../../cli/status-render.js';
import type { OnboardingRecord } from '../../shared/state/instance-record.js';
import { hubRecordKey } from '../harness/test-clients.js';

/** A Windows instance whose workload role lacked the agent policy, alerted on, then healthy again. */
const record: OnboardingRecord = {
  ...hubRecordKey('i-0123456789abcdef0'),
  instanceId: 'i-0123456789abcdef0',
  name: 'legacy-1',
  status: 'healthy',
  version: 9,
  os: 'windows',
  launchTime: '2026-11-24T19:00:00.000Z',
  profilePath: 'existing-role-compliant',
  profileArn: 'arn:aws:iam::210987654321:instance-profile/legacy-app',
  roleName: 'legacy-app',
  missingPolicies: ['CloudWatchAgentServerPolicy'],
  commandId: 'cmd-1',
  commandSentAt: '2026-11-24T19:01:00.000Z',
  ssmAttempts: 2,
  checkAttempts: 3,
  reinstalls: 1,
  diagnosis: {
    code: 'no-datapoints',
    retryable: true,
    summary: 'the agent runs but sends nothing',
    evidence: ['command cmd-1 Success', 'no MEMORY_USED in 15 min'],
    nextStep: 'read the agent log',
  },
  alertedAt: '2026-11-24T19:20:00.000Z',
  alertedLaunch: '2026-11-24T19:00:00.000Z',
  alertedDiagnosis: 'no-datapoints',
  healthyAt: '2026-11-24T19:40:00.000Z',
  firstDatapointAt: '2026-11-24T19:39:00.000Z',
  launchToFirstMetricSeconds: 2340,
  alarmNames: ['cwap-prod-i-0123456789abcdef0-MEMORY_USED-missing', 'cwap-prod-i-0123456789abcdef0-DISK_FREE-low'],
  lastError: 'ThrottlingException: Rate exceeded',
  createdAt: '2026-11-24T19:00:05.000Z',
  updatedAt: '2026-11-24T19:40:00.000Z',
  history: [
    { at: '2026-11-24T19:00:05.000Z', step: 'claimed', detail: 'first time seen' },
    { at: '2026-11-24T19:20:00.000Z', step: 'alerted', detail: 'SNS message m-1: [cw-agent-autopilot] legacy-1 | no-datapoints' },
    { at: '2026-11-24T19:40:00.000Z', step: 'healthy' },
  ],
};

describe('an instance status as text', () => {
  it('prints every field a record has, one per line, then the timeline', () => {
    expect(renderStatusTable({ table: 'cwap-prod-records', region: 'eu-west-1', record })).toBe(
      [
        'i-0123456789abcdef0 (legacy-1)',
        '  status      healthy',
        '  table       cwap-prod-records in eu-west-1',
        '  os          windows, launched 2026-11-24T19:00:00.000Z',
        '  profile     existing-role-compliant: arn:aws:iam::210987654321:instance-profile/legacy-app (role legacy-app); role lacks CloudWatchAgentServerPolicy',
        '  command     cmd-1, sent 2026-11-24T19:01:00.000Z',
        '  attempts    Systems Manager looks 2, checks 3, reinstalls 1',
        '  diagnosis   no-datapoints: the agent runs but sends nothing',
        '  evidence    command cmd-1 Success',
        '  evidence    no MEMORY_USED in 15 min',
        '  next step   read the agent log',
        '  alert       sent 2026-11-24T19:20:00.000Z (no-datapoints) for the launch of 2026-11-24T19:00:00.000Z',
        '  healthy     2026-11-24T19:40:00.000Z; first datapoint 2026-11-24T19:39:00.000Z (2340 s after launch)',
        '  alarms      cwap-prod-i-0123456789abcdef0-MEMORY_USED-missing, cwap-prod-i-0123456789abcdef0-DISK_FREE-low',
        '  last error  ThrottlingException: Rate exceeded',
        '  record      version 9, created 2026-11-24T19:00:05.000Z, updated 2026-11-24T19:40:00.000Z',
        '',
        'History (3 steps, oldest first)',
        'TIME                      STEP     DETAIL',
        '2026-11-24T19:00:05.000Z  claimed  first time seen',
        '2026-11-24T19:20:00.000Z  alerted  SNS message m-1: [cw-agent-autopilot] legacy-1 | no-datapoints',
        '2026-11-24T19:40:00.000Z  healthy',
        '',
      ].join('\n'),
    );
  });

  it('leaves out what a fresh record does not have yet', () => {
    const fresh: OnboardingRecord = { ...hubRecordKey('i-0123456789abcdef0'), instanceId: 'i-0123456789abcdef0', status: 'onboarding', version: 1, ssmAttempts: 0, checkAttempts: 0, createdAt: 'c', updatedAt: 'u', history: [] };
    expect(renderStatusTable({ table: 't', region: 'r', record: fresh }).split('\n')).toEqual([
      'i-0123456789abcdef0',
      '  status    onboarding',
      '  table     t in r',
      '  attempts  Systems Manager looks 0, checks 0, reinstalls 0',
      '  record    version 1, created c, updated u',
      '',
      'History (0 steps, oldest first)',
      'TIME  STEP  DETAIL',
      '',
    ]);
  });

  it('as Markdown, escapes the pipes a detail may hold', () => {
    const lines = renderStatusMarkdown({ table: 'cwap-prod-records', region: 'eu-west-1', record }).split('\n');
    expect(lines[0]).toBe('# i-0123456789abcdef0 (legacy-1): healthy');
    expect(lines).toContain('| 2026-11-24T19:20:00.000Z | alerted | SNS message m-1: [cw-agent-autopilot] legacy-1 \\| no-datapoints |');
    expect(lines).toContain('| evidence | no MEMORY_USED in 15 min |');
  });
});
