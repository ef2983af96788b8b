import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument, type Tags } from 'yaml';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  AddRoleToInstanceProfileCommand,
  AttachRolePolicyCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  IAMClient,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { CreateFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CreateScheduleGroupCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { CreateDocumentCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { renderedAgentConfigs } from '../../shared/agent-config.js';
import { parseSettings, type Settings } from '../../shared/config/settings.js';
import { localClientConfig } from './client-config.js';

/** moto's account. */
export const testAccountId = '123456789012';
export const testRegion = 'us-east-1';

/** The AWS managed policies the agent role carries. */
export const agentManagedPolicies = [
  'arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy',
  'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore',
] as const;

const installDocumentFile = fileURLToPath(new URL('../../agent-config/install-and-configure.json', import.meta.url));
const serverlessFile = fileURLToPath(new URL('../../serverless.yml', import.meta.url));

/**
 * How Lambda's SQS event source mapping feeds the onboard function, and how the onboard queue keeps
 * the messages it is given back, as serverless.yml deploys them.
 */
export interface OnboardQueueSettings {
  /** `cwap-<stage>-onboard`. */
  queueName: string;
  queueArn: string;
  /** `cwap-<stage>-onboard-dead-letters`: where SQS moves a message received `maxReceiveCount` times. */
  deadLetterQueueName: string;
  /** The event source mapping's BatchSize (the `onboardBatchSize` param). */
  batchSize: number;
  /** Its MaximumBatchingWindowInSeconds (the `onboardBatchWindowSeconds` param). */
  batchWindowSeconds: number;
  /** FunctionResponseTypes includes ReportBatchItemFailures: the function's response names the messages to deliver again. */
  reportBatchItemFailures: boolean;
  /** The queue's VisibilityTimeout, in seconds: how long a received message stays hidden. */
  visibilityTimeoutSeconds: number;
  /** The queue's RedrivePolicy maxReceiveCount. */
  maxReceiveCount: number;
}

// CloudFormation short tags (!Ref, !Sub, !GetAtt...) read as their plain values.
const cfnTags: Tags = ['!Ref', '!Sub', '!GetAtt', '!Not', '!Equals', '!Or', '!And', '!If', '!Split', '!Condition'].map((tag) => ({ tag, resolve: (value: unknown) => value }));

interface ServerlessFile {
  params?: { default?: Record<string, unknown> };
  functions?: Record<string, { events?: { sqs?: Record<string, unknown> }[] }>;
  resources?: { Resources?: Record<string, { Type?: string; Properties?: Record<string, unknown> }> }[];
}

/**
 * The onboard queue and its event source mapping as serverless.yml deploys them for a stage: the
 * `sqs` event of the onboard function (its `${param:...}` values read from `params.default`) and
 * the OnboardQueue resource. The simulator reads its figures here, so that they cannot drift from
 * the deployed ones.
 *
 * @example
 * const { batchSize, batchWindowSeconds, visibilityTimeoutSeconds } = onboardQueueSettings('test');
 */
export function onboardQueueSettings(stage = 'test'): OnboardQueueSettings {
  const template = parseDocument(readFileSync(serverlessFile, 'utf8'), { customTags: cfnTags }).toJS() as ServerlessFile;
  const params = template.params?.default ?? {};
  const resolve = (value: unknown, name: string): number => {
    const param = typeof value === 'string' ? /^\$\{param:(\w+)\}$/.exec(value)?.[1] : undefined;
    const resolved = Number(param ? params[param] : value);
    if (!Number.isFinite(resolved)) throw new Error(`serverless.yml: ${name} is not a number (${JSON.stringify(value)})`);
    return resolved;
  };
  const sqs = template.functions?.onboard?.events?.find((event) => event.sqs)?.sqs;
  if (!sqs) throw new Error('serverless.yml: the onboard function has no sqs event');
  const resources = Object.assign({}, ...(template.resources ?? []).map((fragment) => fragment.Resources ?? {})) as Record<string, { Properties?: Record<string, unknown> }>;
  const queue = resources.OnboardQueue?.Properties;
  const deadLetters = resources.OnboardDeadLetterQueue?.Properties;
  if (!queue || !deadLetters) throw new Error('serverless.yml: no OnboardQueue / OnboardDeadLetterQueue resource');
  const named = (value: unknown) => String(value).replace('${self:custom.prefix}', `cwap-${stage}`);
  const queueName = named(queue.QueueName);
  return {
    queueName,
    queueArn: `arn:aws:sqs:${testRegion}:${testAccountId}:${queueName}`,
    deadLetterQueueName: named(deadLetters.QueueName),
    batchSize: resolve(sqs.batchSize, 'functions.onboard sqs batchSize'),
    batchWindowSeconds: resolve(sqs.maximumBatchingWindow ?? 0, 'functions.onboard sqs maximumBatchingWindow'),
    reportBatchItemFailures: sqs.functionResponseType === 'ReportBatchItemFailures',
    visibilityTimeoutSeconds: resolve(queue.VisibilityTimeout, 'OnboardQueue VisibilityTimeout'),
    maxReceiveCount: resolve((queue.RedrivePolicy as { maxReceiveCount?: unknown } | undefined)?.maxReceiveCount, 'OnboardQueue RedrivePolicy.maxReceiveCount'),
  };
}

/** Options of {@link deployStack}; every one has a default. */
export interface StackOptions {
  /** The serverless stage; resources are named `cwap-<stage>-...` as serverless.yml names them. Default `test`. */
  stage?: string;
  /** Environment values that replace the defaults (any variable parseSettings reads). */
  env?: Record<string, string>;
  /** Endpoint to create the resources at. Default `process.env.AWS_ENDPOINT_URL`. */
  endpoint?: string;
}

/** What {@link deployStack} created, and the environment the Lambda functions would get. */
export interface DeployedStack {
  /** The functions' environment: give it to parseSettings, or copy it into process.env. */
  env: Record<string, string>;
  settings: Settings;
  agentRole: { name: string; arn: string };
  agentProfile: { name: string; arn: string };
  schedulerRole: { name: string; arn: string };
  alertTopicArn: string;
  /** The onboard queue and its event source mapping (serverless.yml); the queue itself is played by the fleet simulator. */
  onboardQueue: OnboardQueueSettings;
}

/**
 * The environment serverless.yml gives the functions of a stage (its `params.default` values and
 * resource names), before overrides. Differences from a deployed stack, for tests: a 1 ms
 * instance-profile retry delay and WARN logs.
 */
export function stackEnvironment(stage = 'test'): Record<string, string> {
  const prefix = `cwap-${stage}`;
  const lambda = (name: string) => `arn:aws:lambda:${testRegion}:${testAccountId}:function:cw-agent-autopilot-${stage}-${name}`;
  return {
    RESOURCE_PREFIX: prefix,
    STATE_TABLE: `${prefix}-records`,
    AGENT_PROFILE_NAME: `${prefix}-agent`,
    AGENT_DOCUMENT_NAME: `${prefix}-install-and-configure`,
    LINUX_CONFIG_PARAMETER: `AmazonCloudWatch-${prefix}-linux`,
    WINDOWS_CONFIG_PARAMETER: `AmazonCloudWatch-${prefix}-windows`,
    METRIC_NAMESPACE: 'CloudWatch/TestMetrics',
    MEMORY_METRIC: 'MEMORY_USED',
    DISK_METRIC: 'DISK_USED',
    WINDOWS_DISK_FREE_METRIC: 'DISK_FREE',
    OPT_OUT_TAG: 'cw-autopilot:skip=true',
    OPT_IN_TAG: '',
    MODIFY_EXISTING_ROLES: 'true',
    SSM_MAX_ATTEMPTS: '8',
    SSM_RETRY_DELAY_SECONDS: '300',
    CHECK_DELAY_SECONDS: '300',
    WINDOWS_GRACE_SECONDS: '300',
    PROFILE_RETRY_ATTEMPTS: '5',
    // Tests must not wait a second between instance-profile retries.
    PROFILE_RETRY_BASE_DELAY_MS: '1',
    ONBOARD_FUNCTION_ARN: lambda('onboard'),
    CHECK_FUNCTION_ARN: lambda('check'),
    SCHEDULER_ROLE_ARN: `arn:aws:iam::${testAccountId}:role/${prefix}-scheduler`,
    SCHEDULE_GROUP: prefix,
    ALERT_TOPIC_ARN: `arn:aws:sns:${testRegion}:${testAccountId}:${prefix}-alerts`,
    CHECK_MAX_ATTEMPTS: '3',
    CHECK_RETRY_DELAY_SECONDS: '300',
    METRIC_LOOKBACK_SECONDS: '900',
    MEMORY_ALARM_THRESHOLD: '90',
    DISK_ALARM_THRESHOLD: '90',
    ALARM_PERIOD_SECONDS: '300',
    ALARM_EVALUATION_PERIODS: '3',
    MISSING_DATA_ALARM_MINUTES: '15',
    GONE_RECORD_RETENTION_DAYS: '90',
    POWERTOOLS_METRICS_NAMESPACE: 'CWAgentAutopilot',
    POWERTOOLS_SERVICE_NAME: 'cw-agent-autopilot',
    POWERTOOLS_LOG_LEVEL: 'WARN',
    // The hub's own account and region only (serverless.yml's defaults).
    ACCOUNTS: '',
    REGIONS: '',
    ORGANIZATION_ID: '',
    // Pacing of the onboard batch (serverless.yml's defaults).
    PACING_SHARE: '0.5',
    PACING_CONCURRENCY: '2',
    // Small batches join an install window of this length (serverless.yml's default).
    INSTALL_WINDOW_SECONDS: '60',
    AWS_REGION: testRegion,
  };
}

function trustPolicy(service: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }],
  });
}

/**
 * Creates in moto what the real stack creates, from the same source files: the state table, the
 * agent role (CloudWatchAgentServerPolicy + AmazonSSMManagedInstanceCore) and its instance
 * profile, the install-and-configure Command document, the two `AmazonCloudWatch-*` agent config
 * parameters (rendered by `renderedAgentConfigs`), the scheduler role, the schedule group and the
 * alert topic.
 * Names follow serverless.yml for the stage.
 *
 * @example
 * const stack = await deployStack({ env: { METRIC_NAMESPACE: 'Test/Ns' } });
 * Object.assign(process.env, stack.env);
 */
export async function deployStack(options: StackOptions = {}): Promise<DeployedStack> {
  const env = { ...stackEnvironment(options.stage), ...options.env };
  const settings = parseSettings(env);
  const config = localClientConfig(options.endpoint);
  const iam = new IAMClient(config);
  const ssm = new SSMClient(config);
  const dynamodb = new DynamoDBClient(config);
  const sns = new SNSClient(config);
  try {
    await dynamodb.send(
      new CreateTableCommand({
        TableName: settings.stateTable,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'recordKey', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'recordKey', KeyType: 'HASH' }],
      }),
    );

    const agentRoleName = settings.agentProfileName;
    const agentRole = await iam.send(
      new CreateRoleCommand({ RoleName: agentRoleName, AssumeRolePolicyDocument: trustPolicy('ec2.amazonaws.com') }),
    );
    for (const policyArn of agentManagedPolicies) {
      try {
        await iam.send(new AttachRolePolicyCommand({ RoleName: agentRoleName, PolicyArn: policyArn }));
      } catch (error) {
        throw new Error(
          `deployStack: cannot attach ${policyArn} (${error instanceof Error ? error.message : String(error)}). ` +
            'moto has AWS managed policies only when started with MOTO_IAM_LOAD_MANAGED_POLICIES=true',
        );
      }
    }
    const profile = await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: settings.agentProfileName }));
    await iam.send(
      new AddRoleToInstanceProfileCommand({ InstanceProfileName: settings.agentProfileName, RoleName: agentRoleName }),
    );

    await ssm.send(
      new CreateDocumentCommand({
        Name: settings.agentDocumentName,
        DocumentType: 'Command',
        DocumentFormat: 'JSON',
        Content: readFileSync(installDocumentFile, 'utf8'),
      }),
    );
    const configs = renderedAgentConfigs(settings.metrics);
    for (const os of ['linux', 'windows'] as const) {
      await ssm.send(
        new PutParameterCommand({
          Name: settings.configParameter[os],
          Type: 'String',
          Tier: 'Standard',
          Value: configs[os],
          Description: `cw-agent-autopilot: CloudWatch agent config (${os})`,
        }),
      );
    }

    const schedulerRoleName = settings.schedulerRoleArn.slice(settings.schedulerRoleArn.lastIndexOf('/') + 1);
    const schedulerRole = await iam.send(
      new CreateRoleCommand({ RoleName: schedulerRoleName, AssumeRolePolicyDocument: trustPolicy('scheduler.amazonaws.com') }),
    );
    await iam.send(
      new PutRolePolicyCommand({
        RoleName: schedulerRoleName,
        PolicyName: 'invoke-functions',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: 'lambda:InvokeFunction',
              Resource: [settings.onboardFunctionArn, settings.checkFunctionArn],
            },
          ],
        }),
      }),
    );

    const scheduler = new SchedulerClient(config);
    await scheduler.send(new CreateScheduleGroupCommand({ Name: settings.scheduleGroup }));
    scheduler.destroy();

    const topicName = settings.alertTopicArn.slice(settings.alertTopicArn.lastIndexOf(':') + 1);
    const topic = await sns.send(new CreateTopicCommand({ Name: topicName }));

    return {
      env,
      settings,
      agentRole: { name: agentRoleName, arn: agentRole.Role?.Arn ?? '' },
      agentProfile: { name: settings.agentProfileName, arn: profile.InstanceProfile?.Arn ?? '' },
      schedulerRole: { name: schedulerRoleName, arn: schedulerRole.Role?.Arn ?? settings.schedulerRoleArn },
      alertTopicArn: topic.TopicArn ?? settings.alertTopicArn,
      onboardQueue: onboardQueueSettings(options.stage),
    };
  } finally {
    iam.destroy();
    ssm.destroy();
    dynamodb.destroy();
    sns.destroy();
  }
}

/**
 * Creates the stack's onboard function in moto with the functions' environment, as serverless.yml
 * does: the CLI reads its settings from it. moto stores the function without running it (an empty
 * zip is code enough).
 */
export async function deployOnboardFunction(stack: DeployedStack, stage = 'test'): Promise<void> {
  const iam = new IAMClient(localClientConfig());
  const lambda = new LambdaClient(localClientConfig());
  const role = await iam.send(new CreateRoleCommand({ RoleName: `cwap-${stage}-onboard`, AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }] }) }));
  const { AWS_REGION: _reserved, ...variables } = stack.env;
  await lambda.send(
    new CreateFunctionCommand({
      FunctionName: `cw-agent-autopilot-${stage}-onboard`,
      Runtime: 'nodejs20.x',
      Handler: 'onboard.handler',
      Role: role.Role?.Arn,
      Code: { ZipFile: Buffer.from(`504b0506${'00'.repeat(18)}`, 'hex') },
      Environment: { Variables: variables },
    }),
  );
  iam.destroy();
  lambda.destroy();
}
