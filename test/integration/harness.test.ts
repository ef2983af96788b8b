import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDocument, type Tags } from 'yaml';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { GetScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { ListTopicsCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { metricsPublishedBy } from '../../shared/agent-config.js';
import { parseSettings } from '../../shared/config/settings.js';
import { latestAgentVersion } from '../harness/command-execution.js';
import { useAws } from '../harness/aws-env.js';
import { localClientConfig } from '../harness/client-config.js';
import { createWorkloadProfile, launchInstance, stateChangeEvent, testImages } from '../harness/fleet.js';
import { agentManagedPolicies, deployStack } from '../harness/stack.js';
import { parseOnboardTrigger } from '../../shared/input/triggers.js';

const aws = useAws();

// Retries off: an injected fault must surface as the error the SDK builds from it.
const clients = () => {
  const config = localClientConfig(undefined, { maxAttempts: 1 });
  return {
    ec2: new EC2Client(config),
    ssm: new SSMClient(config),
    iam: new IAMClient(config),
    dynamodb: new DynamoDBClient(config),
    cloudwatch: new CloudWatchClient(config),
    scheduler: new SchedulerClient(config),
    sns: new SNSClient(config),
  };
};

async function errorOf(promise: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`not an Error: ${String(error)}`);
  }
  throw new Error('expected the call to fail');
}

const ids = (count: number) => Array.from({ length: count }, (_, n) => `i-0${String(n).padStart(16, '0')}`);

describe('moto through the proxy', () => {
  it('runs and describes instances with the real SDK, Linux without Platform and Windows with it', async () => {
    const { ec2 } = clients();
    const images = await testImages();
    const linux = await ec2.send(new RunInstancesCommand({ ImageId: images.linux, MinCount: 1, MaxCount: 1 }));
    const windows = await launchInstance({ os: 'windows', tags: { team: 'web' } });

    const described = await ec2.send(
      new DescribeInstancesCommand({ InstanceIds: [linux.Instances?.[0]?.InstanceId ?? '', windows.instanceId] }),
    );
    const instances = described.Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
    expect(instances.map((i) => [i.State?.Name, i.Platform])).toEqual(
      expect.arrayContaining([
        ['running', undefined],
        ['running', 'windows'],
      ]),
    );
    expect(instances.find((i) => i.InstanceId === windows.instanceId)?.Tags).toEqual([{ Key: 'team', Value: 'web' }]);
  });

  it('logs every AWS call with its service signing name, operation and status', async () => {
    const { ec2, ssm, cloudwatch, scheduler, sns } = clients();
    await ec2.send(new DescribeInstancesCommand({}));
    await ec2.send(new DescribeInstancesCommand({}));
    await ssm.send(new DescribeInstanceInformationCommand({}));
    await cloudwatch.send(new PutMetricDataCommand({ Namespace: 'Harness', MetricData: [{ MetricName: 'm', Value: 1 }] }));
    await sns.send(new ListTopicsCommand({}));
    await errorOf(scheduler.send(new GetScheduleCommand({ Name: 'missing' })));

    expect(aws.calls()).toEqual([
      { service: 'ec2', operation: 'DescribeInstances', status: 200 },
      { service: 'ec2', operation: 'DescribeInstances', status: 200 },
      { service: 'ssm', operation: 'DescribeInstanceInformation', status: 200 },
      { service: 'monitoring', operation: 'PutMetricData', status: 200 },
      { service: 'sns', operation: 'ListTopics', status: 200 },
      { service: 'scheduler', operation: 'GetSchedule', status: 404 },
    ]);
    aws.proxy.resetCalls();
    expect(aws.calls()).toEqual([]);
  });
});

describe('simulated Systems Manager', () => {
  it('lists only registered instances, filtered by InstanceIds, PingStatus and PlatformType', async () => {
    const { ssm } = clients();
    const [linux, windows, lost] = ids(3) as [string, string, string];
    aws.ssm.register(linux, { platformType: 'Linux' });
    aws.ssm.register(windows, { platformType: 'Windows', agentVersion: '3.2.0.0', isLatestVersion: false });
    aws.ssm.register(lost, { platformType: 'Linux' });
    aws.ssm.setPing(lost, 'ConnectionLost', new Date('2026-01-02T03:04:05Z'));

    const one = await ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [windows, 'i-0ffffffffffffffff'] }], MaxResults: 5 }),
    );
    expect(one.InstanceInformationList).toEqual([
      expect.objectContaining({
        InstanceId: windows,
        PingStatus: 'Online',
        PlatformType: 'Windows',
        AgentVersion: '3.2.0.0',
        IsLatestVersion: false,
        ResourceType: 'EC2Instance',
        LastPingDateTime: expect.any(Date),
      }),
    ]);

    const online = await ssm.send(
      new DescribeInstanceInformationCommand({
        Filters: [
          { Key: 'PingStatus', Values: ['Online'] },
          { Key: 'PlatformType', Values: ['Linux'] },
        ],
      }),
    );
    expect(online.InstanceInformationList?.map((i) => i.InstanceId)).toEqual([linux]);
    // PlatformTypes is the legacy list's key, not one of Filters'.
    const legacyKey = await errorOf(ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'PlatformTypes', Values: ['Linux'] }] })));
    expect(legacyKey.name).toBe('InvalidFilterKey');
    const both = await errorOf(
      ssm.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: 'InstanceIds', Values: [linux] }],
          InstanceInformationFilterList: [{ key: 'InstanceIds', valueSet: [linux] }],
        }),
      ),
    );
    expect(both.name).toBe('ValidationException');

    const legacy = await ssm.send(
      new DescribeInstanceInformationCommand({ InstanceInformationFilterList: [{ key: 'InstanceIds', valueSet: [lost] }] }),
    );
    expect(legacy.InstanceInformationList?.[0]).toMatchObject({ PingStatus: 'ConnectionLost' });
    expect(legacy.InstanceInformationList?.[0]?.LastPingDateTime?.toISOString()).toBe('2026-01-02T03:04:05.000Z');

    aws.ssm.unregister(linux);
    const all = await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'ResourceType', Values: ['EC2Instance'] }] }));
    expect(all.InstanceInformationList?.map((i) => i.InstanceId)).toEqual([windows, lost]);
  });

  it('answers InvalidInstanceId for an unknown id when told to (the API reference allows that reading)', async () => {
    const { ssm } = clients();
    const [known] = ids(1) as [string];
    aws.ssm.register(known, { platformType: 'Linux' });
    aws.ssm.unknownInstanceIds('error');
    const error = await errorOf(
      ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [known, 'i-0ffffffffffffffff'] }], MaxResults: 5 })),
    );
    expect(error.name).toBe('InvalidInstanceId');
    const listed = await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [known] }], MaxResults: 5 }));
    expect(listed.InstanceInformationList?.map((i) => i.InstanceId)).toEqual([known]);
  });

  it('pages with MaxResults and NextToken, and rejects MaxResults outside 5..50 like AWS', async () => {
    const { ssm } = clients();
    const fleet = ids(12);
    for (const id of fleet) aws.ssm.register(id, { platformType: 'Linux' });

    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const page = await ssm.send(new DescribeInstanceInformationCommand({ MaxResults: 5, NextToken: nextToken }));
      seen.push(...(page.InstanceInformationList ?? []).map((i) => i.InstanceId ?? ''));
      nextToken = page.NextToken;
      pages += 1;
    } while (nextToken);
    expect(pages).toBe(3);
    expect(seen).toEqual(fleet);

    const tooSmall = await errorOf(ssm.send(new DescribeInstanceInformationCommand({ MaxResults: 3 })));
    expect(tooSmall.name).toBe('ValidationException');
    expect(tooSmall.message).toMatch(/greater than or equal to 5/);
    const tooLarge = await errorOf(ssm.send(new DescribeInstanceInformationCommand({ MaxResults: 51 })));
    expect(tooLarge.name).toBe('ValidationException');
  });
});

describe('simulated commands', () => {
  it('refuses SendCommand to an instance SSM does not know, like AWS (InvalidInstanceId)', async () => {
    const stack = await deployStack();
    const { ssm } = clients();
    const { instanceId } = await launchInstance({ os: 'linux' });
    const error = await errorOf(
      ssm.send(new SendCommandCommand({ DocumentName: stack.settings.agentDocumentName, InstanceIds: [instanceId] })),
    );
    expect(error.name).toBe('InvalidInstanceId');
  });

  it('takes at most 50 instance ids a SendCommand, and answers with the counts at 0 as AWS does', async () => {
    const stack = await deployStack();
    const { ssm } = clients();
    const many = ids(51);
    for (const id of many) aws.ssm.register(id, { platformType: 'Linux' });
    const error = await errorOf(ssm.send(new SendCommandCommand({ DocumentName: stack.settings.agentDocumentName, InstanceIds: many })));
    expect(error.name).toBe('ValidationException');
    const sent = await ssm.send(new SendCommandCommand({ DocumentName: stack.settings.agentDocumentName, InstanceIds: many.slice(0, 50) }));
    expect(sent.Command).toMatchObject({ TargetCount: 0, CompletedCount: 0, Status: 'Pending' });
    expect(sent.Command?.InstanceIds).toHaveLength(50);
  });

  it('a command to an instance whose SSM agent lost its connection is never delivered: DeliveryTimedOut, its outcome kept for the next one', async () => {
    const stack = await deployStack();
    const { ssm } = clients();
    const [lost] = ids(1) as [string];
    aws.ssm.register(lost, { platformType: 'Linux' });
    aws.ssm.setPing(lost, 'ConnectionLost');
    aws.commands.setOutcome(lost, { status: 'Failed', step: 'configureAgent', output: 'bad config' }, { status: 'Success' });
    const first = await ssm.send(new SendCommandCommand({ DocumentName: stack.settings.agentDocumentName, InstanceIds: [lost] }));
    expect(aws.commands.invocation(first.Command?.CommandId ?? '', lost)).toMatchObject({ status: 'TimedOut', statusDetails: 'DeliveryTimedOut' });
    expect(aws.agents.get(lost)).toBeUndefined();
    aws.ssm.setPing(lost, 'Online');
    const second = await ssm.send(new SendCommandCommand({ DocumentName: stack.settings.agentDocumentName, InstanceIds: [lost] }));
    const ran = await ssm.send(new GetCommandInvocationCommand({ CommandId: second.Command?.CommandId ?? '', InstanceId: lost, PluginName: 'configureAgent' }));
    expect(ran).toMatchObject({ Status: 'Failed', StandardErrorContent: 'bad config' });
  });

  it('runs the stack document over an older Distributor-installed agent: uninstall and reinstall, then configure', async () => {
    const stack = await deployStack();
    const { ssm } = clients();
    const [old] = ids(1) as [string];
    aws.ssm.register(old, { platformType: 'Windows' });
    aws.agents.set(old, { version: '1.247350.0', installedBy: 'distributor' });
    const sent = await ssm.send(
      new SendCommandCommand({ DocumentName: stack.settings.agentDocumentName, InstanceIds: [old], Parameters: { configParameter: [stack.settings.configParameter.windows] } }),
    );
    const get = (plugin: string) => ssm.send(new GetCommandInvocationCommand({ CommandId: sent.Command?.CommandId ?? '', InstanceId: old, PluginName: plugin }));
    expect(await get('installAgent')).toMatchObject({ Status: 'Success', StandardOutputContent: expect.stringContaining('Successfully uninstalled AmazonCloudWatchAgent 1.247350.0') });
    expect(await get('configureAgent')).toMatchObject({ Status: 'Success', StatusDetails: 'Success' });
    expect(aws.agents.get(old)).toEqual({ version: latestAgentVersion, installedBy: 'distributor' });
  });

  it('answers GetCommandInvocation per step, with the outcome a test set, for the instance asked only', async () => {
    const stack = await deployStack();
    const { ssm } = clients();
    const failing = await launchInstance({ os: 'windows' });
    const healthy = await launchInstance({ os: 'linux' });
    const bystander = await launchInstance({ os: 'linux' });
    for (const instance of [failing, healthy, bystander]) aws.ssm.register(instance.instanceId, { platformType: instance.os === 'windows' ? 'Windows' : 'Linux' });
    aws.commands.setOutcome(
      failing.instanceId,
      { status: 'Failed', step: 'installAgent', output: 'Failed to download AmazonCloudWatchAgent', invisibleForPolls: 1 },
      { status: 'Success' },
    );

    const sent = await ssm.send(
      new SendCommandCommand({
        DocumentName: stack.settings.agentDocumentName,
        InstanceIds: [failing.instanceId, healthy.instanceId],
        Parameters: { configParameter: [stack.settings.configParameter.windows] },
      }),
    );
    const commandId = sent.Command?.CommandId ?? '';
    // moto alone would target every instance of the region.
    expect(sent.Command?.InstanceIds?.sort()).toEqual([failing.instanceId, healthy.instanceId].sort());
    expect(aws.commands.sent()).toEqual([
      expect.objectContaining({ commandId, steps: ['installAgent', 'configureAgent'], instanceIds: [failing.instanceId, healthy.instanceId] }),
    ]);

    const invocation = (instanceId: string, pluginName?: string) =>
      ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId, PluginName: pluginName }));

    expect((await errorOf(invocation(failing.instanceId, 'installAgent'))).name).toBe('InvocationDoesNotExist');
    expect(await invocation(failing.instanceId, 'installAgent')).toMatchObject({
      Status: 'Failed',
      StatusDetails: 'Failed',
      ResponseCode: 1,
      PluginName: 'installAgent',
      DocumentName: stack.settings.agentDocumentName,
      // The SSM agent appends this to a failed step whose inputs carry onFailure (runpluginutil.go).
      StandardOutputContent: 'Failed to download AmazonCloudWatchAgent\nStep was found to have onFailure property. Further document steps will be skipped.',
      StandardErrorContent: 'Failed to download AmazonCloudWatchAgent\nStep was found to have onFailure property. Further document steps will be skipped.',
    });
    // onFailure: exit in the install step's inputs: configure never ran.
    expect(await invocation(failing.instanceId, 'configureAgent')).toMatchObject({ Status: 'Success', StatusDetails: 'Skipped', ResponseCode: 0 });
    expect(await invocation(healthy.instanceId, 'configureAgent')).toMatchObject({ Status: 'Success', ResponseCode: 0 });
    expect((await errorOf(invocation(healthy.instanceId))).name).toBe('InvalidPluginName');
    expect((await errorOf(invocation(bystander.instanceId, 'installAgent'))).name).toBe('InvocationDoesNotExist');

    const listed = await ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }));
    const failed = listed.CommandInvocations?.find((i) => i.InstanceId === failing.instanceId);
    expect(failed).toMatchObject({ Status: 'Failed', DocumentName: stack.settings.agentDocumentName });
    expect(failed?.CommandPlugins?.map((p) => [p.Name, p.Status, p.StatusDetails])).toEqual([
      ['installAgent', 'Failed', 'Failed'],
      ['configureAgent', 'Success', 'Skipped'],
    ]);

    // The second command to the same instance takes the next outcome.
    const retry = await ssm.send(
      new SendCommandCommand({ DocumentName: stack.settings.agentDocumentName, InstanceIds: [failing.instanceId] }),
    );
    const retried = await ssm.send(
      new GetCommandInvocationCommand({ CommandId: retry.Command?.CommandId ?? '', InstanceId: failing.instanceId, PluginName: 'configureAgent' }),
    );
    expect(retried.Status).toBe('Success');
  });

  it('reports InProgress and TimedOut invocations', async () => {
    const stack = await deployStack();
    const { ssm } = clients();
    const [slow, stuck] = ids(2) as [string, string];
    aws.ssm.register(slow, { platformType: 'Linux' });
    aws.ssm.register(stuck, { platformType: 'Linux' });
    aws.commands.setOutcome(slow, { status: 'InProgress' });
    aws.commands.setOutcome(stuck, { status: 'TimedOut', step: 'configureAgent' });
    const sent = await ssm.send(new SendCommandCommand({ DocumentName: stack.settings.agentDocumentName, InstanceIds: [slow, stuck] }));
    const get = (instanceId: string, pluginName: string) =>
      ssm.send(new GetCommandInvocationCommand({ CommandId: sent.Command?.CommandId ?? '', InstanceId: instanceId, PluginName: pluginName }));
    expect(await get(slow, 'installAgent')).toMatchObject({ Status: 'InProgress', ResponseCode: -1 });
    expect(await get(slow, 'configureAgent')).toMatchObject({ Status: 'Pending' });
    expect(await get(stuck, 'installAgent')).toMatchObject({ Status: 'Success' });
    expect(await get(stuck, 'configureAgent')).toMatchObject({ Status: 'TimedOut', StatusDetails: 'ExecutionTimedOut' });
  });
});

describe('injected faults', () => {
  it('surface as the error each protocol gives: ThrottlingException, RequestLimitExceeded, Throttling, 5xx', async () => {
    const { ec2, ssm, iam, dynamodb, cloudwatch, scheduler, sns } = clients();
    aws.faults.set((service, operation) => {
      if (operation === 'DescribeInstances' || service === 'ssm' || service === 'iam' || service === 'sns') return 'throttle';
      if (service === 'monitoring' || service === 'scheduler') return 'throttle';
      if (service === 'dynamodb') return '5xx';
      return undefined;
    });

    const results = {
      ssm: await errorOf(ssm.send(new DescribeInstanceInformationCommand({}))),
      ec2: await errorOf(ec2.send(new DescribeInstancesCommand({}))),
      iam: await errorOf(iam.send(new GetInstanceProfileCommand({ InstanceProfileName: 'x' }))),
      sns: await errorOf(sns.send(new ListTopicsCommand({}))),
      cloudwatch: await errorOf(cloudwatch.send(new PutMetricDataCommand({ Namespace: 'N', MetricData: [{ MetricName: 'm', Value: 1 }] }))),
      scheduler: await errorOf(scheduler.send(new GetScheduleCommand({ Name: 'x' }))),
      dynamodb: await errorOf(dynamodb.send(new DescribeTableCommand({ TableName: 'x' }))),
    };
    expect(Object.fromEntries(Object.entries(results).map(([service, error]) => [service, [error.name, error.$metadata?.httpStatusCode]]))).toEqual({
      ssm: ['ThrottlingException', 400],
      ec2: ['RequestLimitExceeded', 503],
      iam: ['Throttling', 400],
      sns: ['ThrottledException', 429], // SNS's own code Throttled (service model: ThrottledException)
      cloudwatch: ['Throttling', 400],
      scheduler: ['ThrottlingException', 429],
      dynamodb: ['InternalServerError', 500],
    });
    expect(aws.calls().map((call) => call.status)).toEqual([400, 503, 400, 429, 400, 429, 500]);

    aws.faults.set((_service, operation) => (operation === 'DescribeInstances' ? '503' : { delayMs: 50 }));
    expect((await errorOf(ec2.send(new DescribeInstancesCommand({})))).$metadata?.httpStatusCode).toBe(503);
    const started = Date.now();
    await ssm.send(new DescribeInstanceInformationCommand({}));
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);

    aws.faults.clear();
    await ec2.send(new DescribeInstancesCommand({}));
  });
});

describe('deployStack', () => {
  it('creates the stack from its source files and returns settings parseSettings accepts', async () => {
    const stack = await deployStack({ env: { METRIC_NAMESPACE: 'Harness/Test' } });
    const { ssm, iam, dynamodb } = clients();

    expect(parseSettings(stack.env)).toEqual(stack.settings);
    expect(stack.settings.configParameter).toEqual({
      linux: 'AmazonCloudWatch-cwap-test-linux',
      windows: 'AmazonCloudWatch-cwap-test-windows',
    });
    for (const os of ['linux', 'windows'] as const) {
      const parameter = await ssm.send(new GetParameterCommand({ Name: stack.settings.configParameter[os] }));
      const published = metricsPublishedBy(parameter.Parameter?.Value ?? '{}', os);
      expect(published.map((m) => m.namespace)).toEqual(published.map(() => 'Harness/Test'));
      expect(published.length).toBeGreaterThan(0);
    }

    const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: stack.agentRole.name }));
    expect(attached.AttachedPolicies?.map((p) => p.PolicyArn).sort()).toEqual([...agentManagedPolicies].sort());
    const profile = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: stack.agentProfile.name }));
    expect(profile.InstanceProfile?.Roles?.map((r) => r.RoleName)).toEqual([stack.agentRole.name]);

    const table = await dynamodb.send(new DescribeTableCommand({ TableName: stack.settings.stateTable }));
    expect(table.Table?.KeySchema).toEqual([{ AttributeName: 'recordKey', KeyType: 'HASH' }]);
    expect(table.Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(stack.schedulerRole.arn).toBe(stack.settings.schedulerRoleArn);
  });

  it('gives the functions every variable serverless.yml gives them', async () => {
    // CloudFormation short tags (!Ref, !Sub, !GetAtt) read as plain values: only the keys matter.
    const cfnTags: Tags = ['!Ref', '!Sub', '!GetAtt', '!Not', '!Equals', '!Or', '!And', '!If', '!Split', '!Condition'].map((tag) => ({ tag, resolve: (value: unknown) => value }));
    const template = parseDocument(readFileSync(new URL('../../serverless.yml', import.meta.url), 'utf8'), {
      customTags: cfnTags,
    }).toJS() as { provider?: { environment?: Record<string, unknown> } };
    const stack = await deployStack();
    expect(Object.keys(stack.env)).toEqual(expect.arrayContaining(Object.keys(template.provider?.environment ?? {})));
  });
});

describe('fleet', () => {
  it('builds a state-change event the product accepts, and workload profiles without CloudWatch policies', async () => {
    const web = await createWorkloadProfile('web-app', { policies: ['arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess'] });
    const { instanceId, instance } = await launchInstance({ os: 'linux', profileName: web.profileName });
    expect(instance.IamInstanceProfile?.Arn).toBe(web.profileArn);

    const event = stateChangeEvent(instanceId, 'running');
    expect(event.resources).toEqual([`arn:aws:ec2:us-east-1:123456789012:instance/${instanceId}`]);
    expect(parseOnboardTrigger(event)).toMatchObject({ kind: 'state-change', instanceId, state: 'running' });
  });
});
