import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderedAgentConfigs } from '../../shared/agent-config.js';
import { functionAlarms } from '../../shared/observability/product-dashboard.js';
import { productMetricNames } from '../../shared/observability/product-metrics.js';
import { parseSettings, type Settings } from '../../shared/config/settings.js';
import { agentConfigSchemaAvailable, agentConfigSchemaErrors, agentConfigSchemaPath, agentConfigSchemaValidator } from '../agent-config/agent-config-schema.js';
import { cfnLint, cloudFormationTemplatesUnder, packagedTemplates, type CfnLintFinding } from './cfn-lint.js';
import { emittedSeries, type EmittedSeries } from '../harness/emf.js';
import { alarmReferences, dashboardReferences, unmatchedReferences, unreferencedSeries, type MetricReference } from './metric-references.js';

// Packages the real serverless.yml with osls (offline: no AWS call, no login) and reads the
// CloudFormation template it would deploy. The same two packagings are linted with cfn-lint and
// their agent config parameters validated against the agent's schema (below), so nothing packages twice.

const repo = fileURLToPath(new URL('../../', import.meta.url));
const osls = path.join(repo, 'node_modules', 'osls', 'bin', 'serverless.js');
const account = '123456789012';
const region = 'us-east-1';
const agentPolicyArns = [
  'arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy',
  'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore',
];

interface Resource {
  Type: string;
  Properties: Record<string, any>;
  DependsOn?: string[];
}
interface Template {
  Parameters?: Record<string, { Type: string; Default?: string }>;
  Conditions?: Record<string, unknown>;
  Resources: Record<string, Resource>;
  Outputs: Record<string, { Value: unknown }>;
}
interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  NotAction?: unknown;
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

const outputDirectories: string[] = [];

/** Runs `osls package` into a fresh directory and returns that directory. */
async function packageStack(...extraArgs: string[]): Promise<string> {
  const output = mkdtempSync(path.join(tmpdir(), 'cwap-package-'));
  outputDirectories.push(output);
  try {
    await promisify(execFile)(
      process.execPath,
      [osls, 'package', '--stage', 'test', '--region', region, '--package', output, ...extraArgs],
      {
        cwd: repo,
        env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off', AWS_EC2_METADATA_DISABLED: 'true' },
        maxBuffer: 16 * 1024 * 1024,
      },
    );
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`osls package failed: ${failed.message}\n${failed.stdout ?? ''}\n${failed.stderr ?? ''}`);
  }
  return output;
}

/** The update-stack template osls wrote into a package directory: what a deploy sends. */
function readTemplate(directory: string): Template {
  return JSON.parse(readFileSync(path.join(directory, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
}

/**
 * Evaluates the intrinsic functions the template uses, as CloudFormation would in `account` /
 * `region` with every stack parameter at its default (osls passes none): Ref (a parameter, a
 * resource's name or ARN), Fn::GetAtt .Arn, Fn::Sub. Anything else fails the test.
 */
function evaluate(template: Template, value: unknown): unknown {
  const refOf = (name: string): string => {
    const pseudo: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::Region': region, 'AWS::AccountId': account };
    if (pseudo[name]) return pseudo[name];
    const parameter = template.Parameters?.[name];
    if (parameter) {
      if (parameter.Default === undefined) throw new Error(`parameter ${name} has no default, and osls passes no parameters`);
      return parameter.Default;
    }
    const resource = template.Resources[name];
    if (!resource) throw new Error(`Ref to unknown resource ${name}`);
    const p = resource.Properties;
    switch (resource.Type) {
      case 'AWS::DynamoDB::Table':
        return p.TableName;
      case 'AWS::IAM::InstanceProfile':
        return p.InstanceProfileName;
      case 'AWS::IAM::Role':
        return p.RoleName ?? name;
      case 'AWS::SSM::Document':
      case 'AWS::SSM::Parameter':
      case 'AWS::Scheduler::ScheduleGroup':
        return p.Name;
      case 'AWS::SNS::Topic':
        return `arn:aws:sns:${region}:${account}:${p.TopicName ?? name}`;
      case 'AWS::Lambda::Function':
        return p.FunctionName;
      case 'AWS::CloudWatch::Dashboard':
        return p.DashboardName;
      case 'AWS::SQS::Queue':
        return `https://sqs.${region}.amazonaws.com/${account}/${p.QueueName}`;
      case 'AWS::Events::EventBus':
        return p.Name;
      default:
        throw new Error(`Ref to ${resource.Type} (${name}) is not modelled by this test`);
    }
  };
  const arnOf = (name: string): string => {
    const resource = template.Resources[name];
    if (!resource) throw new Error(`GetAtt of unknown resource ${name}`);
    const p = resource.Properties;
    switch (resource.Type) {
      case 'AWS::IAM::Role':
        return `arn:aws:iam::${account}:role/${p.RoleName ?? name}`;
      case 'AWS::DynamoDB::Table':
        return `arn:aws:dynamodb:${region}:${account}:table/${p.TableName}`;
      case 'AWS::Lambda::Function':
        return `arn:aws:lambda:${region}:${account}:function:${p.FunctionName}`;
      case 'AWS::SNS::Topic':
        return refOf(name);
      case 'AWS::SQS::Queue':
        return `arn:aws:sqs:${region}:${account}:${p.QueueName}`;
      case 'AWS::Events::Rule':
        return `arn:aws:events:${region}:${account}:rule/${p.EventBusName ? `${evaluate(template, p.EventBusName) as string}/` : ''}${p.Name}`;
      default:
        throw new Error(`GetAtt ${name}.Arn of ${resource.Type} is not modelled by this test`);
    }
  };
  if (Array.isArray(value)) return value.map((item) => evaluate(template, item));
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  const [key, argument] = entries[0] ?? [];
  if (entries.length === 1 && key === 'Ref') return refOf(argument as string);
  if (entries.length === 1 && key === 'Fn::GetAtt') {
    const [name, attribute] = argument as [string, string];
    if (attribute !== 'Arn') throw new Error(`GetAtt ${name}.${attribute} is not modelled by this test`);
    return arnOf(name);
  }
  if (entries.length === 1 && key === 'Fn::Sub') {
    if (typeof argument !== 'string') throw new Error('Fn::Sub with a variable map is not modelled by this test');
    return argument.replace(/\$\{([^}!]+)\}/g, (_match, name: string) =>
      name.endsWith('.Arn') ? arnOf(name.slice(0, -4)) : refOf(name),
    );
  }
  if (entries.length === 1 && key === 'Fn::Join') {
    const [separator, parts] = argument as [string, unknown[]];
    return parts.map((part) => evaluate(template, part)).join(separator);
  }
  if (key?.startsWith('Fn::')) throw new Error(`${key} is not modelled by this test`);
  return Object.fromEntries(entries.map(([k, v]) => [k, evaluate(template, v)]));
}

const asList = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

/** Whether a condition of the template holds with the parameters at their defaults. */
function conditionHolds(template: Template, name: string): boolean {
  const holds = (condition: unknown): boolean => {
    const [[fn, argument] = []] = Object.entries(condition as Record<string, unknown>);
    if (fn === 'Fn::Not') return !holds((argument as [unknown])[0]);
    if (fn === 'Fn::Equals') {
      const [left, right] = (argument as [unknown, unknown]).map((side) => evaluate(template, side));
      return left === right;
    }
    throw new Error(`condition ${name}: ${String(fn)} is not modelled by this test`);
  };
  const condition = template.Conditions?.[name];
  if (!condition) throw new Error(`no condition ${name} in the template`);
  return holds(condition);
}

function resourcesOfType(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
}

/** Every IAM statement in the template, evaluated, with where it came from. */
function iamStatements(template: Template): { where: string; statement: Statement }[] {
  const found: { where: string; statement: Statement }[] = [];
  for (const [name, resource] of Object.entries(template.Resources)) {
    const documents: unknown[] = [];
    if (resource.Type === 'AWS::IAM::Role') {
      for (const policy of resource.Properties.Policies ?? []) documents.push(policy.PolicyDocument);
    }
    if (['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy'].includes(resource.Type)) documents.push(resource.Properties.PolicyDocument);
    for (const document of documents) {
      const evaluated = evaluate(template, document) as { Statement: Statement | Statement[] };
      for (const statement of asList(evaluated.Statement)) found.push({ where: `${name}/${statement.Sid ?? '?'}`, statement });
    }
  }
  return found;
}

/** The statements of a role's inline policies that allow `action`. */
function allowing(template: Template, roleName: string, action: string): Statement[] {
  return iamStatements(template)
    .filter(({ where }) => where.startsWith(`${roleName}/`))
    .map(({ statement }) => statement)
    .filter((statement) => statement.Effect === 'Allow' && asList(statement.Action).includes(action));
}

function functionNamed(template: Template, name: string): Resource {
  const found = resourcesOfType(template, 'AWS::Lambda::Function').find(([, r]) => r.Properties.FunctionName === name);
  if (!found) throw new Error(`no function ${name} in the template`);
  return found[1];
}

function environmentOf(template: Template, fn: Resource): Record<string, string> {
  return evaluate(template, fn.Properties.Environment.Variables) as Record<string, string>;
}

/** The metric settings the product uses when nothing overrides them (settings.ts defaults). */
function defaultMetrics(environment: Record<string, string>): Settings['metrics'] {
  const { METRIC_NAMESPACE, MEMORY_METRIC, DISK_METRIC, WINDOWS_DISK_FREE_METRIC, ...rest } = environment;
  return parseSettings(rest).metrics;
}

let template: Template;
let overridden: Template;
/** Packaged for an organization: every organization param set (README "Deploy to an organization"). */
let organized: Template;
/** The package directories of `template` and `overridden`, for the linters. */
const packages: string[] = [];
/** What osls resolved for the default packaging (serverless-state.json): the esbuild options. */
let packagedService: { custom: { esbuild: { target: string } }; provider: { runtime: string } };

beforeAll(async () => {
  // One after the other: both packagings share serverless-esbuild's work folder (.esbuild/).
  packages.push(await packageStack());
  packages.push(
    await packageStack(
      '--param', 'namespace=Team/Custom', '--param', 'memoryMetric=MEM_PCT', '--param', 'auditSchedule=rate(1 day)',
      '--param', 'alertEmail=ops@example.com', '--param', 'checkMaxAttempts=5', '--param', 'goneRecordRetentionDays=30',
      '--param', 'onboardBatchSize=200', '--param', 'onboardBatchWindowSeconds=20', '--param', 'onboardReservedConcurrency=5',
    ),
  );
  packages.push(
    await packageStack(
      '--param', 'accounts=organization', '--param', 'organizationId=o-abcdef0123', '--param', 'memberAccounts=111111111111,222222222222',
      '--param', 'regions=us-east-1,eu-west-1',
    ),
  );
  [template, overridden, organized] = packages.map(readTemplate) as [Template, Template, Template];
  packagedService = (JSON.parse(readFileSync(path.join(packages[0]!, 'serverless-state.json'), 'utf8')) as { service: typeof packagedService }).service;
}, 240_000);

afterAll(() => {
  for (const directory of outputDirectories) rmSync(directory, { recursive: true, force: true });
});

describe('the packaged stack', () => {
  const onboardName = 'cw-agent-autopilot-test-onboard';
  const checkName = 'cw-agent-autopilot-test-check';
  const onboardQueueArn = `arn:aws:sqs:${region}:${account}:cwap-test-onboard`;
  const onboardDeadLetterQueueArn = `arn:aws:sqs:${region}:${account}:cwap-test-onboard-dead-letters`;

  it('routes exactly the EC2 "running" state changes to the onboard queue, which the onboard function consumes', () => {
    // Event rules only: the audit's optional schedule rule has no pattern.
    const rules = resourcesOfType(template, 'AWS::Events::Rule').filter(([, rule]) => rule.Properties.EventPattern && !rule.Properties.EventBusName);
    // Two state-change rules: running -> onboard queue, stopped and terminated -> offboard (tested below).
    expect(rules).toHaveLength(2);
    const running = rules.filter(([, candidate]) => candidate.Properties.EventPattern.detail?.state?.includes('running'));
    expect(running).toHaveLength(1);
    const [ruleName, rule] = running[0]!;
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.ec2'],
      'detail-type': ['EC2 Instance State-change Notification'],
      detail: { state: ['running'] },
    });
    expect(rule.Properties.State).toBe('ENABLED');
    expect(evaluate(template, rule.Properties.Targets)).toEqual([{ Id: 'onboard-queue', Arn: onboardQueueArn }]);
    expect(ruleName).toBe('OnboardStateChangesRule');
    // No rule invokes onboard directly any more; the queue's event source mapping does.
    const permissions = resourcesOfType(template, 'AWS::Lambda::Permission').map(([, p]) => evaluate(template, p.Properties) as Record<string, string>);
    expect(permissions.filter((permission) => permission.FunctionName === `arn:aws:lambda:${region}:${account}:function:${onboardName}`)).toEqual([]);
    const mappings = resourcesOfType(template, 'AWS::Lambda::EventSourceMapping').map(([, mapping]) => evaluate(template, mapping.Properties));
    expect(mappings).toEqual([expect.objectContaining({ EventSourceArn: onboardQueueArn, FunctionName: `arn:aws:lambda:${region}:${account}:function:${onboardName}`, Enabled: true })]);
  });

  it('reads the queue in batches of 100 gathered for up to 30 s, reporting failed items only, unless the params say otherwise', () => {
    const mappingOf = (t: Template) => evaluate(t, resourcesOfType(t, 'AWS::Lambda::EventSourceMapping')[0]![1].Properties) as Record<string, unknown>;
    expect(mappingOf(template)).toMatchObject({ BatchSize: 100, MaximumBatchingWindowInSeconds: 30, ScalingConfig: { MaximumConcurrency: 2 }, FunctionResponseTypes: ['ReportBatchItemFailures'] });
    expect(mappingOf(overridden)).toMatchObject({ BatchSize: 200, MaximumBatchingWindowInSeconds: 20, FunctionResponseTypes: ['ReportBatchItemFailures'] });
  });

  it('keeps the onboard queue\'s messages invisible for six function timeouts, and sets aside after 10 deliveries (5 for failures, 5 for pacing deferrals) in a dead-letter queue kept 14 days', () => {
    const queue = evaluate(template, template.Resources.OnboardQueue!.Properties) as Record<string, any>;
    const onboardTimeout = functionNamed(template, onboardName).Properties.Timeout as number;
    expect(onboardTimeout).toBe(60);
    // The Lambda developer guide: at least six times the function timeout on a queue Lambda polls.
    expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(6 * onboardTimeout);
    expect(queue).toMatchObject({ QueueName: 'cwap-test-onboard', SqsManagedSseEnabled: true, RedrivePolicy: { deadLetterTargetArn: onboardDeadLetterQueueArn, maxReceiveCount: 10 } });
    const deadLetters = evaluate(template, template.Resources.OnboardDeadLetterQueue!.Properties);
    expect(deadLetters).toEqual({ QueueName: 'cwap-test-onboard-dead-letters', MessageRetentionPeriod: 14 * 86_400, SqsManagedSseEnabled: true });
    expect(resourcesOfType(template, 'AWS::SQS::Queue').map(([logicalId]) => logicalId).sort()).toEqual(['OnboardDeadLetterQueue', 'OnboardQueue']);
  });

  it('lets only EventBridge, for exactly the two running rules, send to the onboard queue', () => {
    const policies = resourcesOfType(template, 'AWS::SQS::QueuePolicy').map(([, policy]) => evaluate(template, policy.Properties) as Record<string, any>);
    expect(policies).toHaveLength(1);
    expect(policies[0]!.Queues).toEqual([`https://sqs.${region}.amazonaws.com/${account}/cwap-test-onboard`]);
    expect(policies[0]!.PolicyDocument.Statement).toEqual([
      {
        Sid: 'RunningEventsOfTheStackRules',
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: onboardQueueArn,
        Condition: { ArnEquals: { 'aws:SourceArn': [`arn:aws:events:${region}:${account}:rule/cwap-test-onboard`, `arn:aws:events:${region}:${account}:rule/cwap-test-hub/cwap-test-hub-onboard`] } },
      },
    ]);
    // Those are the rules whose target is the queue, and no other rule targets it.
    const targeting = resourcesOfType(template, 'AWS::Events::Rule')
      .filter(([, rule]) => (evaluate(template, rule.Properties.Targets ?? []) as { Arn: string }[]).some((target) => target.Arn === onboardQueueArn))
      .map(([logicalId, rule]) => [logicalId, rule.Properties.Name]);
    expect(targeting).toEqual([
      ['OnboardStateChangesRule', 'cwap-test-onboard'],
      ['OnboardFromHubBusRule', 'cwap-test-hub-onboard'],
    ]);
  });

  it('lets only the onboard role consume the onboard queue: receive, delete, read its attributes and time a deferred message\'s next delivery, on that queue', () => {
    const sqsGrants = iamStatements(template).flatMap(({ where, statement }) =>
      asList(statement.Action).filter((action) => action.startsWith('sqs:')).map((action) => [where.split('/')[0], action, statement.Resource]),
    );
    expect(sqsGrants).toEqual([
      ['OnboardRole', 'sqs:ReceiveMessage', onboardQueueArn],
      ['OnboardRole', 'sqs:DeleteMessage', onboardQueueArn],
      ['OnboardRole', 'sqs:GetQueueAttributes', onboardQueueArn],
      // ChangeMessageVisibilityBatch is authorized as sqs:ChangeMessageVisibility.
      ['OnboardRole', 'sqs:ChangeMessageVisibility', onboardQueueArn],
    ]);
  });

  it('leaves the onboard function unreserved unless onboardReservedConcurrency is set', () => {
    const reserved = functionNamed(template, onboardName).Properties.ReservedConcurrentExecutions;
    expect(reserved).toEqual({ 'Fn::If': ['ReservesOnboardConcurrency', { Ref: 'OnboardReservedConcurrency' }, { Ref: 'AWS::NoValue' }] });
    expect(template.Parameters?.OnboardReservedConcurrency?.Default).toBe('');
    expect(conditionHolds(template, 'ReservesOnboardConcurrency')).toBe(false);
    expect(overridden.Parameters?.OnboardReservedConcurrency?.Default).toBe('5');
    expect(conditionHolds(overridden, 'ReservesOnboardConcurrency')).toBe(true);
    for (const name of ['cw-agent-autopilot-test-check', 'cw-agent-autopilot-test-offboard', 'cw-agent-autopilot-test-audit']) {
      expect(functionNamed(template, name).Properties.ReservedConcurrentExecutions, name).toBeUndefined();
    }
  });

  it('runs every function on nodejs24.x, with bundles built for Node 24', () => {
    // nodejs22.x is deprecated on Lambda from 2027-04-30; nodejs24.x is supported until 2028-04-30.
    const functions = resourcesOfType(template, 'AWS::Lambda::Function').map(([, f]) => f.Properties);
    expect(functions).toHaveLength(4);
    for (const fn of functions) expect(fn.Runtime, fn.FunctionName).toBe('nodejs24.x');
    expect(packagedService.provider.runtime).toBe('nodejs24.x');
    expect(packagedService.custom.esbuild.target).toBe('node24');
  });

  it('has the onboard and check functions on a supported Node.js runtime (22 or newer)', () => {
    const functions = resourcesOfType(template, 'AWS::Lambda::Function').map(([, f]) => f.Properties);
    expect(functions.map((f) => [f.FunctionName, f.Handler])).toEqual(
      expect.arrayContaining([
        [onboardName, 'functions/onboard.handler'],
        [checkName, 'functions/check.handler'],
      ]),
    );
    for (const fn of functions) {
      const version = /^nodejs(\d+)\.x$/.exec(fn.Runtime)?.[1];
      expect(Number(version), `${fn.FunctionName} runtime ${fn.Runtime}`).toBeGreaterThanOrEqual(22);
    }
  });

  it('gives every function an environment the product settings accept, naming the stack resources', () => {
    for (const name of [onboardName, checkName]) {
      const environment = environmentOf(template, functionNamed(template, name));
      const settings = parseSettings(environment);
      expect(settings.resourcePrefix).toBe('cwap-test');
      expect(settings.stateTable).toBe(template.Resources.StateTable?.Properties.TableName);
      expect(settings.agentProfileName).toBe(template.Resources.AgentInstanceProfile?.Properties.InstanceProfileName);
      expect(settings.agentDocumentName).toBe(template.Resources.InstallAndConfigureDocument?.Properties.Name);
      expect(settings.onboardFunctionArn).toBe(`arn:aws:lambda:${region}:${account}:function:${onboardName}`);
      expect(settings.checkFunctionArn).toBe(`arn:aws:lambda:${region}:${account}:function:${checkName}`);
      expect(settings.schedulerRoleArn).toBe(`arn:aws:iam::${account}:role/cwap-test-us-east-1-scheduler`);
      // The stack's own schedule group: IAM is scoped to it and removing the stack deletes it.
      expect(template.Resources.ScheduleGroup?.Type).toBe('AWS::Scheduler::ScheduleGroup');
      expect(settings.scheduleGroup).toBe('cwap-test');
      expect(settings.metrics).toEqual({
        namespace: 'CloudWatch/TestMetrics',
        memory: 'MEMORY_USED',
        disk: 'DISK_USED',
        windowsDiskFree: 'DISK_FREE',
      });
      expect(settings.optOutTag).toEqual({ key: 'cw-autopilot:skip', value: 'true' });
      expect(settings.optInTag).toBeUndefined();
      expect(settings.modifyExistingRoles).toBe(true);
    }
  });

  it('keeps onboarding state in an on-demand table keyed by instanceId, with PITR and a TTL', () => {
    const table = template.Resources.StateTable!;
    expect(table.Type).toBe('AWS::DynamoDB::Table');
    expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.Properties.KeySchema).toEqual([{ AttributeName: 'recordKey', KeyType: 'HASH' }]);
    expect(table.Properties.AttributeDefinitions).toEqual([{ AttributeName: 'recordKey', AttributeType: 'S' }]);
    expect(table.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
  });

  it('gives every function that records an instance gone the record retention, 90 days unless goneRecordRetentionDays says otherwise', () => {
    for (const name of ['onboard', 'check', 'offboard'].map((fn) => `cw-agent-autopilot-test-${fn}`)) {
      expect(parseSettings(environmentOf(template, functionNamed(template, name))).goneRecordRetentionDays, name).toBe(90);
      expect(environmentOf(template, functionNamed(template, name)).GONE_RECORD_RETENTION_DAYS, name).toBe('90');
      expect(parseSettings(environmentOf(overridden, functionNamed(overridden, name))).goneRecordRetentionDays, name).toBe(30);
    }
  });

  it('deploys the install-and-configure Command document exactly as the repo file', () => {
    const documents = resourcesOfType(template, 'AWS::SSM::Document');
    expect(documents).toHaveLength(1);
    const [, document] = documents[0]!;
    expect(document.Properties.DocumentType).toBe('Command');
    expect(document.Properties.Content).toEqual(
      JSON.parse(readFileSync(path.join(repo, 'agent-config', 'install-and-configure.json'), 'utf8')),
    );
  });

  it('gives the agent role both managed policies and wraps it in the instance profile', () => {
    const role = template.Resources.AgentRole!;
    expect(evaluate(template, role.Properties.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    });
    expect(evaluate(template, role.Properties.ManagedPolicyArns)).toEqual(agentPolicyArns);
    expect(template.Resources.AgentInstanceProfile?.Properties.Roles).toEqual([{ Ref: 'AgentRole' }]);
  });

  it('stores the agent configs rendered by shared/agent-config.ts in AmazonCloudWatch-* standard parameters', () => {
    const environment = environmentOf(template, functionNamed(template, onboardName));
    const expected = renderedAgentConfigs(defaultMetrics(environment));
    for (const os of ['linux', 'windows'] as const) {
      const logicalId = os === 'linux' ? 'LinuxAgentConfigParameter' : 'WindowsAgentConfigParameter';
      const parameter = template.Resources[logicalId]!;
      expect(parameter.Type).toBe('AWS::SSM::Parameter');
      expect(parameter.Properties.Name).toBe(`AmazonCloudWatch-cwap-test-${os}`);
      expect(parameter.Properties.Tier).toBe('Standard');
      expect(parameter.Properties.Type).toBe('String');
      // Byte for byte, including the agent's own ${aws:InstanceId} that osls must not touch.
      expect(parameter.Properties.Value).toBe(expected[os]);
      expect(parameter.Properties.Value).toContain('"InstanceId": "${aws:InstanceId}"');
      expect(Buffer.byteLength(parameter.Properties.Value, 'utf8')).toBeLessThanOrEqual(4096);
      expect(environment[os === 'linux' ? 'LINUX_CONFIG_PARAMETER' : 'WINDOWS_CONFIG_PARAMETER']).toBe(parameter.Properties.Name);
    }
  });

  it('renders a --param override into the parameters and the functions alike', () => {
    const environment = environmentOf(overridden, functionNamed(overridden, onboardName));
    expect(environment.METRIC_NAMESPACE).toBe('Team/Custom');
    expect(environment.MEMORY_METRIC).toBe('MEM_PCT');
    const metrics = { ...defaultMetrics(environment), namespace: 'Team/Custom', memory: 'MEM_PCT' };
    const expected = renderedAgentConfigs(metrics);
    expect(overridden.Resources.LinuxAgentConfigParameter?.Properties.Value).toBe(expected.linux);
    expect(overridden.Resources.WindowsAgentConfigParameter?.Properties.Value).toBe(expected.windows);
    expect(JSON.parse(overridden.Resources.LinuxAgentConfigParameter?.Properties.Value).metrics.namespace).toBe('Team/Custom');
    expect(overridden.Resources.LinuxAgentConfigParameter?.Properties.Value).not.toBe(
      template.Resources.LinuxAgentConfigParameter?.Properties.Value,
    );
  });

  it('lets the scheduler role, trusted only by EventBridge Scheduler, invoke exactly the two functions', () => {
    const role = template.Resources.SchedulerTargetRole!;
    const trust = evaluate(template, role.Properties.AssumeRolePolicyDocument) as { Statement: Statement[] };
    expect(trust.Statement).toHaveLength(1);
    expect(trust.Statement[0]).toMatchObject({ Effect: 'Allow', Principal: { Service: 'scheduler.amazonaws.com' }, Action: 'sts:AssumeRole' });
    const statements = iamStatements(template).filter(({ where }) => where.startsWith('SchedulerTargetRole/'));
    expect(statements.map(({ statement }) => [statement.Action, statement.Resource])).toEqual([
      [
        'lambda:InvokeFunction',
        [
          `arn:aws:lambda:${region}:${account}:function:${onboardName}`,
          `arn:aws:lambda:${region}:${account}:function:${checkName}`,
        ],
      ],
    ]);
  });

  it('gives each function a role of its own, trusted by Lambda, writing only to its own log group', () => {
    const functions = resourcesOfType(template, 'AWS::Lambda::Function');
    const roles = functions.map(([, fn]) => (fn.Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0]);
    expect(new Set(roles).size).toBe(functions.length);
    expect(template.Resources.IamRoleLambdaExecution).toBeUndefined();
    for (const [[, fn], roleName] of functions.map((entry, index) => [entry, roles[index]!] as const)) {
      const role = template.Resources[roleName]!;
      const trust = evaluate(template, role.Properties.AssumeRolePolicyDocument) as { Statement: Statement[] };
      expect(trust.Statement).toEqual([expect.objectContaining({ Principal: { Service: 'lambda.amazonaws.com' } })]);
      expect(allowing(template, roleName, 'logs:PutLogEvents').map((s) => s.Resource)).toEqual([
        `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${fn.Properties.FunctionName}:*`,
      ]);
    }
  });

  it('grants no wildcard action, no unconditioned or wildcard PassRole, and attaches only the two agent policies', () => {
    const statements = iamStatements(template);
    expect(statements.length).toBeGreaterThan(10);
    for (const { where, statement } of statements) {
      expect(statement.NotAction, where).toBeUndefined();
      for (const action of asList(statement.Action)) {
        expect(action, where).not.toBe('*');
        expect(action, where).not.toMatch(/^[a-z0-9-]+:\*$/i);
      }
      const actions = asList(statement.Action);
      if (actions.includes('iam:PassRole')) {
        for (const resource of asList(statement.Resource as string | string[])) {
          expect(resource, where).not.toContain('*');
        }
        expect(statement.Condition?.StringEquals?.['iam:PassedToService'], where).toMatch(/^[a-z0-9-]+\.amazonaws\.com$/);
      }
      if (actions.includes('iam:AttachRolePolicy')) {
        expect(actions, where).toEqual(['iam:AttachRolePolicy']);
        expect(statement.Condition, where).toEqual({ ArnEquals: { 'iam:PolicyARN': agentPolicyArns } });
      }
      // A resource wildcard only where the action has no resource-level permissions.
      if (asList(statement.Resource as string | string[]).includes('*')) {
        for (const action of actions) {
          expect(action, where).toMatch(
            /^(ec2:Describe\w+|ssm:DescribeInstanceInformation|ssm:GetCommandInvocation|cloudwatch:(GetMetricData|DescribeAlarms)|organizations:ListAccounts)$/,
          );
        }
      }
    }
  });

  it('lets onboard pass the agent role to EC2 and the scheduler role to Scheduler, and nothing else', () => {
    const passes = allowing(template, 'OnboardRole', 'iam:PassRole').map((s) => [
      s.Resource,
      s.Condition?.StringEquals?.['iam:PassedToService'],
    ]);
    expect(passes).toEqual(
      expect.arrayContaining([
        [`arn:aws:iam::${account}:role/cwap-test-us-east-1-agent`, 'ec2.amazonaws.com'],
        [`arn:aws:iam::${account}:role/cwap-test-us-east-1-scheduler`, 'scheduler.amazonaws.com'],
      ]),
    );
    expect(passes).toHaveLength(2);
    // The checker schedules its own re-checks: it passes the scheduler role, to Scheduler only.
    expect(allowing(template, 'CheckRole', 'iam:PassRole').map((s) => [s.Resource, s.Condition?.StringEquals?.['iam:PassedToService']])).toEqual([
      [`arn:aws:iam::${account}:role/cwap-test-us-east-1-scheduler`, 'scheduler.amazonaws.com'],
    ]);
    expect(allowing(template, 'OffboardRole', 'iam:PassRole')).toEqual([]);
  });

  it('lets onboard run only the stack document, schedule only its own steps and write only its table', () => {
    expect(allowing(template, 'OnboardRole', 'ssm:SendCommand').flatMap((s) => asList(s.Resource))).toEqual([
      `arn:aws:ssm:${region}:${account}:document/cwap-test-install-and-configure`,
      `arn:aws:ec2:${region}:${account}:instance/*`,
    ]);
    expect(allowing(template, 'OnboardRole', 'scheduler:CreateSchedule').map((s) => s.Resource)).toEqual([
      `arn:aws:scheduler:${region}:${account}:schedule/cwap-test/cwap-test-*`,
    ]);
    for (const role of ['OnboardRole', 'CheckRole']) {
      for (const action of ['dynamodb:GetItem', 'dynamodb:PutItem']) {
        expect(allowing(template, role, action).map((s) => s.Resource), `${role} ${action}`).toEqual([
          `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`,
        ]);
      }
    }
    // The checker never updates in place: its records are versioned Puts.
    expect(allowing(template, 'CheckRole', 'dynamodb:UpdateItem'), 'CheckRole never updates in place').toEqual([]);
    // Onboard updates in place on purpose, and on the state table only: the install window item is a
    // set that concurrent containers add to (ADD, one UpdateItem each) and its run closes; its
    // instance records stay versioned Puts (saveRecord).
    expect(allowing(template, 'OnboardRole', 'dynamodb:UpdateItem').map((s) => s.Resource), 'OnboardRole updates the install windows only in the state table').toEqual([
      `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`,
    ]);
    for (const action of ['ec2:DescribeInstances', 'ec2:AssociateIamInstanceProfile', 'iam:GetInstanceProfile', 'iam:ListAttachedRolePolicies', 'ssm:DescribeInstanceInformation']) {
      expect(allowing(template, 'OnboardRole', action), action).toHaveLength(1);
    }
  });

  it('gives onboard exactly the actions its code calls, each on its own resources', () => {
    const onboardName = 'cw-agent-autopilot-test-onboard';
    const granted = iamStatements(template)
      .filter(({ where }) => where.startsWith('OnboardRole/'))
      .map(({ statement }) => asList(statement.Action).map((action) => [action, statement.Resource] as const))
      .flat();
    const instances = `arn:aws:ec2:${region}:${account}:instance/*`;
    // iam:PassRole appears twice (agent role to EC2, scheduler role to Scheduler; tested above).
    expect(granted.filter(([action]) => action !== 'iam:PassRole')).toEqual([
      ['logs:CreateLogStream', `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${onboardName}:*`],
      ['logs:PutLogEvents', `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${onboardName}:*`],
      ['sns:Publish', `arn:aws:sns:${region}:${account}:cwap-test-alerts`],
      ['dynamodb:GetItem', `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`],
      ['dynamodb:PutItem', `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`],
      // A batch of the onboard queue reads its records 100 a call.
      ['dynamodb:BatchGetItem', `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`],
      // The install window item (a set concurrent containers add to); records stay versioned Puts.
      ['dynamodb:UpdateItem', `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`],
      ['sqs:ReceiveMessage', `arn:aws:sqs:${region}:${account}:cwap-test-onboard`],
      ['sqs:DeleteMessage', `arn:aws:sqs:${region}:${account}:cwap-test-onboard`],
      ['sqs:GetQueueAttributes', `arn:aws:sqs:${region}:${account}:cwap-test-onboard`],
      // The messages the pacing left for later come back when their tokens do.
      ['sqs:ChangeMessageVisibility', `arn:aws:sqs:${region}:${account}:cwap-test-onboard`],
      ['ec2:DescribeInstances', '*'],
      ['ec2:DescribeIamInstanceProfileAssociations', '*'],
      ['ec2:AssociateIamInstanceProfile', instances],
      ['iam:GetInstanceProfile', `arn:aws:iam::${account}:instance-profile/*`],
      ['iam:ListAttachedRolePolicies', `arn:aws:iam::${account}:role/*`],
      ['iam:AttachRolePolicy', `arn:aws:iam::${account}:role/*`],
      // Onboarding only sends the install command; the checker reads its outcome.
      ['ssm:DescribeInstanceInformation', '*'],
      ['ssm:SendCommand', [`arn:aws:ssm:${region}:${account}:document/cwap-test-install-and-configure`, instances]],
      ['scheduler:CreateSchedule', `arn:aws:scheduler:${region}:${account}:schedule/cwap-test/cwap-test-*`],
    ]);
    expect(granted.filter(([action]) => action === 'iam:PassRole')).toHaveLength(2);
  });

  it('outputs the names an operator looks for', () => {
    const named = ['StateTableName', 'AgentInstanceProfileName', 'InstallAndConfigureDocumentName', 'LinuxAgentConfigParameterName', 'WindowsAgentConfigParameterName', 'AlertTopicArn'];
    const outputs = Object.fromEntries(named.map((name) => [name, evaluate(template, template.Outputs[name])])) as Record<string, { Value: string } | undefined>;
    expect(outputs.StateTableName?.Value).toBe('cwap-test-records');
    expect(outputs.AgentInstanceProfileName?.Value).toBe('cwap-test-us-east-1-agent');
    expect(outputs.InstallAndConfigureDocumentName?.Value).toBe('cwap-test-install-and-configure');
    expect(outputs.LinuxAgentConfigParameterName?.Value).toBe('AmazonCloudWatch-cwap-test-linux');
    expect(outputs.WindowsAgentConfigParameterName?.Value).toBe('AmazonCloudWatch-cwap-test-windows');
    expect(outputs.AlertTopicArn?.Value).toBe(`arn:aws:sns:${region}:${account}:cwap-test-alerts`);
  });
});

describe('the audit function', () => {
  const auditName = 'cw-agent-autopilot-test-audit';
  const onboardArn = `arn:aws:lambda:${region}:${account}:function:cw-agent-autopilot-test-onboard`;
  const conditionOf = (t: Template, name: string) => (t.Resources[name] as Resource & { Condition?: string } | undefined)?.Condition;

  it('runs the audit handler for up to 15 minutes, with settings the product accepts', () => {
    const fn = functionNamed(template, auditName);
    expect(fn.Properties.Handler).toBe('functions/audit.handler');
    expect(fn.Properties.Timeout).toBe(900);
    const settings = parseSettings(environmentOf(template, fn));
    expect(settings.stateTable).toBe('cwap-test-records');
    expect(settings.onboardFunctionArn).toBe(onboardArn);
    expect(settings.alertTopicArn).toBe(`arn:aws:sns:${region}:${account}:cwap-test-alerts`);
  });

  it('may read the fleet in bulk, publish to the alert topic and invoke onboard, and nothing else', () => {
    const granted = iamStatements(template)
      .filter(({ where }) => where.startsWith('AuditRole/'))
      .flatMap(({ statement }) => asList(statement.Action).map((action) => [action, statement.Resource]));
    expect(Object.fromEntries(granted)).toEqual({
      'logs:CreateLogStream': `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${auditName}:*`,
      'logs:PutLogEvents': `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${auditName}:*`,
      'dynamodb:BatchGetItem': `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`,
      'ec2:DescribeInstances': '*',
      'ec2:DescribeIamInstanceProfileAssociations': '*',
      'iam:GetInstanceProfile': `arn:aws:iam::${account}:instance-profile/*`,
      'iam:ListAttachedRolePolicies': `arn:aws:iam::${account}:role/*`,
      'ssm:DescribeInstanceInformation': '*',
      'cloudwatch:GetMetricData': '*',
      'sns:Publish': `arn:aws:sns:${region}:${account}:cwap-test-alerts`,
      'lambda:InvokeFunction': onboardArn,
    });
    expect(granted).toHaveLength(11);
  });

  it('has no schedule unless the auditSchedule param is set, then publishes its summary on it', () => {
    expect(conditionOf(template, 'AuditScheduleRule')).toBe('AuditScheduled');
    expect(conditionOf(template, 'AuditSchedulePermission')).toBe('AuditScheduled');
    expect(conditionHolds(template, 'AuditScheduled')).toBe(false);

    expect(conditionHolds(overridden, 'AuditScheduled')).toBe(true);
    const rule = overridden.Resources.AuditScheduleRule!;
    expect(evaluate(overridden, rule.Properties)).toMatchObject({ ScheduleExpression: 'rate(1 day)', State: 'ENABLED' });
    expect(evaluate(overridden, rule.Properties.Targets)).toEqual([
      { Id: 'audit', Arn: `arn:aws:lambda:${region}:${account}:function:${auditName}`, Input: '{"publish":true}' },
    ]);
    expect(evaluate(overridden, overridden.Resources.AuditSchedulePermission!.Properties)).toMatchObject({
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      SourceArn: `arn:aws:events:${region}:${account}:rule/cwap-test-audit`,
    });
  });
});

describe('the checker and the offboard function', () => {
  const checkName = 'cw-agent-autopilot-test-check';
  const offboardName = 'cw-agent-autopilot-test-offboard';
  const topicArn = `arn:aws:sns:${region}:${account}:cwap-test-alerts`;
  // An instance's alarms only (<prefix>-<instance id>-...): never the stack's alarms on its functions.
  const alarms = `arn:aws:cloudwatch:${region}:${account}:alarm:cwap-test-i-*`;
  const schedules = `arn:aws:scheduler:${region}:${account}:schedule/cwap-test/cwap-test-*`;
  const granted = (roleName: string) =>
    iamStatements(template)
      .filter(({ where }) => where.startsWith(`${roleName}/`))
      .flatMap(({ statement }) => asList(statement.Action).map((action) => [action, statement.Resource] as const));

  it('routes exactly the EC2 "stopped" and "terminated" state changes to the offboard function', () => {
    const rules = resourcesOfType(template, 'AWS::Events::Rule').filter(([, rule]) => !rule.Properties.EventBusName && rule.Properties.EventPattern?.detail?.state?.includes('terminated'));
    expect(rules).toHaveLength(1);
    const [, rule] = rules[0]!;
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.ec2'],
      'detail-type': ['EC2 Instance State-change Notification'],
      detail: { state: ['stopped', 'terminated'] },
    });
    expect(evaluate(template, rule.Properties.Targets)).toEqual([
      expect.objectContaining({ Arn: `arn:aws:lambda:${region}:${account}:function:${offboardName}` }),
    ]);
    const permissions = resourcesOfType(template, 'AWS::Lambda::Permission').map(([, p]) => evaluate(template, p.Properties));
    expect(permissions).toContainEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: `arn:aws:lambda:${region}:${account}:function:${offboardName}`,
      Principal: 'events.amazonaws.com',
      SourceArn: `arn:aws:events:${region}:${account}:rule/${rule.Properties.Name}`,
    });
    expect(functionNamed(template, offboardName).Properties.Handler).toBe('functions/offboard.handler');
  });

  it('gives check and offboard the alert topic and the check and alarm settings, with their defaults and --param overrides', () => {
    for (const name of [checkName, offboardName]) {
      const settings = parseSettings(environmentOf(template, functionNamed(template, name)));
      expect(settings.alertTopicArn).toBe(topicArn);
      expect(settings.checkMaxAttempts).toBe(3);
      expect(settings.checkRetryDelaySeconds).toBe(300);
      expect(settings.metricLookbackSeconds).toBe(900);
      expect(settings.alarms).toEqual({ prefix: 'cwap-test', memoryThreshold: 90, diskThreshold: 90, periodSeconds: 300, evaluationPeriods: 3, missingDataMinutes: 15 });
    }
    expect(environmentOf(template, functionNamed(template, checkName)).POWERTOOLS_METRICS_NAMESPACE).toBe('CWAgentAutopilot');
    expect(parseSettings(environmentOf(overridden, functionNamed(overridden, checkName))).checkMaxAttempts).toBe(5);
  });

  it('subscribes an e-mail address to the alert topic only when alertEmail is set', () => {
    const subscription = template.Resources.AlertEmailSubscription as Resource & { Condition?: string };
    expect(subscription.Type).toBe('AWS::SNS::Subscription');
    expect(subscription.Condition).toBe('HasAlertEmail');
    expect(conditionHolds(template, 'HasAlertEmail')).toBe(false);
    expect(conditionHolds(overridden, 'HasAlertEmail')).toBe(true);
    expect(evaluate(overridden, overridden.Resources.AlertEmailSubscription!.Properties)).toEqual({
      TopicArn: topicArn,
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });

  it('lets the checker read metrics, manage only the product\'s alarms, publish only to its topic and schedule only its own checks', () => {
    const check = granted('CheckRole');
    const resourcesOf = (action: string) => check.filter(([a]) => a === action).map(([, resource]) => resource);
    expect(resourcesOf('cloudwatch:GetMetricData')).toEqual(['*']);
    expect(resourcesOf('cloudwatch:DescribeAlarms')).toEqual(['*']);
    for (const action of ['cloudwatch:PutMetricAlarm', 'cloudwatch:DeleteAlarms', 'cloudwatch:TagResource']) expect(resourcesOf(action), action).toEqual([alarms]);
    expect(resourcesOf('sns:Publish')).toEqual([topicArn]);
    expect(resourcesOf('ssm:SendCommand')).toEqual([
      [`arn:aws:ssm:${region}:${account}:document/cwap-test-install-and-configure`, `arn:aws:ec2:${region}:${account}:instance/*`],
    ]);
    expect(resourcesOf('ssm:GetCommandInvocation')).toEqual(['*']);
    expect(resourcesOf('ssm:DescribeInstanceInformation')).toEqual(['*']);
    expect(resourcesOf('iam:GetInstanceProfile')).toEqual([`arn:aws:iam::${account}:instance-profile/*`]);
    expect(resourcesOf('iam:ListAttachedRolePolicies')).toEqual([`arn:aws:iam::${account}:role/*`]);
    expect(resourcesOf('scheduler:CreateSchedule')).toEqual([schedules]);
    expect(resourcesOf('scheduler:DeleteSchedule')).toEqual([schedules]);
    // A batch check reads its records 100 a call (shared/checking/check-batch.ts, readRecords).
    expect(resourcesOf('dynamodb:BatchGetItem')).toEqual([`arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`]);
    expect(resourcesOf('iam:AttachRolePolicy')).toEqual([]);
    expect(resourcesOf('ec2:AssociateIamInstanceProfile')).toEqual([]);
  });

  it('lets offboard only read instance states, find and delete the product\'s alarms and schedules, and record the instance', () => {
    expect(Object.fromEntries(granted('OffboardRole'))).toEqual({
      'logs:CreateLogStream': `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${offboardName}:*`,
      'logs:PutLogEvents': `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${offboardName}:*`,
      'dynamodb:GetItem': `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`,
      'dynamodb:PutItem': `arn:aws:dynamodb:${region}:${account}:table/cwap-test-records`,
      'cloudwatch:DescribeAlarms': '*',
      'cloudwatch:DeleteAlarms': alarms,
      'ec2:DescribeInstances': '*',
      'scheduler:DeleteSchedule': schedules,
      'sns:Publish': topicArn,
    });
    expect(granted('OffboardRole')).toHaveLength(9);
  });

  it('sends the record of an asynchronous invocation that failed all its retries to the alert topic, for every event-driven function', () => {
    // The audit too: its optional schedule invokes it asynchronously.
    for (const name of ['cw-agent-autopilot-test-onboard', checkName, offboardName, 'cw-agent-autopilot-test-audit']) {
      const logicalId = Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::Lambda::Function' && r.Properties.FunctionName === name)?.[0];
      const config = resourcesOfType(template, 'AWS::Lambda::EventInvokeConfig').find(([, c]) => c.Properties.FunctionName?.Ref === logicalId);
      expect(config, name).toBeDefined();
      expect(evaluate(template, config![1].Properties.DestinationConfig), name).toEqual({ OnFailure: { Destination: topicArn } });
    }
    expect(resourcesOfType(template, 'AWS::Lambda::EventInvokeConfig')).toHaveLength(4);
    for (const role of ['OnboardRole', 'CheckRole', 'OffboardRole', 'AuditRole']) {
      expect(allowing(template, role, 'sns:Publish').map((statement) => evaluate(template, statement.Resource)), role).toEqual([topicArn]);
    }
  });
});

describe('the packaged templates, linted by cfn-lint', () => {
  // A warning listed here is explained in README ("Validating the template"); any other warning
  // fails this test: fix it, or explain it there and list it here.
  const explainedWarnings: { rule: string; path: RegExp }[] = [
    // osls adds a function's role to its DependsOn next to the Role GetAtt (compileRole).
    { rule: 'W3005', path: /^Resources\/(Onboard|Check|Offboard|Audit)LambdaFunction\/DependsOn\/\d+$/ },
    // UpdateReplacePolicy Retain alone, on purpose: the upgrade keeps the old table (README: Upgrading).
    { rule: 'W3011', path: /^Resources\/StateTable$/ },
  ];
  const explained = (finding: CfnLintFinding) =>
    explainedWarnings.some(({ rule, path: where }) => finding.rule === rule && where.test(finding.path));
  const labels = ['default params', 'auditSchedule and alertEmail set', 'organization params set'];
  const line = (finding: CfnLintFinding) => {
    const index = packages.indexOf(path.dirname(finding.file));
    const file = index >= 0 ? `${labels[index]}: ${path.basename(finding.file)}` : path.relative(repo, finding.file);
    return `${file} ${finding.level} ${finding.rule} ${finding.path}: ${finding.message}`;
  };

  let brokenFile: string;
  let findings: CfnLintFinding[];
  let templateFiles: string[];

  beforeAll(async () => {
    // A copy of a packaged template that CloudFormation would reject, linted in the same run, shows
    // the linter really reads these files.
    const broken = structuredClone(overridden);
    broken.Parameters!.AuditSchedule!.Default = 'every day';
    brokenFile = path.join(packages[1]!, 'broken-schedule.json');
    writeFileSync(brokenFile, JSON.stringify(broken));
    // The three packagings (the second and third create the optional resources), and any template kept in the repo.
    templateFiles = [...packages.flatMap(packagedTemplates), ...cloudFormationTemplatesUnder(repo)];
    findings = await cfnLint([...templateFiles, brokenFile], region);
  }, 120_000);

  it('has no error and no unexplained warning, with the default params and with every optional resource on', () => {
    expect(templateFiles.filter((file) => file.endsWith('cloudformation-template-update-stack.json'))).toHaveLength(3);
    // The member stack's committed template is linted with them (a template kept in the repo).
    expect(templateFiles).toContain(path.join(repo, 'member', 'member-stack.json'));
    const ours = findings.filter((finding) => finding.file !== brokenFile);
    const warnings = ours.filter((finding) => finding.level === 'Warning');
    if (warnings.length > 0) console.info(`cfn-lint warnings (explained in README):\n${warnings.map(line).join('\n')}`);
    expect(ours.filter((finding) => finding.level === 'Error').map(line)).toEqual([]);
    expect(warnings.filter((finding) => !explained(finding)).map(line)).toEqual([]);
    expect(ours.filter((finding) => !['Error', 'Warning'].includes(finding.level)).map(line)).toEqual([]);
  });

  it('reports a schedule expression CloudFormation would reject', () => {
    const errors = findings.filter((finding) => finding.file === brokenFile && finding.level === 'Error');
    expect(errors.map((finding) => [finding.rule, finding.path])).toContainEqual(['E2015', 'Parameters/AuditSchedule/Default']);
  });
});

describe.skipIf(!agentConfigSchemaAvailable)(
  `the agent configs as deployed, against the CloudWatch agent's schema${agentConfigSchemaAvailable ? '' : ` (skipped: no schema at ${agentConfigSchemaPath})`}`,
  () => {
    beforeAll(() => void agentConfigSchemaValidator(), 30_000);

    it('every AmazonCloudWatch-* parameter value, read back from both packaged templates, is a config the agent accepts', () => {
      for (const [name, packaged] of [['default', template], ['overridden', overridden]] as const) {
        const parameters = resourcesOfType(packaged, 'AWS::SSM::Parameter').filter(([, p]) => String(p.Properties.Name).startsWith('AmazonCloudWatch-'));
        expect(parameters.map(([logicalId]) => logicalId), name).toEqual(['LinuxAgentConfigParameter', 'WindowsAgentConfigParameter']);
        for (const [logicalId, parameter] of parameters) {
          expect(agentConfigSchemaErrors(JSON.parse(parameter.Properties.Value as string)), `${name} ${logicalId}`).toEqual([]);
        }
      }
    });
  },
);

describe('the dashboard and the alarms on the product', () => {
  const checkFunction = 'cw-agent-autopilot-test-check';
  const topicArn = `arn:aws:sns:${region}:${account}:cwap-test-alerts`;
  let emitted: EmittedSeries[];

  /** The functions whose code writes product metrics: those that import shared/observability/product-metrics. */
  const metricWriters = readdirSync(path.join(repo, 'functions'))
    .filter((file) => readFileSync(path.join(repo, 'functions', file), 'utf8').includes('/shared/observability/product-metrics.js'))
    .map((file) => file.replace(/\.ts$/, ''));

  /**
   * What a function of the packaged stack writes down every product-metric path: its handler run in
   * a child process of its own, with the environment the template gives it; its stdout read as
   * CloudWatch reads EMF.
   */
  async function productMetricsWrittenBy(key: string): Promise<EmittedSeries[]> {
    const environment = environmentOf(template, functionNamed(template, `cw-agent-autopilot-test-${key}`));
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(repo, 'test', 'deploy', 'emit-product-metrics.ts'), key], {
      cwd: repo,
      env: { ...process.env, ...environment },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 120_000,
    });
    return emittedSeries(stdout);
  }

  interface DashboardJson {
    widgets: { type: string; properties: { title: string; alarms?: string[]; metrics?: (string | Record<string, unknown>)[][] } }[];
  }
  const dashboardOf = (t: Template) => JSON.parse(evaluate(t, t.Resources.ProductDashboard!.Properties.DashboardBody) as string) as DashboardJson;
  const functionNames = () => resourcesOfType(template, 'AWS::Lambda::Function').map(([, fn]) => fn.Properties.FunctionName as string);
  const alarms = () =>
    resourcesOfType(template, 'AWS::CloudWatch::Alarm').map(([logicalId, alarm]) => ({ logicalId, properties: evaluate(template, alarm.Properties) as Record<string, any> }));
  const alarmReferencesOf = () => alarms().flatMap(({ properties }) => alarmReferences(properties.AlarmName, properties));

  beforeAll(async () => {
    expect(metricWriters.sort()).toEqual(['audit', 'check']);
    emitted = (await Promise.all(metricWriters.map(productMetricsWrittenBy))).flat();
  }, 120_000);

  it('names the dashboard after the stage and links it from the outputs', () => {
    const dashboard = template.Resources.ProductDashboard!;
    expect(dashboard.Type).toBe('AWS::CloudWatch::Dashboard');
    expect(dashboard.Properties.DashboardName).toBe('cwap-test');
    expect(evaluate(template, template.Outputs.DashboardUrl)).toEqual({
      Description: expect.any(String),
      Value: `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards/dashboard/cwap-test`,
    });
  });

  it('captured every product metric from the functions that write them, as Powertools writes it', () => {
    expect(new Set(emitted.map((series) => series.metricName))).toEqual(new Set(Object.values(productMetricNames)));
    for (const series of emitted) expect(series.namespace, series.metricName).toBe(environmentOf(template, functionNamed(template, checkFunction)).POWERTOOLS_METRICS_NAMESPACE);
  });

  it('graphs only series the product writes (namespace, name, exact dimension set) and Lambda metrics of the stack\'s own functions', () => {
    const references = dashboardReferences(dashboardOf(template));
    expect(references.filter((r) => r.namespace === 'AWS/Lambda').length).toBeGreaterThan(0);
    expect(references.filter((r) => r.namespace !== 'AWS/Lambda').length).toBeGreaterThan(0);
    expect(unmatchedReferences(references, { emitted, functionNames: functionNames() })).toEqual([]);
    expect(unmatchedReferences(dashboardReferences(dashboardOf(overridden)), { emitted, functionNames: functionNames() })).toEqual([]);
  });

  it('graphs every series the product writes, the per-diagnosis alerts included', () => {
    expect(unreferencedSeries(emitted, dashboardReferences(dashboardOf(template)))).toEqual([]);
  });

  it('graphs each function\'s invocations, errors, throttles, duration and failed asynchronous invocations', () => {
    const lambda = dashboardReferences(dashboardOf(template)).filter((r): r is Extract<MetricReference, { kind: 'metric' }> => r.kind === 'metric' && r.namespace === 'AWS/Lambda');
    for (const name of functionNames()) {
      const graphed = new Set(lambda.filter((r) => r.dimensions.FunctionName === name).map((r) => r.metricName));
      expect([...graphed].sort(), name).toEqual(['AsyncEventsDropped', 'DestinationDeliveryFailures', 'Duration', 'Errors', 'Invocations', 'Throttles']);
    }
  });

  it('the check fails the packaged dashboard with one product metric misspelt, or one function renamed', () => {
    const misspelt = dashboardOf(template);
    const row = misspelt.widgets.flatMap((w) => w.properties.metrics ?? []).find((r) => typeof r[0] === 'string' && r[0] !== 'AWS/Lambda')!;
    row[1] = `${row[1] as string}s`;
    expect(unmatchedReferences(dashboardReferences(misspelt), { emitted, functionNames: functionNames() })).toEqual([
      expect.stringContaining(`the product writes no ${row[1] as string}`),
    ]);

    const renamed = dashboardOf(template);
    const lambdaRow = renamed.widgets.flatMap((w) => w.properties.metrics ?? []).find((r) => r[0] === 'AWS/Lambda')!;
    lambdaRow[3] = `${lambdaRow[3] as string}-old`;
    expect(unmatchedReferences(dashboardReferences(renamed), { emitted, functionNames: functionNames() })).toEqual([expect.stringContaining('is not a function of the stack')]);
  });

  it('says on the coverage graph whether the audit runs on a schedule', () => {
    const titles = (t: Template) => dashboardOf(t).widgets.map((w) => w.properties.title);
    expect(titles(template)).toContain('Fleet coverage % (audit by hand only: set the auditSchedule param)');
    expect(titles(overridden)).toContain('Fleet coverage % (audit rate(1 day))');
  });

  it('alarms on every function\'s errors, throttles and dropped asynchronous events, and on undelivered failure records where a destination exists', () => {
    const watched = alarms().map(({ properties }) => [properties.MetricName, properties.Dimensions]);
    for (const name of functionNames()) {
      for (const metric of ['Errors', 'Throttles', 'AsyncEventsDropped']) {
        expect(watched, `${metric} of ${name}`).toContainEqual([metric, [{ Name: 'FunctionName', Value: name }]]);
      }
    }
    const withDestination = resourcesOfType(template, 'AWS::Lambda::EventInvokeConfig').filter(([, c]) => c.Properties.DestinationConfig?.OnFailure);
    expect(withDestination.length).toBeGreaterThan(0);
    for (const [, config] of withDestination) {
      const name = evaluate(template, config.Properties.FunctionName);
      expect(watched, `DestinationDeliveryFailures of ${name}`).toContainEqual(['DestinationDeliveryFailures', [{ Name: 'FunctionName', Value: name }]]);
    }
  });

  it('each alarm on a function watches a metric Lambda publishes for a function of the stack and notifies the alert topic within minutes', () => {
    // Every alarm but the one on the onboard queue's dead letters (below) is on a function.
    const onFunctions = alarms().filter(({ logicalId }) => logicalId !== 'OnboardDeadLettersAlarm');
    expect(onFunctions).toHaveLength(alarms().length - 1);
    expect(onFunctions.length).toBeGreaterThan(0);
    expect(unmatchedReferences(onFunctions.flatMap(({ properties }) => alarmReferences(properties.AlarmName, properties)), { emitted, functionNames: functionNames() })).toEqual([]);
    for (const { logicalId, properties } of onFunctions) {
      expect(properties, logicalId).toMatchObject({
        AlarmName: expect.stringMatching(/^cwap-test-/),
        AlarmActions: [topicArn],
        Statistic: 'Sum',
        Period: 300,
        EvaluationPeriods: 1,
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
      });
      expect(properties.AlarmDescription, logicalId).toContain('README');
      // Named <prefix>-<function>-<suffix> after what it watches, as the dashboard lists it.
      const [, fn, suffix] = /^cwap-test-(onboard|check|offboard|audit)-(.+)$/.exec(properties.AlarmName) ?? [];
      expect(properties.MetricName, logicalId).toBe(functionAlarms[suffix as keyof typeof functionAlarms]);
      expect(properties.Dimensions, logicalId).toEqual([{ Name: 'FunctionName', Value: `cw-agent-autopilot-test-${fn}` }]);
    }
    const names = alarms().map(({ properties }) => properties.AlarmName);
    expect(new Set(names).size).toBe(names.length);
  });

  it('alarms as soon as a running event reaches the onboard queue\'s dead-letter queue, to the alert topic', () => {
    const alarm = alarms().find(({ logicalId }) => logicalId === 'OnboardDeadLettersAlarm')?.properties;
    expect(alarm).toMatchObject({
      AlarmName: 'cwap-test-onboard-dead-letters',
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: 'cwap-test-onboard-dead-letters' }],
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [topicArn],
    });
    expect(alarm?.Dimensions[0].Value).toBe(evaluate(template, template.Resources.OnboardDeadLetterQueue!.Properties.QueueName));
    expect(alarm?.AlarmDescription).toContain('README');
  });

  it('names its own alarms outside the per-instance alarm names the checker and offboard may change (cwap-test-i-*)', () => {
    const names = alarms().map(({ properties }) => String(properties.AlarmName));
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((name) => name.startsWith('cwap-test-i-'))).toEqual([]);
  });

  it('shows exactly the stack\'s alarms on the dashboard', () => {
    const shown = dashboardOf(template).widgets.filter((w) => w.type === 'alarm').flatMap((w) => w.properties.alarms ?? []);
    const arns = alarms().map(({ properties }) => `arn:aws:cloudwatch:${region}:${account}:alarm:${properties.AlarmName}`);
    expect([...shown].sort()).toEqual([...arns].sort());
  });
});

describe('the deploy-time agent config source', () => {
  type Source = (context: { resolveVariable: (name: string) => Promise<unknown> }) => Promise<string>;
  const source = createRequire(import.meta.url)('../../scripts/render-agent-config.cjs') as Record<'linux' | 'windows', Source>;
  const params = (overrides: Record<string, string> = {}) => async (name: string) =>
    ({ 'param:namespace': 'NS', 'param:memoryMetric': 'MEM', 'param:diskMetric': 'DSK', 'param:windowsDiskFreeMetric': 'FREE', ...overrides })[name];

  it('escapes the agent placeholder ${aws:InstanceId} so osls passes it through', async () => {
    const value = await source.linux({ resolveVariable: params() });
    expect(value).toContain('"InstanceId": "\\${aws:InstanceId}"');
    expect(value.replaceAll('\\${', '${')).toBe(renderedAgentConfigs({ namespace: 'NS', memory: 'MEM', disk: 'DSK', windowsDiskFree: 'FREE' }).linux);
  });

  it('stops packaging with the size when a rendered config would not fit a standard parameter', async () => {
    await expect(source.linux({ resolveVariable: params({ 'param:namespace': 'N'.repeat(5000) }) })).rejects.toThrow(
      /rendered linux config is \d+ bytes, over the 4096-byte limit of a standard SSM parameter/,
    );
  });

  it('names an empty param instead of rendering an empty metric name', async () => {
    await expect(source.linux({ resolveVariable: params({ 'param:diskMetric': '' }) })).rejects.toThrow('param "diskMetric"');
  });
});

describe('the organization: the hub\'s bus, topic and member access, and the member stack', () => {
  const member = JSON.parse(readFileSync(path.join(repo, 'member', 'member-stack.json'), 'utf8')) as Template & {
    Outputs: Record<string, { Condition?: string; Value: unknown }>;
  };
  const functionKeys = ['onboard', 'check', 'offboard', 'audit'] as const;
  const capitalized = (key: string) => `${key[0]!.toUpperCase()}${key.slice(1)}`;
  const memberResource = (id: string) => member.Resources[id] as Resource & { Condition?: string };
  const conditionOf = (t: Template, id: string) => (t.Resources[id] as Resource & { Condition?: string } | undefined)?.Condition;

  /**
   * The member template's value as CloudFormation would evaluate it in the hub's account and
   * region with `parameters`: Ref, Fn::Sub (with a variable map), Fn::If, Fn::GetAtt of a named role.
   */
  function evaluateMember(value: unknown, parameters: Record<string, string>): unknown {
    const conditions = (name: string): boolean => {
      const holds = (condition: unknown): boolean => {
        const [[fn, argument] = []] = Object.entries(condition as Record<string, unknown>);
        if (fn === 'Condition') return conditions(argument as string);
        if (fn === 'Fn::Not') return !holds((argument as [unknown])[0]);
        if (fn === 'Fn::And') return (argument as unknown[]).every(holds);
        if (fn === 'Fn::Equals') {
          const [left, right] = (argument as [unknown, unknown]).map((side) => evaluateMember(side, parameters));
          return left === right;
        }
        throw new Error(`member condition ${name}: ${String(fn)} is not modelled by this test`);
      };
      return holds(member.Conditions?.[name]);
    };
    const refOf = (name: string, extra: Record<string, string> = {}): string => {
      const known: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::Region': region, 'AWS::AccountId': account, ...parameters, ...extra };
      if (name in known) return known[name]!;
      if (name === 'InstallAndConfigureDocument') return evaluateMember(member.Resources[name]!.Properties.Name, parameters) as string;
      if (member.Resources[name]?.Type === 'AWS::IAM::Role') return evaluateMember(member.Resources[name]!.Properties.RoleName, parameters) as string;
      throw new Error(`member Ref ${name} is not modelled by this test`);
    };
    if (Array.isArray(value)) return value.map((item) => evaluateMember(item, parameters)).filter((item) => item !== undefined);
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value);
    const [key, argument] = entries[0] ?? [];
    if (entries.length === 1 && key === 'Ref') return argument === 'AWS::NoValue' ? undefined : refOf(argument as string);
    if (entries.length === 1 && key === 'Fn::If') {
      const [name, yes, no] = argument as [string, unknown, unknown];
      return evaluateMember(conditions(name) ? yes : no, parameters);
    }
    if (entries.length === 1 && key === 'Fn::GetAtt') {
      const [id] = argument as [string, string];
      return `arn:aws:iam::${account}:role/${evaluateMember(member.Resources[id]!.Properties.RoleName, parameters) as string}`;
    }
    if (entries.length === 1 && key === 'Fn::Sub') {
      const [text, map] = typeof argument === 'string' ? [argument, {}] : (argument as [string, Record<string, unknown>]);
      const vars = Object.fromEntries(Object.entries(map).map(([k, v]) => [k, evaluateMember(v, parameters) as string]));
      return text.replace(/\$\{([^}!]+)\}/g, (_match, name: string) => refOf(name, vars));
    }
    if (key?.startsWith('Fn::')) throw new Error(`member ${key} is not modelled by this test`);
    return Object.fromEntries(entries.map(([k, v]) => [k, evaluateMember(v, parameters)]).filter(([, v]) => v !== undefined));
  }
  const memberParameters = { Stage: 'test', HubAccountId: '999999999999', HubRegion: 'eu-west-1', OrganizationId: '', MemberRoleName: '' };
  const memberStatements = (id: string, parameters: Record<string, string> = memberParameters) =>
    ((evaluateMember(member.Resources[id]!.Properties.Policies, parameters) ?? []) as { PolicyDocument: { Statement: Statement[] } }[]).flatMap(
      (policy) => policy.PolicyDocument.Statement,
    );
  const pairs = (statements: Statement[]) =>
    statements.flatMap((statement) => asList(statement.Action).map((action) => JSON.stringify([action, statement.Resource, statement.Condition ?? null]))).sort();

  /** Whether a hub condition holds with the parameters at their defaults (Or and Condition too). */
  function hubConditionHolds(t: Template, name: string): boolean {
    const condition = t.Conditions?.[name] as Record<string, unknown>;
    const [[fn, argument] = []] = Object.entries(condition);
    if (fn === 'Fn::Or') return (argument as Record<string, unknown>[]).some((item) => ('Condition' in item ? hubConditionHolds(t, item.Condition as string) : hubConditionHoldsInline(t, item)));
    return conditionHolds(t, name);
  }
  function hubConditionHoldsInline(t: Template, condition: Record<string, unknown>): boolean {
    const probe = { ...t, Conditions: { ...t.Conditions, probe: condition } };
    return conditionHolds(probe, 'probe');
  }

  it('grants no wildcard action in the member template', () => {
    const statements = Object.keys(member.Resources)
      .filter((id) => member.Resources[id]!.Type === 'AWS::IAM::Role')
      .flatMap((id) => memberStatements(id).map((statement) => ({ id, statement })));
    expect(statements.length).toBeGreaterThan(15);
    for (const { id, statement } of statements) {
      expect(statement.NotAction, id).toBeUndefined();
      for (const action of asList(statement.Action)) expect(action, id).not.toMatch(/^\*$|^[a-z0-9-]+:\*$/i);
    }
  });

  it('creates nothing but the no-op in the hub\'s own account and region (IsHubPlace)', () => {
    expect(member.Conditions).toMatchObject({
      IsHubPlace: { 'Fn::And': [{ 'Fn::Equals': [{ Ref: 'AWS::AccountId' }, { Ref: 'HubAccountId' }] }, { 'Fn::Equals': [{ Ref: 'AWS::Region' }, { Ref: 'HubRegion' }] }] },
      IsMemberPlace: { 'Fn::Not': [{ Condition: 'IsHubPlace' }] },
    });
    const unguarded = Object.keys(member.Resources).filter((id) => memberResource(id).Condition !== 'IsMemberPlace');
    expect(unguarded).toEqual(['HubPlaceNothingToDo']);
    expect(memberResource('HubPlaceNothingToDo').Type).toBe('AWS::CloudFormation::WaitConditionHandle');
    for (const [name, output] of Object.entries(member.Outputs)) expect(output.Condition, name).toBe('IsMemberPlace');
    expect(Object.keys(member.Outputs).sort()).toEqual([...functionKeys.map((key) => `${capitalized(key)}ExecutionRoleArn`), 'ForwardStateChangesRuleArn'].sort());
  });

  it('holds the hub\'s agent role, profile, document and parameters, under the same names', () => {
    for (const id of ['AgentRole', 'AgentInstanceProfile', 'InstallAndConfigureDocument', 'LinuxAgentConfigParameter', 'WindowsAgentConfigParameter']) {
      const hub = template.Resources[id]!;
      expect(memberResource(id).Type, id).toBe(hub.Type);
      const { Value: memberValue, ...memberProperties } = evaluateMember(memberResource(id).Properties, { ...memberParameters, HubRegion: region }) as Record<string, unknown>;
      const { Value: hubValue, ...hubProperties } = evaluate(template, hub.Properties) as Record<string, unknown>;
      expect(memberProperties, id).toEqual(hubProperties);
      // The hub's default metric params, rendered the same.
      expect(memberValue, id).toEqual(hubValue);
    }
  });

  it('trusts, in each execution role, exactly its hub function\'s role, and with an organization only its principals', () => {
    for (const key of functionKeys) {
      const id = `${capitalized(key)}ExecutionRole`;
      const hubRole = `arn:aws:iam::999999999999:role/cwap-test-eu-west-1-${key}`;
      const trust = (parameters: Record<string, string>) => evaluateMember(memberResource(id).Properties.AssumeRolePolicyDocument, parameters);
      expect(trust(memberParameters), id).toEqual({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: hubRole }, Action: 'sts:AssumeRole' }] });
      expect(trust({ ...memberParameters, OrganizationId: 'o-abcdef0123' }), id).toEqual({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { AWS: hubRole }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-abcdef0123' } } }],
      });
      expect(evaluateMember(memberResource(id).Properties.RoleName, memberParameters), id).toBe(`cwap-test-member-${key}-${region}`);
      expect(evaluateMember(memberResource(id).Properties.RoleName, { ...memberParameters, MemberRoleName: 'team-cwap' }), id).toBe(`team-cwap-${key}-${region}`);
    }
  });

  it('grants each execution role exactly its hub role\'s actions on the hub\'s own account, nothing hub-only', () => {
    const hubOnly = /^(logs|sns|dynamodb|scheduler|lambda|sts|organizations|sqs):/;
    const schedulerRole = `arn:aws:iam::${account}:role/cwap-test-us-east-1-scheduler`;
    for (const key of functionKeys) {
      const hubRole = `${capitalized(key)}Role`;
      const ownAccount = iamStatements(template)
        .filter(({ where }) => where.startsWith(`${hubRole}/`))
        .map(({ statement }) => statement)
        .filter((statement) => !asList(statement.Action).some((action) => hubOnly.test(action)) && statement.Resource !== schedulerRole)
        .map(({ Sid: _sid, ...statement }) => statement as Statement);
      const granted = memberStatements(`${capitalized(key)}ExecutionRole`, { ...memberParameters, HubRegion: region }).map(({ Sid: _sid, ...statement }) => statement as Statement);
      expect(ownAccount.length, key).toBeGreaterThan(2);
      expect(pairs(granted), key).toEqual(pairs(ownAccount));
    }
  });

  it('forwards running, stopped and terminated state changes to the hub bus through a role that may only put events there', () => {
    const rule = evaluateMember(memberResource('ForwardStateChangesRule').Properties, memberParameters) as Record<string, any>;
    const bus = 'arn:aws:events:eu-west-1:999999999999:event-bus/cwap-test-hub';
    expect(rule.EventBusName).toBe('default');
    expect(rule.EventPattern).toEqual({ source: ['aws.ec2'], 'detail-type': ['EC2 Instance State-change Notification'], detail: { state: ['running', 'stopped', 'terminated'] } });
    expect(rule.Targets).toEqual([{ Id: 'hub', Arn: bus, RoleArn: `arn:aws:iam::${account}:role/cwap-test-${region}-forward-to-hub` }]);
    const role = evaluateMember(memberResource('ForwardToHubRole').Properties, memberParameters) as Record<string, any>;
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([
      { Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'aws:SourceAccount': account } } },
    ]);
    expect(pairs(memberStatements('ForwardToHubRole').map(({ Sid: _sid, ...statement }) => statement as Statement))).toEqual(pairs([{ Effect: 'Allow', Action: 'events:PutEvents', Resource: bus }]));
  });

  it('names the hub function roles as the members trust them, and lets each assume only its own member role, only when other places are covered', () => {
    for (const key of functionKeys) {
      expect(template.Resources[`${capitalized(key)}Role`]?.Properties.RoleName, key).toBe(`cwap-test-us-east-1-${key}`);
      const policies = resourcesOfType(organized, 'AWS::IAM::Policy').filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: `${capitalized(key)}Role` }]));
      const assume = policies.flatMap(([id, p]) => asList((evaluate(organized, p.Properties.PolicyDocument) as { Statement: Statement[] }).Statement).map((statement) => ({ id, statement })))
        .filter(({ statement }) => asList(statement.Action).includes('sts:AssumeRole'));
      expect(assume.map(({ statement }) => statement.Resource), key).toEqual([`arn:aws:iam::*:role/cwap-test-member-${key}-*`]);
      expect(conditionOf(organized, assume[0]!.id), key).toBe('ServesOtherPlaces');
    }
    // No role but these four may assume anything.
    const everyAssume = iamStatements(organized).filter(({ statement }) => asList(statement.Action).includes('sts:AssumeRole'));
    expect(everyAssume.map(({ where }) => where.split('/')[0]).sort()).toEqual(['AuditMemberRolePolicy', 'CheckMemberRolePolicy', 'OffboardMemberRolePolicy', 'OnboardMemberRolePolicy']);
    expect(hubConditionHolds(template, 'ServesOtherPlaces')).toBe(false);
    expect(hubConditionHolds(organized, 'ServesOtherPlaces')).toBe(true);
    for (const id of ['OnboardAccountNamesPolicy', 'CheckAccountNamesPolicy', 'AuditAccountListPolicy']) expect(conditionOf(organized, id), id).toBe('HasOrganization');
  });

  it('feeds onboard and offboard from the hub bus with the default bus\'s patterns', () => {
    const rules = resourcesOfType(template, 'AWS::Events::Rule').filter(([, rule]) => rule.Properties.EventPattern);
    const onDefault = rules.filter(([, rule]) => !rule.Properties.EventBusName);
    const onHub = rules.filter(([, rule]) => rule.Properties.EventBusName);
    expect(template.Resources.HubEventBus).toMatchObject({ Type: 'AWS::Events::EventBus', Properties: { Name: 'cwap-test-hub' } });
    expect(onHub.map(([, rule]) => rule.Properties.EventBusName)).toEqual([{ Ref: 'HubEventBus' }, { Ref: 'HubEventBus' }]);
    const targetOf = (rule: Resource) => (evaluate(template, rule.Properties.Targets) as { Arn: string }[]).map((t) => t.Arn);
    const byTarget = (list: [string, Resource][]) => Object.fromEntries(list.map(([, rule]) => [targetOf(rule).join(), rule.Properties.EventPattern]));
    expect(byTarget(onHub)).toEqual(byTarget(onDefault));
    const permissions = resourcesOfType(template, 'AWS::Lambda::Permission').map(([, p]) => evaluate(template, p.Properties) as Record<string, string>);
    const toFunctions = onHub.filter(([, rule]) => targetOf(rule)[0]?.startsWith(`arn:aws:lambda:`));
    // offboard directly; onboard through the queue (its policy admits the hub rule: tested above).
    expect(toFunctions.map(([logicalId]) => logicalId)).toEqual(['OffboardFromHubBusRule']);
    expect(targetOf(template.Resources.OnboardFromHubBusRule!)).toEqual([`arn:aws:sqs:${region}:${account}:cwap-test-onboard`]);
    for (const [, rule] of toFunctions) {
      expect(permissions).toContainEqual(expect.objectContaining({ FunctionName: targetOf(rule)[0], Principal: 'events.amazonaws.com', SourceArn: `arn:aws:events:${region}:${account}:rule/cwap-test-hub/${rule.Properties.Name}` }));
    }
  });

  it('admits the organization or the listed accounts on the bus and the alert topic, and nobody when neither is set', () => {
    for (const name of ['HasOrganization', 'HasMemberAccounts']) {
      expect(conditionHolds(template, name), name).toBe(false);
      expect(conditionHolds(organized, name), name).toBe(true);
    }
    expect(hubConditionHolds(template, 'AdmitsMembers')).toBe(false);
    expect(conditionOf(organized, 'HubBusOrganizationPolicy')).toBe('HasOrganization');
    expect(conditionOf(organized, 'HubBusAccountsPolicy')).toBe('HasMemberAccounts');
    expect(organized.Resources.HubBusOrganizationPolicy!.Properties.Statement).toEqual({
      Effect: 'Allow',
      Principal: '*',
      Action: 'events:PutEvents',
      Resource: { 'Fn::GetAtt': ['HubEventBus', 'Arn'] },
      Condition: { StringEquals: { 'aws:PrincipalOrgID': { Ref: 'OrganizationId' } } },
    });
    expect(organized.Parameters?.OrganizationId?.Default).toBe('o-abcdef0123');
    expect(organized.Resources.HubBusAccountsPolicy!.Properties.Statement.Principal).toEqual({ AWS: { 'Fn::Split': [',', { Ref: 'MemberAccounts' }] } });
    expect(organized.Parameters?.MemberAccounts?.Default).toBe('111111111111,222222222222');

    const topicPolicy = organized.Resources.AlertTopicPolicy as Resource & { Condition?: string };
    expect(topicPolicy.Condition).toBe('AdmitsMembers');
    const [owner, orgAlarms, listedAlarms] = topicPolicy.Properties.PolicyDocument.Statement as [Statement & { Principal: unknown }, Record<string, unknown[]>, Record<string, unknown[]>];
    // The topic's default policy, kept: a policy replaces it.
    expect(evaluate(organized, owner.Condition)).toEqual({ StringEquals: { 'AWS:SourceOwner': account } });
    expect(asList(owner.Action)).toContain('SNS:Publish');
    expect(orgAlarms['Fn::If']?.[0]).toBe('HasOrganization');
    expect(orgAlarms['Fn::If']?.[1]).toMatchObject({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish', Condition: { StringEquals: { 'aws:SourceOrgID': { Ref: 'OrganizationId' } } } });
    expect(listedAlarms['Fn::If']?.[1]).toMatchObject({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Condition: { StringEquals: { 'aws:SourceAccount': { 'Fn::Split': [',', { Ref: 'MemberAccounts' }] } } } });
  });

  it('gives the functions the accounts, regions, organization and their member role names', () => {
    for (const key of functionKeys) {
      const environment = environmentOf(organized, functionNamed(organized, `cw-agent-autopilot-test-${key}`));
      expect(environment, key).toMatchObject({ ACCOUNTS: 'organization', REGIONS: 'us-east-1,eu-west-1', ORGANIZATION_ID: 'o-abcdef0123', MEMBER_ROLE_NAME: `cwap-test-member-${key}` });
      expect(environmentOf(template, functionNamed(template, `cw-agent-autopilot-test-${key}`)), key).toMatchObject({ ACCOUNTS: '', REGIONS: '', ORGANIZATION_ID: '' });
    }
  });
});
