// `npm run bench`: audits simulated fleets of 1,000 and 10,000 instances and prints, for each, the
// AWS calls made per API, the fewest the APIs' page sizes allow, and the wall time; then the audit
// of an organization (20 accounts x 3 regions x 500 instances, through the member roles) with its
// calls per API and AssumeRole calls; then launch bursts of 100, 1,000 and 5,000 instances through
// the real onboard and check handlers on a simulated clock (scripts/burst-bench.ts), with issue
// #10's targets checked at 1,000 (and, with BENCH_BURST_VARIANTS=1, that burst again under two other
// assumptions of the model).
// The last line is one JSON object with those figures.
//
// Backend: an in-process fake at the SDK level (scripts/simulated-fleet.ts, aws-sdk-client-mock),
// not moto: moto needs minutes to launch and describe thousands of instances, and does not
// implement DescribeInstanceInformation at all. The fake enforces the page sizes AWS does, so the
// call counts are the ones a real account would see; the wall time excludes network latency.
import { ClientFactory } from '../shared/aws/client-factory.js';
import { performance } from 'node:perf_hooks';
import { runAudit } from '../shared/audit/audit-run.js';
import { runOrganizationAudit } from '../shared/audit/organization-audit.js';
import { clientFactoryOf } from '../shared/aws/product-clients.js';
import { parseSettings } from '../shared/config/settings.js';
import { stackEnvironment } from '../test/harness/stack.js';
import { generateFleet, installFakeAws, installOrganizationFakeAws, minimumCalls, type SimulatedFleet } from './simulated-fleet.js';
import type { BurstOptions, BurstResult } from './burst-bench.js';

// Each fake call waits this long, like a round trip to AWS (BENCH_LATENCY_MS, default 50).
const latencyMs = Number(process.env.BENCH_LATENCY_MS ?? 50);
// The SDK's "Node 20 support ends in 2027" notice would land among the figures.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (!warning.message.startsWith('NodeVersionSupportWarning')) console.error(`${warning.name}: ${warning.message}`);
});
process.env.AWS_REGION ??= 'us-east-1';
// Never reach a real endpoint, even if the fake missed a call.
process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:9';
process.env.AWS_ACCESS_KEY_ID ??= 'bench';
process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';

const settings = parseSettings(stackEnvironment('bench'));

interface BenchResult {
  instances: number;
  calls: Record<string, number>;
  minimum: Record<string, number>;
  totalCalls: number;
  minimumCalls: number;
  overMinimumPercent: number;
  wallMs: number;
  latencyMsPerCall: number;
  coverage: number;
}

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((total, n) => total + n, 0);

async function bench(size: number): Promise<BenchResult> {
  const now = new Date();
  const fleet = generateFleet(size, { now });
  const aws = installFakeAws(fleet, now, latencyMs);
  try {
    const started = performance.now();
    const clients = new ClientFactory({ hubPlace: { account: '123456789012', region: 'us-east-1' }, roleFor: () => undefined }).clients();
    const report = await runAudit(clients, {
      region: 'us-east-1',
      scope: { tags: [], instanceIds: [] },
      settings,
      remediation: { mode: 'off' },
      auditCommand: 'npx cw-autopilot audit --stage bench --region us-east-1',
      concurrency: 4,
      now,
    });
    const wallMs = Math.round(performance.now() - started);
    if (report.summary.running !== size) throw new Error(`audited ${report.summary.running} of ${size} instances`);
    const minimum = minimumCalls(fleet);
    const totalCalls = sum(aws.calls);
    const least = sum(minimum);
    return {
      instances: size,
      calls: { ...aws.calls },
      minimum,
      totalCalls,
      minimumCalls: least,
      overMinimumPercent: Math.round(((totalCalls - least) / least) * 1000) / 10,
      wallMs,
      latencyMsPerCall: latencyMs,
      coverage: report.summary.coverage,
    };
  } finally {
    aws.restore();
  }
}

interface OrganizationBenchResult {
  accounts: number;
  regions: number;
  instances: number;
  calls: Record<string, number>;
  /** The fewest calls the page sizes allow, summed over the places (AssumeRole: one per place not the hub's). */
  minimum: Record<string, number>;
  totalCalls: number;
  assumeRoleCalls: number;
  wallMs: number;
  coverage: number;
}

/** The hub (moto's default account in the tests) and 19 member accounts, in 3 regions each. */
async function benchOrganization(accountCount: number, regions: string[], perPlace: number): Promise<OrganizationBenchResult> {
  const now = new Date();
  const hub = '123456789012';
  const accounts = [hub, ...Array.from({ length: accountCount - 1 }, (_, index) => String(100_000_000_001 + index))];
  const fleets: SimulatedFleet[] = accounts.flatMap((accountId) => regions.map((region) => generateFleet(perPlace, { now, accountId, region })));
  const aws = installOrganizationFakeAws(fleets, { hubAccount: hub, now, latencyMs });
  try {
    const orgSettings = parseSettings({ ...stackEnvironment('bench'), ACCOUNTS: accounts.join(','), REGIONS: regions.join(','), MEMBER_ROLE_NAME: 'cwap-bench-member-audit' });
    const factory = clientFactoryOf(orgSettings);
    const started = performance.now();
    const report = await runOrganizationAudit(factory, {
      accounts: orgSettings.accounts,
      regions: orgSettings.regions,
      placeConcurrency: orgSettings.auditPlaceConcurrency,
      scope: { tags: [], instanceIds: [] },
      settings: orgSettings,
      remediation: { mode: 'off' },
      auditCommand: (place) => `npx cw-autopilot audit --stage bench --region ${place.region} --accounts ${place.account}`,
      concurrency: 4,
      now,
    });
    const wallMs = Math.round(performance.now() - started);
    const expected = fleets.reduce((total, fleet) => total + fleet.instances.length, 0);
    if (report.summary.running !== expected || report.organization.unreadable.length) {
      throw new Error(`audited ${report.summary.running} of ${expected} instances, ${report.organization.unreadable.length} places not read`);
    }
    const minimum: Record<string, number> = { AssumeRole: accounts.length * regions.length - 1 };
    for (const fleet of fleets) for (const [api, n] of Object.entries(minimumCalls(fleet))) minimum[api] = (minimum[api] ?? 0) + n;
    return {
      accounts: accounts.length,
      regions: regions.length,
      instances: expected,
      calls: { ...aws.calls },
      minimum,
      totalCalls: sum(aws.calls),
      assumeRoleCalls: factory.assumeRoleCalls,
      wallMs,
      coverage: report.summary.coverage,
    };
  } finally {
    aws.restore();
  }
}

const results: BenchResult[] = [];
for (const size of [1_000, 10_000]) {
  const result = await bench(size);
  results.push(result);
  console.log(`\n${size.toLocaleString('en-US')} instances: ${result.wallMs} ms (${latencyMs} ms per simulated call), ${result.totalCalls} calls (minimum ${result.minimumCalls}, +${result.overMinimumPercent}%), coverage ${(result.coverage * 100).toFixed(2)}%`);
  console.log(`  ${'API'.padEnd(40)} ${'calls'.padStart(6)} ${'minimum'.padStart(8)}`);
  for (const api of Object.keys(result.minimum)) {
    console.log(`  ${api.padEnd(40)} ${String(result.calls[api] ?? 0).padStart(6)} ${String(result.minimum[api]).padStart(8)}`);
  }
}
const organization = await benchOrganization(20, ['us-east-1', 'eu-west-1', 'ap-southeast-2'], 500);
console.log(
  `\norganization: ${organization.accounts} accounts x ${organization.regions} regions, ${organization.instances.toLocaleString('en-US')} instances: ${organization.wallMs} ms (${latencyMs} ms per simulated call), ${organization.totalCalls} calls, ${organization.assumeRoleCalls} AssumeRole, coverage ${(organization.coverage * 100).toFixed(2)}%`,
);
console.log(`  ${'API'.padEnd(40)} ${'calls'.padStart(6)} ${'minimum'.padStart(8)}`);
for (const api of Object.keys(organization.minimum)) {
  console.log(`  ${api.padEnd(40)} ${String(organization.calls[api] ?? 0).padStart(6)} ${String(organization.minimum[api]).padStart(8)}`);
}
// The burst section (scripts/burst-bench.ts): the handlers read their settings from the
// environment when imported, so it is set here, after the audit sections.
Object.assign(process.env, stackEnvironment('bench'), { POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true' });
const { runBurst } = await import('./burst-bench.js');
// The product's logger was made when the audit sections imported it: the handlers' lines would bury the figures.
(await import('../shared/observability/logger.js')).logger.setLogLevel('SILENT');
const bursts: BurstResult[] = [];
/** Prints one burst's figures: a few summary lines, then calls per instance and peak bucket shares. */
function printBurst(burst: BurstResult, title: string): void {
  const invocations = burst.lambdaInvocations;
  const { pollers, registration } = burst.simulation;
  console.log(`\n${title}: ${burst.wallMs} ms wall, ${burst.simulatedMinutes} simulated minutes (${pollers} pollers, SSM registration ${registration}, ${latencyMs} ms per call)`);
  console.log(
    `  invocations: ${invocations.onboardBatches} onboard batches, ${invocations.onboardScheduled} scheduled onboards, ${invocations.checks} checks; ${invocations.failed} failed, ${invocations.asyncRetries} async retries, ${invocations.asyncDropped} dropped after them, ${invocations.timedOut} timed out; peak concurrency onboard ${invocations.peakConcurrency.onboard}, check ${invocations.peakConcurrency.check}`,
  );
  console.log(
    `  queue: ${burst.queue.receives} receives (${burst.queue.redeliveries} redeliveries, at most ${burst.queue.maxReceiveCount} of one message), ${burst.queue.returned} returned (${burst.pacingDeferrals} pacing deferrals, ${burst.failuresReturned} failures), ${burst.deadLettered} dead-lettered, ${burst.queue.stillQueued} still queued at the end, ${burst.queue.visibilityChanges} visibility changes`,
  );
  console.log(
    `  throttles: ${burst.throttlesSeen} seen (${Object.entries(burst.throttlesSeenByApi).map(([api, n]) => `${api} ${n}`).join(', ') || 'none'}), ${burst.throttlesSurfaced} surfaced past the SDK's retries (${burst.throttlesSurfacedFate.recorded} recorded in a state record, ${burst.throttlesSurfacedFate.failedInvocation} failed an invocation)`,
  );
  console.log(
    `  verified: ${burst.verified.healthy} healthy, ${burst.verified.alerted} alerted, ${burst.unverified} not verified, ${burst.verified.within15Minutes} within 15 minutes of SSM registration; launch to verified p50 ${burst.launchToVerifiedSeconds.p50} s, max ${burst.launchToVerifiedSeconds.max} s; registration to verified p50 ${burst.registrationToVerifiedSeconds.p50} s, max ${burst.registrationToVerifiedSeconds.max} s; first datapoint to healthy p50 ${burst.firstDatapointToHealthySeconds.p50} s, max ${burst.firstDatapointToHealthySeconds.max} s`,
  );
  console.log(
    `  GetMetricData per instance per check round: ${burst.getMetricDataPerInstancePerCheckRound.overall} (first round ${burst.getMetricDataPerInstancePerCheckRound.firstRound}); ${burst.associations.associatedOnce} of ${burst.associations.withoutProfile} instances without a profile associated exactly once (${burst.associations.otherwise} otherwise); ${burst.reinstalled} reinstalled, ${burst.alertsPublished} alerts; schedules ${burst.schedules.created} created, ${burst.schedules.fired} fired, ${burst.schedules.pending} pending at the end`,
  );
  const { unmockedCalls, realWaits, abandonedInvocations } = burst.simulation;
  if (Object.keys(unmockedCalls).length || realWaits || abandonedInvocations) {
    console.log(`  SIMULATION GAP: calls no fake answers ${JSON.stringify(unmockedCalls)}, real timers started in invocations ${realWaits}, invocations left unfinished ${abandonedInvocations}`);
  }
  const { onboard, check } = burst.callsPerInstanceByFunction;
  console.log(`  ${'API'.padEnd(40)} ${'per instance'.padStart(12)} ${'onboard'.padStart(8)} ${'check'.padStart(8)}`);
  for (const [api, n] of Object.entries(burst.callsPerInstance)) console.log(`  ${api.padEnd(40)} ${String(n).padStart(12)} ${String(onboard[api] ?? 0).padStart(8)} ${String(check[api] ?? 0).padStart(8)}`);
  console.log(`  ${'bucket'.padEnd(40)} ${'share used'.padStart(12)} ${'10 s rate'.padStart(10)}`);
  for (const [bucket, share] of Object.entries(burst.peakBucketShare)) console.log(`  ${bucket.padEnd(40)} ${String(share).padStart(12)} ${String(burst.peakRateShare10s[bucket] ?? '').padStart(10)}`);
}
// BENCH_BURST_SIZES (default 100,1000,5000): the burst sizes to run.
const burstSizes = (process.env.BENCH_BURST_SIZES ?? '100,1000,5000').split(',').map(Number).filter((size) => size > 0);
for (const size of burstSizes) {
  const burst = await runBurst(size, latencyMs);
  bursts.push(burst);
  printBurst(burst, `burst: ${size.toLocaleString('en-US')} launches within 60 s`);
}
// The same 1,000 launches with another assumption of the model each: how much the figures rest on it.
const variants: { variant: string; options: BurstOptions }[] = [
  { variant: 'one poller (the event source mapping builds one batch at a time)', options: { pollers: 1 } },
  { variant: 'SSM registration 30-180 s after launch (register C3)', options: { registration: 'after-boot' } },
];
const burstVariants: (BurstResult & { variant: string })[] = [];
// BENCH_BURST_VARIANTS=1 runs them (a minute more): the default run must stay within a few minutes.
if (burstSizes.includes(1_000) && process.env.BENCH_BURST_VARIANTS === '1') {
  for (const { variant, options } of variants) {
    const burst = await runBurst(1_000, latencyMs, options);
    burstVariants.push({ variant, ...burst });
    printBurst(burst, `burst variant: 1,000 launches, ${variant}`);
  }
}
// Issue #10's targets, at 1,000 launches (`issues show 10`, "Targets").
const thousand = bursts.find((burst) => burst.instances === 1_000);
if (thousand) {
  const per = thousand.callsPerInstance;
  const pacingShare = Number(process.env.PACING_SHARE ?? 0.5);
  const ec2Shares = Object.entries(thousand.peakBucketShare).filter(([bucket]) => bucket.startsWith('ec2:'));
  const targets: [string, boolean][] = [
    ['DescribeInstances + DescribeInstanceInformation <= 0.05 per instance', (per.DescribeInstances ?? 0) + (per.DescribeInstanceInformation ?? 0) <= 0.05],
    ['SendCommand <= 0.03 per instance', (per.SendCommand ?? 0) <= 0.03],
    ['GetMetricData <= 0.02 per instance per check round', thousand.getMetricDataPerInstancePerCheckRound.overall <= 0.02],
    ['AssociateIamInstanceProfile exactly once per instance that had no profile', thousand.associations.associatedOnce === thousand.associations.withoutProfile && thousand.associations.otherwise === 0],
    ['0 throttling errors surfacing past the SDK\'s retries', thousand.throttlesSurfaced === 0],
    [`peak share of every EC2 bucket within the setting (${pacingShare})`, ec2Shares.every(([, share]) => share <= pacingShare)],
    ['no message dead-lettered', thousand.deadLettered === 0],
    ['every instance verified within 15 simulated minutes of its SSM registration', thousand.unverified === 0 && thousand.verified.within15Minutes === thousand.instances],
    ['median healthy instance verified within 90 s of its first datapoint', thousand.firstDatapointToHealthySeconds.p50 <= 90],
    ['slowest healthy instance verified within 5 minutes of its first datapoint', thousand.firstDatapointToHealthySeconds.max <= 300],
  ];
  console.log('\nburst targets (1,000 launches):');
  for (const [target, met] of targets) console.log(`  ${met ? 'met    ' : 'NOT met'} ${target}`);
  const overShare = Object.entries(thousand.peakBucketShare).filter(([bucket, share]) => !bucket.startsWith('ec2:') && share > pacingShare);
  if (overShare.length) console.log(`  (not a target) other buckets above ${pacingShare}: ${overShare.map(([bucket, share]) => `${bucket} ${share}`).join(', ')}`);
}
const withinTargets = results.every((result) => result.overMinimumPercent <= 10) && (results.find((result) => result.instances === 10_000)?.wallMs ?? Infinity) < 60_000;
console.log(`\nbackend: in-process SDK fake (aws-sdk-client-mock, page sizes enforced, ${latencyMs} ms per call); moto is too slow at this scale and lacks DescribeInstanceInformation`);
const { minimum: _minimum, coverage: _coverage, ...organizationFigures } = organization;
/** A burst's figures for the JSON line. */
const burstFigures = (figures: BurstResult) => ({
  instances: figures.instances,
  callsPerInstance: figures.callsPerInstance,
  throttlesSurfaced: figures.throttlesSurfaced,
  peakBucketShare: figures.peakBucketShare,
  launchToVerifiedSeconds: figures.launchToVerifiedSeconds,
  throttlesSeen: figures.throttlesSeen,
  pacingDeferrals: figures.pacingDeferrals,
  failuresReturned: figures.failuresReturned,
  deadLettered: figures.deadLettered,
  firstDatapointToHealthySeconds: figures.firstDatapointToHealthySeconds,
  registrationToVerifiedSeconds: figures.registrationToVerifiedSeconds,
  getMetricDataPerInstancePerCheckRound: figures.getMetricDataPerInstancePerCheckRound,
  lambdaInvocations: figures.lambdaInvocations,
  verified: figures.verified,
  unverified: figures.unverified,
  pollers: figures.simulation.pollers,
  ssmRegistration: figures.simulation.registration,
  wallMs: figures.wallMs,
});
const burst = bursts.map(burstFigures);
const burstVariantFigures = burstVariants.map((figures) => ({ variant: figures.variant, ...burstFigures(figures) }));
console.log(JSON.stringify({ backend: 'sdk-fake', withinTargets, results, organization: organizationFigures, burst, burstVariants: burstVariantFigures }));
