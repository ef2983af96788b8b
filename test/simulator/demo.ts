// The local demo (`npm run demo`): the whole product against moto and a simulated fleet, no AWS
// account. demo/run.ts is its entry point; the code lives here so that the type check covers it.
import { parseArgs } from 'node:util';
import { MotoNotInstalledError } from '../harness/moto-server.js';
import { SimulatedClock } from './clock.js';
import { lambdaContext, startSimulationEnvironment, type SimulationEnvironment } from './environment.js';
import { randomFaults } from './fault-injection.js';
import { FleetSimulator, profileReport } from './fleet-simulator.js';
import { accountTable, alertExcerpt, formatTimelineLine, isUnreachable, outcomeTable } from './report.js';
import type { Place } from '../../shared/aws/place.js';
import { mixedFleet } from './scenarios.js';
import { publishedMessages } from './moto-state.js';

/** The demo's options, from the command line. */
export interface DemoOptions {
  size: number;
  /** Share of instances with a fault (never online, install fails, ...). */
  faulty: number;
  /** Probability that one AWS call of the product gets an injected fault (throttle, 5xx, 503, latency). */
  faultRate: number;
  seed: number;
  /** Print the timeline (default) or only the summary. */
  timeline: boolean;
  /** Keep moto and the proxy running after the run, for the CLI (`status`, `check`, `audit`). */
  serve: boolean;
  /** Accounts the hub covers: the hub's own, then members 111111111111, 222222222222, ... Default 1. */
  accounts: number;
  /** Regions the hub covers, the hub's (us-east-1) first. Default the hub's alone. */
  regions: string[];
  /** How many of the member accounts have no member stack (the hub cannot reach them). Default 0. */
  unreachable: number;
  /** EC2 running events through the onboard queue in batches, as deployed (default), or straight to onboard. */
  delivery: 'queue' | 'direct';
  /** The account's API token buckets on the product's calls (default on). */
  buckets: boolean;
}

const hubRegion = 'us-east-1';
const hubAccount = '123456789012';

/** The accounts of the demo's organization: the hub's, then 111111111111, 222222222222, ... */
export function demoAccounts(count: number): string[] {
  return [hubAccount, ...Array.from({ length: count - 1 }, (_, index) => String(index + 1).repeat(12))];
}

const usage = `Usage: npm run demo -- [options]

  --size N          instances in the fleet (default 12, at most 60)
  --faulty R        share of instances with a fault, 0..1 (default 0.5)
  --fault-rate R    share of the product's AWS calls that get an injected throttle / 5xx / 503 /
                    latency, 0..0.5 (default 0.02)
  --seed N          the same seed gives the same fleet, faults and outcomes (default 42)
  --quiet           no timeline, only the final table and the alerts
  --serve           keep moto running afterwards and print the commands to look at an instance
                    with the CLI (cw-autopilot status / check / audit); Ctrl-C stops it
  --accounts N      accounts the hub covers, 1..9: the hub's own, then member accounts 111111111111,
                    222222222222, ... each with the member stack in every region (default 1)
  --regions a,b     regions covered; the hub's (us-east-1) is always one (default us-east-1)
  --unreachable N   member accounts left without the member stack: the hub cannot assume its role
                    there (default 0)
  --delivery D      queue: running events reach onboard through the onboard queue in batches, as
                    deployed (default); direct: each event invokes onboard on its own
  --buckets B       on: the product's calls draw on the account's API token buckets (EC2, Systems
                    Manager, IAM, Scheduler, CloudWatch), refilled on the simulated clock (default);
                    off: no rate limits
  The fleet is spread over every account and region; a per-account table follows the final one.
  --help`;

/** Reads the demo's options; throws with the usage text on a bad one. */
export function parseDemoArgs(argv: string[]): DemoOptions | 'help' {
  const { values } = parseArgs({
    args: argv.filter((arg) => arg !== '--'),
    options: {
      size: { type: 'string', default: '12' },
      faulty: { type: 'string', default: '0.5' },
      'fault-rate': { type: 'string', default: '0.02' },
      seed: { type: 'string', default: '42' },
      quiet: { type: 'boolean', default: false },
      serve: { type: 'boolean', default: false },
      accounts: { type: 'string', default: '1' },
      regions: { type: 'string', default: hubRegion },
      unreachable: { type: 'string', default: '0' },
      delivery: { type: 'string', default: 'queue' },
      buckets: { type: 'string', default: 'on' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const number = (name: string, text: string, min: number, max: number, integer: boolean): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      throw new Error(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${text}"\n\n${usage}`);
    }
    return value;
  };
  const regions = [...new Set([hubRegion, ...values.regions.split(',').map((region) => region.trim()).filter(Boolean)])];
  const badRegion = regions.find((region) => !/^[a-z]{2}(-[a-z]+)+-\d$/.test(region));
  if (badRegion) throw new Error(`--regions: expected region names separated by commas (us-east-1,eu-west-1), got "${badRegion}"\n\n${usage}`);
  const accounts = number('accounts', values.accounts, 1, 9, true);
  const oneOf = <T extends string>(name: string, text: string, choices: readonly T[]): T => {
    if (!(choices as readonly string[]).includes(text)) throw new Error(`--${name}: expected ${choices.join(' or ')}, got "${text}"\n\n${usage}`);
    return text as T;
  };
  return {
    delivery: oneOf('delivery', values.delivery, ['queue', 'direct'] as const),
    buckets: oneOf('buckets', values.buckets, ['on', 'off'] as const) === 'on',
    accounts,
    regions,
    unreachable: number('unreachable', values.unreachable, 0, accounts - 1, true),
    size: number('size', values.size, 1, 60, true),
    faulty: number('faulty', values.faulty, 0, 1, false),
    faultRate: number('fault-rate', values['fault-rate'], 0, 0.5, false),
    seed: number('seed', values.seed, 0, 2 ** 31, true),
    timeline: !values.quiet,
    serve: values.serve,
  };
}

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/**
 * Keeps the demo's moto and proxy up for the CLI: the proxy answers Lambda Invoke of the stack's
 * check, onboard and offboard functions by running the real handlers in this process (moto cannot
 * run them), so `cw-autopilot check` reaches a function as it would on AWS.
 */
async function serveForCli(environment: SimulationEnvironment, example: string | undefined): Promise<void> {
  const { proxy, stack, handlers } = environment;
  const { settings } = stack;
  const functionName = (arn: string) => arn.slice(arn.lastIndexOf(':') + 1);
  for (const [arn, handler] of [
    [settings.checkFunctionArn, handlers.check],
    [settings.onboardFunctionArn, handlers.onboard],
  ] as const) {
    proxy.lambda.register(arn, (payload) => handler(payload, lambdaContext(functionName(arn))));
  }
  proxy.faults.clear();
  const exports = `export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=${settings.region} AWS_ENDPOINT_URL=${proxy.url}`;
  const instance = example ?? 'i-...';
  out();
  out(`moto and the proxy keep running at ${proxy.url}. In another terminal:`);
  out(`  ${exports}`);
  out(`  npx cw-autopilot status ${instance} --stage demo --table ${settings.stateTable}`);
  out(`  npx cw-autopilot check ${instance} --stage demo --check-function ${functionName(settings.checkFunctionArn)}`);
  out(`  npx cw-autopilot audit --stage demo --settings-from-flags --agent-profile ${settings.agentProfileName}`);
  out('Ctrl-C stops them.');
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
}

/** Runs the demo; resolves with the process exit code. */
export async function runDemo(argv: string[]): Promise<number> {
  let options: DemoOptions | 'help';
  try {
    options = parseDemoArgs(argv);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  if (options === 'help') {
    out(usage);
    return 0;
  }
  const wallStart = performance.now();

  const clock = new SimulatedClock();
  const accounts = demoAccounts(options.accounts);
  const places: Place[] = accounts.flatMap((account) => options.regions.map((region) => ({ account, region })));
  const unreachableAccounts = accounts.slice(accounts.length - options.unreachable);
  // One account in one region is the demo as it always was: no member stacks, no places on the fleet.
  const organization =
    places.length > 1
      ? { accounts, regions: options.regions, withoutMemberStack: places.filter((place) => options.unreachable > 0 && unreachableAccounts.includes(place.account)) }
      : undefined;

  out('cw-agent-autopilot demo: the real onboard / check / offboard handlers against moto, with a simulated fleet.');
  out('Starting moto (python3 -m moto.server) and the fault-injecting proxy...');
  let environment;
  try {
    environment = await startSimulationEnvironment({
      stage: 'demo',
      logLevel: process.env.DEMO_LOG_LEVEL ?? 'SILENT',
      ...(organization ? { organization } : {}),
    });
  } catch (error) {
    if (error instanceof MotoNotInstalledError) {
      // The message says what is missing and how to get it (the harness installs moto itself when
      // python3 is there).
      process.stderr.write(`\n${error.message}\n`);
      return 3;
    }
    throw error;
  }

  const { stack, proxy } = environment;
  const faults = randomFaults({ rate: options.faultRate, seed: options.seed });
  if (options.faultRate > 0) proxy.faults.set(faults.injector);
  clock.install();
  clock.markStart();
  const simulator = new FleetSimulator(environment, clock, {
    onTimeline: options.timeline ? (entry) => out(formatTimelineLine(entry, clock)) : undefined,
    onboardDelivery: options.delivery,
    apiBuckets: options.buckets,
  });
  try {
    const { settings } = stack;
    out(
      `Deployed into moto: state table ${settings.stateTable}, document ${settings.agentDocumentName}, parameters ${settings.configParameter.linux} / ${settings.configParameter.windows}, topic ${stack.alertTopicArn.split(':').pop()}, agent profile ${settings.agentProfileName}.`,
    );
    out(
      `Settings as deployed: first check ${settings.checkDelaySeconds} s after the install (+${settings.windowsGraceSeconds} s on Windows), SSM retried every ${settings.ssmRetryDelaySeconds} s (${settings.ssmMaxAttempts} looks), ${settings.checkMaxAttempts} checks before an alert.`,
    );
    const specs = mixedFleet({ size: options.size, faultRate: options.faulty, seed: options.seed }).map((spec, index) =>
      organization ? { ...spec, place: places[index % places.length] as Place } : spec,
    );
    if (organization) {
      out(
        `Organization: ${accounts.length} accounts x ${options.regions.length} regions (${options.regions.join(', ')}), member stacks deployed through moto's CloudFormation${
          options.unreachable > 0 ? `, none in ${unreachableAccounts.join(', ')} (unreachable)` : ''
        }; the fleet is spread over the ${places.length} places.`,
      );
    }
    out(
      `Fleet (seed ${options.seed}): ${specs.length} instances, ${specs.filter((spec) => spec.os === 'windows').length} Windows; faults: ${
        specs.filter((spec) => spec.fault !== 'none').map((spec) => `${spec.name} ${spec.fault}`).join(', ') || 'none'
      }.`,
    );
    out(`Injected AWS faults: ${options.faultRate > 0 ? `${Math.round(options.faultRate * 100)}% of the product's calls (throttling, 500, 503, latency)` : 'none'}.`);
    const queue = stack.onboardQueue;
    out(
      options.delivery === 'queue'
        ? `Running events: through ${queue.queueName} (batches of up to ${queue.batchSize}, ${queue.batchWindowSeconds} s window, visibility timeout ${queue.visibilityTimeoutSeconds} s, dead-letter queue after ${queue.maxReceiveCount} receives).`
        : 'Running events: straight to the onboard function, one invocation each (--delivery direct).',
    );
    out(`API rate limits: ${options.buckets ? "the account's token buckets (test/simulator/README.md, section N), on the simulated clock" : 'none (--buckets off)'}.`);
    out();
    if (options.timeline) {
      out('Timeline (simulated time; "~" the simulated world, ">" a batch of the onboard queue, "!" a failed invocation Lambda retries, "*" alerts and alarms):');
    }
    simulator.launch(specs);
    const report = await simulator.run();
    const outcomes = await simulator.outcomes();

    out();
    out('Final state (read back from the state table and the SNS topic in moto):');
    out(outcomeTable(outcomes));
    out();
    if (organization) {
      out('Per account:');
      out(accountTable(outcomes, hubAccount));
      out();
    }

    const alerts = outcomes.flatMap((outcome) => outcome.alerts);
    const alarms = outcomes.flatMap((outcome) => outcome.alarmNotifications.filter((message) => message.subject.startsWith('ALARM')));
    const byDiagnosis = new Map<string, (typeof alerts)[number]>();
    for (const alert of alerts) if (!byDiagnosis.has(alert.attributes.diagnosis ?? '')) byDiagnosis.set(alert.attributes.diagnosis ?? '', alert);
    if (byDiagnosis.size > 0) {
      out(`Alerts on ${stack.alertTopicArn.split(':').pop()} (${alerts.length} in all; one of each diagnosis shown, as read back from moto):`);
      for (const alert of byDiagnosis.values()) {
        out(alertExcerpt(alert, clock, 22));
        out();
      }
    }
    if (alarms.length > 0) {
      out(`Alarm notifications (the product's missing-data alarms, evaluated by the simulator): ${alarms.map((alarm) => alarm.subject).join('; ')}`);
      out();
    }

    const counts = new Map<string, number>();
    for (const outcome of outcomes) counts.set(outcome.status, (counts.get(outcome.status) ?? 0) + 1);
    // An unreachable member's instances end in error by design: the place's alert tells a person.
    const wrong = outcomes.filter((outcome) => outcome.problems.length > 0 && !isUnreachable(outcome));
    const unreachableCount = outcomes.filter(isUnreachable).length;
    if (unreachableCount > 0) {
      const placeAlerts = (await publishedMessages(environment.motoUrl)).filter((message) => message.attributes.event === 'member-unreachable');
      out(
        `${unreachableCount} instance(s) of unreachable accounts recorded in error; ${placeAlerts.length} member-unreachable alert(s), one per account and region: ${placeAlerts
          .map((message) => message.subject)
          .join('; ')}`,
      );
    }
    out(
      `Simulated ${Math.round(report.simulatedMs / 60_000)} minutes in ${((performance.now() - wallStart) / 1000).toFixed(1)} s: ${[...counts]
        .map(([status, count]) => `${count} ${status}`)
        .join(', ')}; ${report.invocations.onboard} onboard, ${report.invocations.check} check, ${report.invocations.offboard} offboard invocations; ${
        faults.injected().length
      } injected faults; ${report.failedDeliveries.length} failed invocations retried by Lambda${
        report.failedDeliveries.some((failure) => failure.dropped) ? `, ${report.failedDeliveries.filter((failure) => failure.dropped).length} given up` : ''
      }.`,
    );
    if (options.delivery === 'queue') {
      const { deadLettered } = report.queue;
      out(
        `Onboard queue: ${report.queue.batches} batch(es) delivered, ${report.queue.messages} message(s), ${report.queue.redelivered} delivered again; ${
          deadLettered.length === 0
            ? 'no message dead-lettered.'
            : `${deadLettered.length} dead-lettered (${deadLettered.map((dead) => `${dead.instanceId ?? dead.messageId} after ${dead.receiveCount} receives`).join(', ')}).`
        }`,
      );
    }
    if (simulator.buckets) {
      const throttled = simulator.buckets.stats().filter((bucket) => bucket.throttles > 0);
      out(
        `API buckets: ${throttled.length === 0 ? 'no call throttled' : `throttled attempts (retried by the SDK): ${throttled.map((bucket) => `${bucket.bucket} ${bucket.throttles} of ${bucket.calls}`).join(', ')}`}.`,
      );
    }
    if (process.env.SIMULATOR_PROFILE) out(`Wall time: ${profileReport()}`);
    if (report.timedOut) out('The run stopped at its time limit with work still pending.');
    if (wrong.length > 0) {
      out(`${wrong.length} instance(s) did not end as they should (rows marked NO): these are product findings, not demo errors.`);
    }
    out('Same seed, same fleet and faults: npm run demo -- --seed ' + options.seed + '. Other options: npm run demo -- --help');
    if (options.serve) await serveForCli(environment, outcomes[0]?.instanceId);
    return 0;
  } finally {
    clock.uninstall();
    simulator.destroy();
    await environment.stop();
  }
}
