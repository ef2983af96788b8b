import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { GetCommand, paginateScan, PutCommand } from '@aws-sdk/lib-dynamodb';
import { markdownCell, type ReportFormat } from '../shared/audit/audit-render.js';
import { mapBounded } from '../shared/audit/concurrency.js';
import { stateTableClient, type Clients } from '../shared/aws/client-factory.js';
import { awsErrorName, describeError } from '../shared/aws/errors.js';
import type { Place } from '../shared/aws/place.js';
import type { Settings } from '../shared/config/settings.js';
import { recordKeyOf, statusChange, type OnboardingRecord } from '../shared/state/instance-record.js';
import type { StackArguments } from './audit-arguments.js';
import { awsConnection, singleRegion } from './aws-flags.js';
import { callerAccount, cliClientFactory, defaultRegion } from './cli-clients.js';
import { CliError, UsageError, type CliIo, type CommandLine } from './command-line.js';
import { exitCodes, instanceIdSchema } from './flags.js';
import { readStackSettings } from './stack-settings.js';

// Before the organization release the state table was `cwap-<stage>-state`, keyed by instanceId,
// and its records named no account or region. `osls deploy` of this version creates
// `cwap-<stage>-records` (keyed by recordKey) and keeps the old table (UpdateReplacePolicy:
// Retain); this command copies the old records into the new table.

/** What the upgrade did with one item of the old table. */
export type UpgradeOutcome =
  | 'copied'
  /** A previous run copied this very record (same version and updatedAt): nothing to do. */
  | 'already-copied'
  /** The new version already wrote a record of this instance: it is newer, and kept. */
  | 'skipped-newer'
  /** Not a record of an instance. */
  | 'skipped-invalid'
  | 'failed';

export const upgradeOutcomes: readonly UpgradeOutcome[] = ['copied', 'already-copied', 'skipped-newer', 'skipped-invalid', 'failed'];

/** One item the upgrade could not copy, and why. */
export interface UpgradeProblem {
  outcome: 'skipped-invalid' | 'failed';
  /** The item's instanceId, or its keys when it has none. */
  item: string;
  reason: string;
}

/** What one run of the upgrade did (or, on a dry run, would do). */
export interface StateUpgradeReport {
  from: string;
  to: string;
  /** The account and region the old records are of. */
  place: Place;
  dryRun: boolean;
  /** Items of the old table read. */
  scanned: number;
  counts: Record<UpgradeOutcome, number>;
  /** Of the records copied: `gone` ones that had no expiresAt and got one. */
  expiriesAdded: number;
  problems: UpgradeProblem[];
}

/** An old record as the new table holds it, or why the item is not a record. */
export type UpgradedRecord = { record: OnboardingRecord; expiryAdded: boolean } | { invalid: string };

function itemLabel(item: Record<string, unknown>): string {
  return typeof item.instanceId === 'string' ? item.instanceId : `{${Object.keys(item).sort().join(', ')}}`;
}

/**
 * An item of the old table as a record of the new one: `recordKey`, `account` and `region` of the
 * place added, everything else as it was (version and updatedAt too, so a second run can tell its
 * own copy from a newer record). A `gone` record keeps its expiresAt; one without gets the expiry
 * a `gone` record gets today (goneRecordRetentionDays), counted from when it became gone
 * (its updatedAt), so it no longer stays in the table forever. Pure.
 *
 * @example
 * upgradedRecord({ instanceId: 'i-0123456789abcdef0', status: 'healthy', version: 4, ... }, { account: '123456789012', region: 'eu-west-1' }, settings);
 */
export function upgradedRecord(item: Record<string, unknown>, place: Place, settings: Pick<Settings, 'goneRecordRetentionDays'>): UpgradedRecord {
  const id = instanceIdSchema.safeParse(item.instanceId);
  if (!id.success) {
    return { invalid: item.instanceId === undefined ? 'not a record: no instanceId' : `not a record: instanceId ${JSON.stringify(item.instanceId)} is not an EC2 instance id` };
  }
  if (typeof item.status !== 'string') return { invalid: 'not a record: no status' };
  if (typeof item.version !== 'number') return { invalid: 'not a record: no version (the optimistic lock every write checks)' };

  const record = { ...item, recordKey: recordKeyOf(place, id.data), account: place.account, region: place.region } as OnboardingRecord;
  if (record.status !== 'gone' || record.expiresAt !== undefined) return { record, expiryAdded: false };
  const goneSince = [record.updatedAt, record.createdAt].map((at) => new Date(at ?? '')).find((at) => !Number.isNaN(at.getTime())) ?? new Date();
  return { record: { ...record, expiresAt: statusChange('gone', goneSince, settings).expiresAt }, expiryAdded: true };
}

/** What {@link upgradeStateTable} copies, from where to where. */
export interface StateUpgradeOptions {
  /** The old table (keyed by instanceId). */
  from: string;
  /** The new table (keyed by recordKey). */
  to: string;
  /** Read and compare, write nothing. */
  dryRun: boolean;
  settings: Pick<Settings, 'goneRecordRetentionDays'>;
  /** Writes in flight at once. Default 8. */
  concurrency?: number;
}

/** The version and updatedAt of the new table's record of an instance, or undefined. */
async function existingRecord(clients: Clients, table: string, recordKey: string): Promise<Pick<OnboardingRecord, 'version' | 'updatedAt'> | undefined> {
  const result = await stateTableClient(clients).send(
    new GetCommand({ TableName: table, Key: { recordKey }, ProjectionExpression: 'version, updatedAt', ConsistentRead: true }),
  );
  return result.Item as Pick<OnboardingRecord, 'version' | 'updatedAt'> | undefined;
}

function sameRecord(copy: OnboardingRecord, existing: Pick<OnboardingRecord, 'version' | 'updatedAt'>): boolean {
  return existing.version === copy.version && existing.updatedAt === copy.updatedAt;
}

/** Copies one record; a record the new table already has is left as it is. */
async function copyRecord(clients: Clients, options: StateUpgradeOptions, record: OnboardingRecord): Promise<'copied' | 'already-copied' | 'skipped-newer'> {
  if (options.dryRun) {
    const existing = await existingRecord(clients, options.to, record.recordKey);
    return !existing ? 'copied' : sameRecord(record, existing) ? 'already-copied' : 'skipped-newer';
  }
  try {
    await stateTableClient(clients).send(
      new PutCommand({ TableName: options.to, Item: record, ConditionExpression: 'attribute_not_exists(recordKey)', ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }),
    );
    return 'copied';
  } catch (error) {
    if (awsErrorName(error) !== 'ConditionalCheckFailedException') throw error;
    // The record that is there comes with the failure (as DynamoDB stores it, not unmarshalled);
    // without it, one read tells.
    const existing = existingOf(error) ?? (await existingRecord(clients, options.to, record.recordKey));
    return existing && sameRecord(record, existing) ? 'already-copied' : 'skipped-newer';
  }
}

/** The version and updatedAt of the item a failed conditional put returned (ReturnValuesOnConditionCheckFailure), if any. */
function existingOf(error: unknown): Pick<OnboardingRecord, 'version' | 'updatedAt'> | undefined {
  const item = (error as { Item?: { version?: { N?: string }; updatedAt?: { S?: string } } }).Item;
  if (!item) return undefined;
  return { version: Number(item.version?.N), updatedAt: item.updatedAt?.S ?? '' };
}

/**
 * Copies every record of the old state table into the new one, for instances of `clients.place`:
 * a Scan of the old table, page by page, and one conditional PutItem per record
 * (`attribute_not_exists(recordKey)`, at most `concurrency` in flight), so a record the new version
 * already wrote is never overwritten and a second run copies nothing. Items that are not records
 * are reported and skipped; a write that fails (after the SDK's retries) is reported and counted,
 * and the copy goes on. The old table is only read.
 *
 * @example
 * const report = await upgradeStateTable(clients, { from: 'cwap-prod-state', to: 'cwap-prod-records', dryRun: false, settings });
 */
export async function upgradeStateTable(clients: Clients, options: StateUpgradeOptions): Promise<StateUpgradeReport> {
  const report: StateUpgradeReport = {
    from: options.from,
    to: options.to,
    place: clients.place,
    dryRun: options.dryRun,
    scanned: 0,
    counts: { copied: 0, 'already-copied': 0, 'skipped-newer': 0, 'skipped-invalid': 0, failed: 0 },
    expiriesAdded: 0,
    problems: [],
  };
  const pages = paginateScan({ client: stateTableClient(clients) }, { TableName: options.from, ConsistentRead: true });
  for await (const page of pages) {
    const items = (page.Items ?? []) as Record<string, unknown>[];
    report.scanned += items.length;
    await mapBounded(items, options.concurrency ?? 8, async (item) => {
      const upgraded = upgradedRecord(item, clients.place, options.settings);
      if ('invalid' in upgraded) {
        report.counts['skipped-invalid'] += 1;
        report.problems.push({ outcome: 'skipped-invalid', item: itemLabel(item), reason: upgraded.invalid });
        return;
      }
      try {
        const outcome = await copyRecord(clients, options, upgraded.record);
        report.counts[outcome] += 1;
        if (outcome === 'copied' && upgraded.expiryAdded) report.expiriesAdded += 1;
      } catch (error) {
        report.counts.failed += 1;
        report.problems.push({ outcome: 'failed', item: upgraded.record.instanceId, reason: describeError(error) });
      }
    });
  }
  report.problems.sort((a, b) => a.item.localeCompare(b.item));
  return report;
}

const outcomeLabels: Record<UpgradeOutcome, [done: string, dryRun: string]> = {
  copied: ['copied', 'would copy'],
  'already-copied': ['already copied', 'already copied'],
  'skipped-newer': ['skipped, newer in the new table', 'would skip, newer in the new table'],
  'skipped-invalid': ['skipped, not a record', 'would skip, not a record'],
  failed: ['failed', 'failed'],
};

function deleteCommand(report: StateUpgradeReport): string {
  return `aws dynamodb delete-table --table-name ${report.from} --region ${report.place.region}`;
}

/** What comes after the counts: run again, or how to delete the old table. */
function nextStep(report: StateUpgradeReport, rerun: string): string {
  if (report.counts.failed) return `${report.counts.failed} record(s) not copied: run "${rerun}" again (it copies only what is missing); the old table is kept.`;
  if (report.dryRun) return `Nothing was written (--dry-run). Run "${rerun}" to copy.`;
  return `Once "cw-autopilot status" and the audit show what you expect, delete the old table: ${deleteCommand(report)}`;
}

/** The upgrade's outcome in one of the output formats. Pure. */
export function renderStateUpgrade(report: StateUpgradeReport, format: ReportFormat, rerun: string): string {
  const label = (outcome: UpgradeOutcome) => outcomeLabels[outcome][report.dryRun ? 1 : 0];
  if (format === 'json') {
    return `${JSON.stringify({ ...report, next: nextStep(report, rerun), deleteOldTable: report.counts.failed || report.dryRun ? undefined : deleteCommand(report) }, null, 2)}\n`;
  }
  const title = `${report.dryRun ? 'Dry run: ' : ''}${report.from} -> ${report.to}, records of account ${report.place.account} in ${report.place.region}`;
  const expiries = `${report.expiriesAdded} gone record(s) without expiresAt ${report.dryRun ? 'would get' : 'got'} one`;
  if (format === 'markdown') {
    return [
      `# ${markdownCell(title)}`,
      '',
      '| outcome | items |',
      '|---|---|',
      `| scanned | ${report.scanned} |`,
      ...upgradeOutcomes.map((outcome) => `| ${label(outcome)} | ${report.counts[outcome]} |`),
      '',
      `${expiries}.`,
      '',
      ...(report.problems.length ? ['| item | outcome | why |', '|---|---|---|', ...report.problems.map((problem) => `| ${markdownCell(problem.item)} | ${problem.outcome} | ${markdownCell(problem.reason)} |`), ''] : []),
      nextStep(report, rerun),
      '',
    ].join('\n');
  }
  const width = Math.max(...upgradeOutcomes.map((outcome) => label(outcome).length), 'scanned'.length);
  return [
    title,
    `  ${'scanned'.padEnd(width)}  ${report.scanned}`,
    ...upgradeOutcomes.map((outcome) => `  ${label(outcome).padEnd(width)}  ${report.counts[outcome]}`),
    `  (${expiries})`,
    ...report.problems.map((problem) => `${problem.outcome}: ${problem.item}: ${problem.reason}`),
    '',
    nextStep(report, rerun),
    '',
  ].join('\n');
}

/** The key attribute of a table, or why it cannot be the table asked for. */
async function keyOf(clients: Clients, table: string): Promise<string | undefined> {
  try {
    const described = await clients.hub(DynamoDBClient).send(new DescribeTableCommand({ TableName: table }));
    return described.Table?.KeySchema?.find((key) => key.KeyType === 'HASH')?.AttributeName;
  } catch (error) {
    if (awsErrorName(error) === 'ResourceNotFoundException') return undefined;
    throw error;
  }
}

/** Stops before anything is read when a table is missing, or is not the kind of table it should be. */
async function checkTables(clients: Clients, from: string, to: string, rerun: string): Promise<void> {
  const { region } = clients.place;
  const [fromKey, toKey] = await Promise.all([keyOf(clients, from), keyOf(clients, to)]);
  if (fromKey === undefined) {
    throw new CliError(`no table ${from} in ${region}: nothing to upgrade (pass --from naming the old state table, or --stage / --region)`, exitCodes.failed);
  }
  if (fromKey !== 'instanceId') {
    throw new CliError(`table ${from} is keyed by ${fromKey}, not instanceId: it is not a state table of the single-account version (pass --from naming the old one)`, exitCodes.failed);
  }
  if (toKey === undefined) {
    throw new CliError(`no table ${to} in ${region}: deploy this version first (npx osls deploy ...), which creates it, then run "${rerun}"`, exitCodes.failed);
  }
  if (toKey !== 'recordKey') {
    throw new CliError(`table ${to} is keyed by ${toKey}, not recordKey: it is not this version's state table (pass --to naming it)`, exitCodes.failed);
  }
}

/**
 * `cw-autopilot upgrade-state`: copies the records of a single-account stack's state table
 * (`cwap-<stage>-state`) into this version's (`cwap-<stage>-records`), as records of the caller's
 * account (or `--account`) and the region. Exit 1 when a record could not be copied.
 */
export async function upgradeState(line: CommandLine<'upgrade-state'>, io: CliIo): Promise<number> {
  const { flags } = line;
  const from = flags.from ?? `cwap-${flags.stage}-state`;
  const to = flags.to ?? `cwap-${flags.stage}-records`;
  if (from === to) throw new UsageError(`--from and --to name the same table (${from}): the upgrade copies from the old table into the new one`);
  const given = singleRegion('upgrade-state', flags.region);
  // Many conditional writes in a burst: adaptive retry slows the run down when DynamoDB throttles.
  const connection = awsConnection({ profile: flags.profile, endpointUrl: flags['endpoint-url'] }, 'adaptive');
  const region = given ?? (await defaultRegion(connection));
  const account = flags.account ?? (await callerAccount(region, connection));
  const clients = cliClientFactory({ account, region }, { connection }).clients();

  const rerun = [
    'cw-autopilot upgrade-state',
    flags.stage === 'dev' ? '' : `--stage ${flags.stage}`,
    `--region ${region}`,
    flags.from ? `--from ${flags.from}` : '',
    flags.to ? `--to ${flags.to}` : '',
    flags.account ? `--account ${flags.account}` : '',
  ].filter(Boolean).join(' ');
  await checkTables(clients, from, to, rerun);

  // Only goneRecordRetentionDays matters here: the expiry of gone records that have none.
  const stack: StackArguments = {
    stage: flags.stage,
    table: undefined,
    agentProfile: undefined,
    namespace: undefined,
    memoryMetric: undefined,
    diskMetric: undefined,
    windowsDiskMetric: undefined,
    optOutTag: undefined,
    optInTag: undefined,
    modifyExistingRoles: true,
    schedulerRoleArn: undefined,
    onboardFunction: undefined,
    settingsFromFlags: false,
    remediate: false,
    dryRun: false,
  };
  const settings = await readStackSettings(stack, region, clients.hub(LambdaClient), 'the retention of gone records without an expiry (goneRecordRetentionDays, default 90)');
  if (settings.warning) io.stderr.write(`${settings.warning}\n`);

  const report = await upgradeStateTable(clients, { from, to, dryRun: flags['dry-run'], settings: settings.forAccount(account) });
  io.stdout.write(renderStateUpgrade(report, flags.output, rerun));
  return report.counts.failed ? exitCodes.failed : exitCodes.ok;
}
