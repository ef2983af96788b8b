import type { DiagnosisFacts } from '../../shared/checking/check-diagnosis.js';
import type { CommandStatus } from '../../shared/checking/command-status.js';
import type { OnboardingRecord } from '../../shared/state/instance-record.js';
import { parseSettings } from '../../shared/config/settings.js';
import { hubRecordKey } from '../harness/test-clients.js';

export const instanceId = 'i-0123456789abcdef0';
export const launchTime = '2026-01-10T10:00:00.000Z';

export const env = {
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
  AWS_REGION: 'us-east-1',
};

export const settings = parseSettings(env);

export function commandStatusOf(changes: Partial<CommandStatus>): CommandStatus {
  return {
    commandId: 'cmd-1',
    state: 'success',
    status: 'Success',
    statusDetails: changes.status ?? 'Success',
    step: undefined,
    errorLines: [],
    responseCode: 0,
    ...changes,
  };
}

/** Facts of a Linux instance whose every precondition is fine but whose metrics are missing. */
export function factsOf(changes: Partial<DiagnosisFacts> = {}): DiagnosisFacts {
  return {
    instanceId,
    os: 'linux',
    profileArn: 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent',
    role: { roleName: 'cwap-dev-agent', missing: [] },
    ssm: { pingStatus: 'Online', agentVersion: '3.3.40.0', platformType: 'Linux', lastPing: '2026-01-10T10:04:00.000Z' },
    command: commandStatusOf({}),
    metrics: {
      expected: [
        { namespace: 'CloudWatch/TestMetrics', metricName: 'MEMORY_USED', measures: 'memory-used-percent' },
        { namespace: 'CloudWatch/TestMetrics', metricName: 'DISK_USED', measures: 'disk-used-percent' },
      ],
      present: [],
      missing: ['MEMORY_USED', 'DISK_USED'],
      firstDatapointAt: undefined,
      window: { start: launchTime, end: '2026-01-10T10:10:00.000Z' },
    },
    region: 'us-east-1',
    agentProfileName: 'cwap-dev-agent',
    agentDocumentName: 'cwap-dev-install-agent',
    configParameter: 'AmazonCloudWatch-cwap-dev-linux',
    checkFunctionName: 'cwap-dev-check',
    ...changes,
  };
}

export function recordOf(changes: Partial<OnboardingRecord> = {}): OnboardingRecord {
  return {
    ...hubRecordKey(instanceId),
    instanceId,
    status: 'checking',
    version: 4,
    os: 'linux',
    name: 'web-1',
    launchTime,
    profilePath: 'associated-agent-profile',
    profileArn: 'arn:aws:iam::123456789012:instance-profile/cwap-dev-agent',
    commandId: 'cmd-1',
    commandSentAt: '2026-01-10T10:01:00.000Z',
    ssmAttempts: 0,
    checkAttempts: 0,
    createdAt: launchTime,
    updatedAt: launchTime,
    history: [],
    ...changes,
  };
}
