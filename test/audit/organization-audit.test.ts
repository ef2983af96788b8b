import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { ListAccountsCommand, OrganizationsClient } from '@aws-sdk/client-organizations';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateFleet, installOrganizationFakeAws, type FakeAws, type SimulatedFleet } from '../../scripts/simulated-fleet.js';
import { renderMarkdown, renderSummaryText, renderTable } from '../../shared/audit/audit-render.js';
import { renderAuditSummary } from '../../shared/audit/audit-publication.js';
import { accountsOf, mergeOrganizationReports, organizationReport, runOrganizationAudit, type OrganizationAuditOptions } from '../../shared/audit/organization-audit.js';
import { onboardByInvoking } from '../../shared/audit/remediation.js';
import { ClientFactory } from '../../shared/aws/client-factory.js';
import { maxPublishBytes, publishedBytes } from '../../shared/checking/alerts.js';
import { clientFactoryOf } from '../../shared/aws/product-clients.js';
import { parseSettings, type Settings } from '../../shared/config/settings.js';
import { parseOnboardTrigger } from '../../shared/input/triggers.js';
import { stackEnvironment } from '../harness/stack.js';
import { payloadViolations } from '../harness/payload-schema.js';

const hub = '123456789012';
const memberA = '111111111111';
const memberB = '222222222222';
const now = new Date('2026-11-24T12:00:00.000Z');

let aws: FakeAws | undefined;
const organizations = mockClient(OrganizationsClient);
const lambda = mockClient(LambdaClient);
beforeAll(() => {
  // The fake tells the hub's clients by their own credentials.
  process.env.AWS_ACCESS_KEY_ID ??= 'hub';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'hub';
});
afterEach(() => {
  aws?.restore();
  aws = undefined;
  organizations.reset();
  lambda.reset();
});

/** The audit function's settings for these accounts and regions (fresh: one factory each). */
function settingsFor(accounts: string, regions: string): Settings {
  return parseSettings({ ...stackEnvironment('bench'), ACCOUNTS: accounts, REGIONS: regions, MEMBER_ROLE_NAME: 'cwap-bench-member-audit' });
}

function options(settings: Settings, extra: Partial<OrganizationAuditOptions> = {}): OrganizationAuditOptions {
  return {
    accounts: settings.accounts,
    regions: settings.regions,
    scope: { tags: [], instanceIds: [] },
    settings,
    remediation: { mode: 'off' },
    auditCommand: (place) => `npx cw-autopilot audit --region ${place.region} --accounts ${place.account}`,
    now,
    ...extra,
  };
}

const fleet = (accountId: string, region: string, size: number): SimulatedFleet => generateFleet(size, { now, accountId, region });

describe('the organization audit', () => {
  it('audits every account in every region, each place its own instances, through the member role of each place but the hub', async () => {
    const fleets = [fleet(hub, 'us-east-1', 50), fleet(hub, 'eu-west-1', 10), fleet(memberA, 'us-east-1', 50), fleet(memberA, 'eu-west-1', 50)];
    aws = installOrganizationFakeAws(fleets, { hubAccount: hub, now });
    const settings = settingsFor(`${hub},${memberA}`, 'us-east-1,eu-west-1');
    const factory = clientFactoryOf(settings);
    const report = await runOrganizationAudit(factory, options(settings));

    expect(report.summary.running).toBe(160);
    expect(report.organization.places).toBe(4);
    expect(report.organization.unreadable).toEqual([]);
    expect(report.summary.partial).toBe(false);
    expect(report.summary.regions).toEqual(['us-east-1', 'eu-west-1']);
    expect(Object.fromEntries(Object.entries(report.organization.byAccount).map(([account, tally]) => [account, tally.running]))).toEqual({ [hub]: 60, [memberA]: 100 });
    expect(report.organization.byRegion['eu-west-1']?.running).toBe(60);
    // A generated fleet of 50 has 40 healthy instances and one of each other case; one of 10, all healthy.
    expect(report.organization.byAccount[memberA]).toMatchObject({ healthy: 80, coverage: 0.8, unreadablePlaces: 0 });
    expect(report.organization.byAccount[hub]).toMatchObject({ healthy: 50, coverage: 0.8333 });
    // Each row says where it is; each place was asked about its own instances only.
    expect(report.instances.filter((row) => row.account === memberA && row.region === 'eu-west-1')).toHaveLength(50);
    expect(report.instances.filter((row) => row.account === memberA).every((row) => row.availabilityZone?.startsWith(row.region))).toBe(true);
    expect(aws.callsByPlace[`${memberA}/eu-west-1`]?.DescribeInstances).toBe(1);
    // The hub's own place uses the function's credentials; its other region and the member's two, the member role.
    expect(factory.assumeRoleCalls).toBe(3);
    const fixes = report.instances.filter((row) => row.account === memberA && row.remedy !== 'none');
    expect(fixes[0]?.fix).toContain(`--accounts ${memberA}`);
  });

  it('a place whose role cannot be assumed is listed with its account, region, role and reason; the other places stand', async () => {
    aws = installOrganizationFakeAws([fleet(hub, 'us-east-1', 20), fleet(memberA, 'us-east-1', 50), fleet(memberB, 'us-east-1', 20)], {
      hubAccount: hub,
      now,
      refusedRoles: (roleArn) => roleArn.includes(`:${memberB}:`),
    });
    const settings = settingsFor(`${hub},${memberA},${memberB}`, 'us-east-1');
    const report = await runOrganizationAudit(clientFactoryOf(settings), options(settings));

    expect(report.summary.running).toBe(70);
    expect(report.organization.unreadable).toEqual([
      {
        account: memberB,
        region: 'us-east-1',
        roleArn: `arn:aws:iam::${memberB}:role/cwap-bench-member-audit-us-east-1`,
        reason: expect.stringContaining('AccessDenied'),
      },
    ]);
    expect(report.organization.unreadable[0]?.reason).toContain('is the member stack deployed there');
    expect(report.organization.byAccount[memberB]).toMatchObject({ running: 0, unreadablePlaces: 1 });
    // Not read is not proven: the report is partial, so --min-coverage and the coverage metric refuse it.
    expect(report.summary.partial).toBe(true);
    // Nothing was read there.
    expect(aws.callsByPlace[`${memberB}/us-east-1`]).toBeUndefined();

    const text = renderTable(report);
    expect(text).toMatch(new RegExp(`NOT READ: 1 place\\(s\\).*\\n  ${memberB}/us-east-1 \\(role arn:aws:iam::${memberB}:role/cwap-bench-member-audit-us-east-1\\): .*AccessDenied`));
    expect(text).toMatch(new RegExp(`^  ${memberA}\\s+50\\s+40\\s+80\\.00%\\s+missing-metrics 4, .*\\s+-$`, 'm'));
    expect(text).toMatch(new RegExp(`^  ${memberB}\\s+0\\s+0\\s+-\\s+-\\s+1 of 1 regions$`, 'm'));
    expect(text.split('\n')[0]).toMatch(/^ACCOUNT\s+REGION\s+INSTANCE\s+NAME/);
    const markdown = renderMarkdown(report);
    expect(markdown).toContain('## By account (3)');
    expect(markdown).toContain(`| ${memberB} | 0 | 0 | - | - | 1 of 1 regions |`);
    expect(markdown).toContain(`> - ${memberB}/us-east-1 (role arn:aws:iam::${memberB}:role/cwap-bench-member-audit-us-east-1)`);
  });

  it('a place whose instance list cannot be read at all is listed too, with the error', async () => {
    aws = installOrganizationFakeAws([fleet(hub, 'us-east-1', 10)], { hubAccount: hub, now });
    aws.failApi('DescribeInstances', 'UnauthorizedOperation');
    const settings = settingsFor(hub, 'us-east-1');
    const report = await runOrganizationAudit(clientFactoryOf(settings), options(settings));
    expect(report.organization.unreadable).toEqual([{ account: hub, region: 'us-east-1', roleArn: null, reason: expect.stringMatching(/^DescribeInstances: .*UnauthorizedOperation/) }]);
    expect(report.summary.partial).toBe(true);
  });

  it('a single place reads as the one-region audit always did, with its organization figures beside it', async () => {
    aws = installOrganizationFakeAws([fleet(hub, 'us-east-1', 100)], { hubAccount: hub, now });
    const settings = settingsFor('', '');
    const report = await runOrganizationAudit(clientFactoryOf(settings), options(settings));
    expect(report.summary).toMatchObject({ running: 100, healthy: 80, regions: ['us-east-1'], partial: false });
    expect(report.organization).toMatchObject({ accounts: [hub], regions: ['us-east-1'], places: 1, unreadable: [] });
    // No place columns for one place.
    expect(renderTable(report).split('\n')[0]).toMatch(/^INSTANCE\s+NAME/);
    expect(renderTable(report)).not.toContain('By account:');
  });

  it('audits at most placeConcurrency places at a time', async () => {
    const accounts = Array.from({ length: 6 }, (_, index) => String(300_000_000_000 + index));
    aws = installOrganizationFakeAws(accounts.map((account) => fleet(account, 'us-east-1', 5)), { hubAccount: hub, now, latencyMs: 5 });
    const settings = settingsFor(accounts.join(','), 'us-east-1');
    let inFlight = 0;
    let most = 0;
    const factory = clientFactoryOf(settings);
    const verify = factory.verifyAccess.bind(factory);
    // A place is in flight from its access check to its "done" progress.
    factory.verifyAccess = async (place) => {
      most = Math.max(most, (inFlight += 1));
      return verify(place);
    };
    const report = await runOrganizationAudit(factory, options(settings, { placeConcurrency: 2, onProgress: (progress) => (progress.step === 'places' ? (inFlight -= 1) : undefined) }));
    expect(report.organization.places).toBe(6);
    expect(report.summary.running).toBe(30);
    expect(most).toBe(2);
  });

  it('reports progress per place, and each place once done', async () => {
    aws = installOrganizationFakeAws([fleet(hub, 'us-east-1', 5), fleet(memberA, 'us-east-1', 5)], { hubAccount: hub, now });
    const settings = settingsFor(`${hub},${memberA}`, 'us-east-1');
    const seen: string[] = [];
    await runOrganizationAudit(clientFactoryOf(settings), options(settings, { onProgress: (progress) => seen.push(`${progress.place.account} ${progress.step}`) }));
    expect(seen).toContain(`${memberA} metrics`);
    expect(seen.filter((line) => line.endsWith(' places')).sort()).toEqual([`${memberA} places`, `${hub} places`]);
  });

  it('remediation asks the hub onboard function, naming the place of a member instance and none of the hub\'s', async () => {
    aws = installOrganizationFakeAws([fleet(hub, 'us-east-1', 50), fleet(memberA, 'eu-west-1', 50)], { hubAccount: hub, now });
    lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
    const settings = settingsFor(`${hub},${memberA}`, 'us-east-1,eu-west-1');
    const factory = clientFactoryOf(settings);
    const report = await runOrganizationAudit(
      factory,
      options(settings, { remediation: { mode: 'apply', remediatorFor: (place) => onboardByInvoking(factory.clients(place), settings.onboardFunctionArn, 'audit function') } }),
    );
    const payloads = lambda.commandCalls(InvokeCommand).map((call) => JSON.parse(new TextDecoder().decode(call.args[0].input.Payload as Uint8Array)));
    expect(payloads.length).toBe(report.summary.remediable);
    expect(lambda.commandCalls(InvokeCommand).every((call) => call.args[0].input.FunctionName === settings.onboardFunctionArn)).toBe(true);
    const member = report.remediation?.find((item) => item.account === memberA);
    const hubOne = report.remediation?.find((item) => item.account === hub);
    expect(payloads.find((payload) => payload.instanceId === member?.instanceId && payload.account === memberA)).toEqual({
      instanceId: member?.instanceId,
      remediate: true,
      requestedBy: 'audit function',
      account: memberA,
      region: 'eu-west-1',
    });
    expect(parseOnboardTrigger({ instanceId: member?.instanceId, remediate: true, requestedBy: 'audit function', account: memberA, region: 'eu-west-1' }).place).toEqual({ account: memberA, region: 'eu-west-1' });
    const hubPayload = payloads.find((payload) => payload.instanceId === hubOne?.instanceId && payload.account === undefined);
    expect(hubPayload).toEqual({ instanceId: hubOne?.instanceId, remediate: true, requestedBy: 'audit function' });
  });

  it('the audit summary message names the per-account figures, worst first, within the size limit', async () => {
    aws = installOrganizationFakeAws([fleet(hub, 'us-east-1', 10), fleet(memberA, 'us-east-1', 50)], {
      hubAccount: hub,
      now,
      refusedRoles: (roleArn) => roleArn.includes(`:${memberB}:`),
    });
    const settings = settingsFor(`${hub},${memberA},${memberB}`, 'us-east-1');
    const report = await runOrganizationAudit(clientFactoryOf(settings), options(settings));
    const message = renderAuditSummary(report, settings, now);
    expect(message.subject).toContain('3 accounts');
    expect(message.body).toContain('By account:');
    expect(message.payload.organization).toMatchObject({ accounts: 3, places: 3, byAccountOmitted: 0, unreadableOmitted: 0 });
    // Worst first: memberB (not read), memberA (80%), the hub (10 of 10).
    expect(Object.keys(message.payload.organization?.byAccount ?? {})).toEqual([memberB, memberA, hub]);
    expect(message.payload.organization?.unreadable.map((place) => place.account)).toEqual([memberB]);
    expect(payloadViolations(message.payload)).toEqual([]);
  });

  it('a thousand accounts are cut to fit SNS, saying how many were left out', () => {
    const accounts = Array.from({ length: 1_000 }, (_, index) => String(400_000_000_000 + index));
    const regions = ['us-east-1', 'eu-west-1', 'ap-southeast-2'];
    const report = organizationReport({
      accounts,
      regions,
      places: 3_000,
      reports: [],
      unreadable: accounts.slice(0, 400).map((account) => ({ account, region: 'eu-west-1', roleArn: `arn:aws:iam::${account}:role/cwap-bench-member-audit-eu-west-1`, reason: 'AccessDenied: not authorized to perform sts:AssumeRole' })),
      remediated: false,
      now,
    });
    const settings = settingsFor('', '');
    const message = renderAuditSummary(report, settings, now);
    const organization = message.payload.organization;
    expect(organization?.byAccountOmitted).toBeGreaterThan(0);
    expect(Object.keys(organization?.byAccount ?? {}).length + (organization?.byAccountOmitted ?? 0)).toBe(1_000);
    expect((organization?.unreadable.length ?? 0) + (organization?.unreadableOmitted ?? 0)).toBe(400);
    // The accounts kept are the ones with a place not read.
    expect(Object.values(organization?.byAccount ?? {}).every((tally) => tally.unreadablePlaces === 1)).toBe(true);
    expect(publishedBytes(message)).toBeLessThanOrEqual(maxPublishBytes);
    expect(payloadViolations(message.payload)).toEqual([]);
  });
});

describe('the accounts of the audit', () => {
  it('organization: every ACTIVE account of every ListAccounts page, from the hub', async () => {
    organizations
      .on(ListAccountsCommand, { NextToken: undefined })
      .resolves({ Accounts: [{ Id: memberA, State: 'ACTIVE' }, { Id: '333333333333', State: 'SUSPENDED' }], NextToken: 'page-2' })
      .on(ListAccountsCommand, { NextToken: 'page-2' })
      .resolves({ Accounts: [{ Id: memberB, Status: 'ACTIVE' }, { Id: '444444444444', State: 'PENDING_CLOSURE' }] });
    const factory = new ClientFactory({ hubPlace: { account: hub, region: 'us-east-1' }, roleFor: () => undefined });
    expect(await accountsOf({ kind: 'organization' }, factory)).toEqual([memberA, memberB]);
    expect(organizations.commandCalls(ListAccountsCommand)).toHaveLength(2);
  });

  it('hub: the hub\'s own account; list: the ids given', async () => {
    const factory = new ClientFactory({ hubPlace: { account: hub, region: 'us-east-1' }, roleFor: () => undefined });
    expect(await accountsOf({ kind: 'hub' }, factory)).toEqual([hub]);
    expect(await accountsOf({ kind: 'list', ids: [memberA, memberB] }, factory)).toEqual([memberA, memberB]);
    expect(organizations.commandCalls(ListAccountsCommand)).toHaveLength(0);
  });
});

describe('merging the reports of several stacks', () => {
  it('adds up the places, instances and tallies, and keeps each row\'s place', async () => {
    aws = installOrganizationFakeAws([fleet(hub, 'us-east-1', 50), fleet(hub, 'eu-west-1', 100)], { hubAccount: hub, now });
    const east = settingsFor('', 'us-east-1');
    const west = parseSettings({ ...stackEnvironment('bench'), AWS_REGION: 'eu-west-1' });
    const reports = [
      await runOrganizationAudit(clientFactoryOf(east), options(east)),
      await runOrganizationAudit(new ClientFactory({ hubPlace: { account: hub, region: 'eu-west-1' }, roleFor: () => undefined }), options(west)),
    ];
    const merged = mergeOrganizationReports(reports, now);
    expect(merged.summary).toMatchObject({ running: 150, healthy: 120, coverage: 0.8, regions: ['us-east-1', 'eu-west-1'] });
    expect(merged.organization).toMatchObject({ accounts: [hub], places: 2 });
    expect(merged.organization.byRegion['eu-west-1']?.running).toBe(100);
    expect(merged.instances.filter((row) => row.region === 'eu-west-1')).toHaveLength(100);
    expect(renderSummaryText(merged)).toContain('By region:');
  });
});
