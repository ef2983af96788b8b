'use strict';
// What must exist in every account and region the product covers, written once for both stacks:
// - the hub (serverless.yml) pulls `hubResources` and `hubPolicies.<function>` through
//   `${file(./deploy/agent-resources.cjs):...}`; osls resolves the `${self:...}` and `${file(...)}`
//   variables left in these values, so the packaged template holds plain names, as before;
// - the member stack (member/member-stack.json, written by scripts/build-member-template.mjs)
//   takes `agentResources(memberNaming, ...)` and `instanceStatements(memberNaming)`, whose names
//   are Fn::Sub of its Stage parameter.
// The statements a function needs on instances and their roles, documents and alarms
// (`instanceStatements`) are the hub role's own-account statements and the member execution
// role's statements alike: neither can gain an action the other lacks.
// CommonJS because osls `require`s variable-source files.

const fs = require('node:fs');
const path = require('node:path');

/** The four functions, each with a role in the hub and an execution role in every member. */
const functionKeys = ['onboard', 'check', 'offboard', 'audit'];

/**
 * How the hub names things: osls variables, resolved at package time. A name is the text itself.
 * @type {Naming}
 */
const hubNaming = {
  prefix: '${self:custom.prefix}',
  iamPrefix: '${self:custom.iamPrefix}',
  name: (text) => text,
};

/**
 * How a member stack names things: its Stage parameter, resolved by CloudFormation. A name is an
 * Fn::Sub. The same names as the hub's for the same stage and region.
 * @type {Naming}
 */
const memberNaming = {
  prefix: 'cwap-${Stage}',
  iamPrefix: 'cwap-${Stage}-${AWS::Region}',
  name: (text) => ({ 'Fn::Sub': text }),
};

/**
 * @typedef {object} Naming
 * @property {string} prefix text of `cwap-<stage>`, usable inside an Fn::Sub
 * @property {string} iamPrefix text of `cwap-<stage>-<region>` (IAM names are global to an account)
 * @property {(text: string) => unknown} name a property value naming something from that text
 */

const agentPolicyArns = [
  { 'Fn::Sub': 'arn:${AWS::Partition}:iam::aws:policy/CloudWatchAgentServerPolicy' },
  { 'Fn::Sub': 'arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore' },
];

/** The install-and-configure Command document, as the repo keeps it. */
function installDocumentContent() {
  return JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'agent-config', 'install-and-configure.json'), 'utf8'));
}

/**
 * The agent role and its instance profile, the install document and the two agent config
 * parameters, by the logical ids both stacks use.
 *
 * @param {Naming} naming
 * @param {{ linux: string, windows: string }} configs the parameter values: rendered configs, or
 *   for the hub the osls variables that render them at package time
 */
function agentResources(naming, configs) {
  return {
    // The role the stack gives an instance that has no profile of its own.
    AgentRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        RoleName: naming.name(`${naming.iamPrefix}-agent`),
        Description: 'EC2 instances onboarded by cw-agent-autopilot (CloudWatch agent + SSM)',
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        },
        ManagedPolicyArns: agentPolicyArns,
      },
    },
    AgentInstanceProfile: {
      Type: 'AWS::IAM::InstanceProfile',
      Properties: {
        InstanceProfileName: naming.name(`${naming.iamPrefix}-agent`),
        Roles: [{ Ref: 'AgentRole' }],
      },
    },
    InstallAndConfigureDocument: {
      Type: 'AWS::SSM::Document',
      Properties: {
        Name: naming.name(`${naming.prefix}-install-and-configure`),
        DocumentType: 'Command',
        DocumentFormat: 'JSON',
        // A named document cannot be replaced in place: publish content changes as a new version.
        UpdateMethod: 'NewVersion',
        Content: installDocumentContent(),
      },
    },
    // CloudWatchAgentServerPolicy lets the agent read only parameters named AmazonCloudWatch-*.
    LinuxAgentConfigParameter: {
      Type: 'AWS::SSM::Parameter',
      Properties: {
        Name: naming.name(`AmazonCloudWatch-${naming.prefix}-linux`),
        Description: 'CloudWatch agent config for Linux instances (rendered from agent-config/linux.json)',
        Type: 'String',
        Tier: 'Standard',
        Value: configs.linux,
      },
    },
    WindowsAgentConfigParameter: {
      Type: 'AWS::SSM::Parameter',
      Properties: {
        Name: naming.name(`AmazonCloudWatch-${naming.prefix}-windows`),
        Description: 'CloudWatch agent config for Windows instances (rendered from agent-config/windows.json)',
        Type: 'String',
        Tier: 'Standard',
        Value: configs.windows,
      },
    },
  };
}

const sub = (text) => ({ 'Fn::Sub': text });
const instances = 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*';
const profiles = 'arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/*';
const roles = 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*';
const installDocument = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:document/${InstallAndConfigureDocument}';

/**
 * What each function may do to the instances of one account and region, and to their roles,
 * the install document and the instances' alarms there: every ARN is the stack's own account and
 * region (`${AWS::AccountId}`, `${AWS::Region}`). The hub role carries these beside its hub-only
 * statements; a member's execution role carries exactly these.
 *
 * @param {Naming} naming
 * @returns {Record<'onboard' | 'check' | 'offboard' | 'audit', object[]>}
 */
function instanceStatements(naming) {
  // Only the alarms named <prefix>-<instanceId>-...: never the hub's alarms on its functions.
  const instanceAlarms = sub(`arn:\${AWS::Partition}:cloudwatch:\${AWS::Region}:\${AWS::AccountId}:alarm:${naming.prefix}-i-*`);
  const readExistingProfiles = { Sid: 'ReadExistingProfiles', Effect: 'Allow', Action: 'iam:GetInstanceProfile', Resource: sub(profiles) };
  const readExistingRolePolicies = { Sid: 'ReadExistingRolePolicies', Effect: 'Allow', Action: 'iam:ListAttachedRolePolicies', Resource: sub(roles) };
  const runInstallDocument = { Sid: 'RunInstallDocument', Effect: 'Allow', Action: 'ssm:SendCommand', Resource: [sub(installDocument), sub(instances)] };
  return {
    onboard: [
      // Describe* calls have no resource-level permissions.
      { Sid: 'ReadInstances', Effect: 'Allow', Action: ['ec2:DescribeInstances', 'ec2:DescribeIamInstanceProfileAssociations'], Resource: '*' },
      { Sid: 'AssociateProfile', Effect: 'Allow', Action: 'ec2:AssociateIamInstanceProfile', Resource: sub(instances) },
      {
        Sid: 'PassAgentRoleToEc2',
        Effect: 'Allow',
        Action: 'iam:PassRole',
        Resource: { 'Fn::GetAtt': ['AgentRole', 'Arn'] },
        Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      },
      // Reads the profile a workload already uses, to add the policies to its role.
      { ...readExistingProfiles, Action: ['iam:GetInstanceProfile'] },
      { ...readExistingRolePolicies, Action: ['iam:ListAttachedRolePolicies'] },
      // Only ever these two AWS managed policies, never any other.
      {
        Sid: 'AttachAgentPolicies',
        Effect: 'Allow',
        Action: 'iam:AttachRolePolicy',
        Resource: sub(roles),
        Condition: { ArnEquals: { 'iam:PolicyARN': agentPolicyArns } },
      },
      // Onboarding only sends the install command; the checker reads how it went.
      { Sid: 'SeeManagedInstances', Effect: 'Allow', Action: 'ssm:DescribeInstanceInformation', Resource: '*' },
      runInstallDocument,
    ],
    check: [
      { Sid: 'ReadInstances', Effect: 'Allow', Action: 'ec2:DescribeInstances', Resource: '*' },
      // GetMetricData and DescribeAlarms have no resource-level permissions.
      { Sid: 'ReadMetricsAndAlarms', Effect: 'Allow', Action: ['cloudwatch:GetMetricData', 'cloudwatch:DescribeAlarms'], Resource: '*' },
      // PutMetricAlarm with Tags needs TagResource.
      {
        Sid: 'ManageInstanceAlarms',
        Effect: 'Allow',
        Action: ['cloudwatch:PutMetricAlarm', 'cloudwatch:DeleteAlarms', 'cloudwatch:TagResource'],
        Resource: instanceAlarms,
      },
      // Diagnosis: the instance role's policies, Systems Manager presence, the install command.
      readExistingProfiles,
      readExistingRolePolicies,
      { Sid: 'SeeManagedInstances', Effect: 'Allow', Action: ['ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation'], Resource: '*' },
      // Re-sends the install command when it failed or timed out.
      runInstallDocument,
    ],
    offboard: [
      { Sid: 'FindInstanceAlarms', Effect: 'Allow', Action: 'cloudwatch:DescribeAlarms', Resource: '*' },
      { Sid: 'DeleteInstanceAlarms', Effect: 'Allow', Action: 'cloudwatch:DeleteAlarms', Resource: instanceAlarms },
      // A stop event may arrive after the instance was started again: EC2 says which.
      { Sid: 'ReadInstanceState', Effect: 'Allow', Action: 'ec2:DescribeInstances', Resource: '*' },
    ],
    audit: [
      { Sid: 'ReadInstances', Effect: 'Allow', Action: ['ec2:DescribeInstances', 'ec2:DescribeIamInstanceProfileAssociations'], Resource: '*' },
      { Sid: 'ReadProfiles', Effect: 'Allow', Action: 'iam:GetInstanceProfile', Resource: sub(profiles) },
      { Sid: 'ReadRolePolicies', Effect: 'Allow', Action: 'iam:ListAttachedRolePolicies', Resource: sub(roles) },
      { Sid: 'SeeManagedInstances', Effect: 'Allow', Action: 'ssm:DescribeInstanceInformation', Resource: '*' },
      { Sid: 'ReadMetrics', Effect: 'Allow', Action: 'cloudwatch:GetMetricData', Resource: '*' },
    ],
  };
}

/**
 * The hub function roles' inline policies: the hub-only statements (their log groups, the state
 * table, the alert topic, the schedules, the onboard function) around the function's
 * {@link instanceStatements} for the hub's own account and region.
 */
function hubPolicies() {
  const inAccount = instanceStatements(hubNaming);
  const ownLogs = (fn) => ({
    Sid: 'OwnLogs',
    Effect: 'Allow',
    Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    Resource: sub(`arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/\${self:custom.${fn}FunctionName}:*`),
  });
  const alertTopic = { Ref: 'AlertTopic' };
  const failedInvocationsToAlertTopic = { Sid: 'FailedInvocationsToAlertTopic', Effect: 'Allow', Action: 'sns:Publish', Resource: alertTopic };
  const state = { Sid: 'State', Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:PutItem'], Resource: { 'Fn::GetAtt': ['StateTable', 'Arn'] } };
  const schedules = sub('arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${self:custom.prefix}/${self:custom.prefix}-*');
  const passSchedulerRole = {
    Sid: 'PassSchedulerRole',
    Effect: 'Allow',
    Action: 'iam:PassRole',
    Resource: { 'Fn::GetAtt': ['SchedulerTargetRole', 'Arn'] },
    Condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
  };
  const document = (statements) => ({ Version: '2012-10-17', Statement: statements });
  return {
    onboard: document([
      ownLogs('onboard'),
      failedInvocationsToAlertTopic,
      // A batch of the onboard queue reads its records 100 a BatchGetItem. UpdateItem: the install
      // window item (shared/state/install-window.ts) is a set that concurrent containers add to and
      // its run closes; the instance records stay versioned Puts.
      { ...state, Action: [...state.Action, 'dynamodb:BatchGetItem', 'dynamodb:UpdateItem'] },
      // What Lambda's SQS event source mapping does with the function's role.
      {
        Sid: 'ConsumeOnboardQueue',
        Effect: 'Allow',
        Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'],
        Resource: { 'Fn::GetAtt': ['OnboardQueue', 'Arn'] },
      },
      // The function's own call: a message the pacing left for later comes back when its tokens
      // do. ChangeMessageVisibilityBatch has no action of its own: sqs:ChangeMessageVisibility
      // authorizes it (SQS developer guide, "Amazon SQS API permissions: Actions and resource reference").
      { Sid: 'TimeDeferredMessages', Effect: 'Allow', Action: 'sqs:ChangeMessageVisibility', Resource: { 'Fn::GetAtt': ['OnboardQueue', 'Arn'] } },
      ...inAccount.onboard,
      { Sid: 'ScheduleNextStep', Effect: 'Allow', Action: 'scheduler:CreateSchedule', Resource: schedules },
      passSchedulerRole,
    ]),
    check: document([
      ownLogs('check'),
      // A batch check reads its instances' records 100 a BatchGetItem.
      { ...state, Action: [...state.Action, 'dynamodb:BatchGetItem'] },
      { Sid: 'Alert', Effect: 'Allow', Action: 'sns:Publish', Resource: alertTopic },
      ...inAccount.check,
      // Its own re-checks; and an instance's pending schedules when it is gone.
      { Sid: 'ScheduleChecks', Effect: 'Allow', Action: ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'], Resource: schedules },
      passSchedulerRole,
    ]),
    offboard: document([
      ownLogs('offboard'),
      failedInvocationsToAlertTopic,
      state,
      ...inAccount.offboard,
      { Sid: 'DeletePendingSchedules', Effect: 'Allow', Action: 'scheduler:DeleteSchedule', Resource: schedules },
    ]),
    audit: document([
      ownLogs('audit'),
      // The audit reads records with BatchGetItem only (100 keys a call); it never writes.
      { Sid: 'ReadState', Effect: 'Allow', Action: 'dynamodb:BatchGetItem', Resource: { 'Fn::GetAtt': ['StateTable', 'Arn'] } },
      ...inAccount.audit,
      // The summary, and the record of a scheduled audit that failed all its retries.
      { Sid: 'PublishSummary', Effect: 'Allow', Action: 'sns:Publish', Resource: alertTopic },
      // Remediation asks the onboard function (same code path as the EC2 event).
      {
        Sid: 'StartOnboarding',
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: sub('arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${self:custom.onboardFunctionName}'),
      },
    ]),
  };
}

module.exports = {
  functionKeys,
  hubNaming,
  memberNaming,
  agentResources,
  instanceStatements,
  // osls variable sources (serverless.yml): the agent config values render at package time.
  hubResources: { Resources: agentResources(hubNaming, {
    linux: '${file(./scripts/render-agent-config.cjs):linux}',
    windows: '${file(./scripts/render-agent-config.cjs):windows}',
  }) },
  hubPolicies: hubPolicies(),
};
