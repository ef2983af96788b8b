import type { OsFamily } from '../../shared/agent-config.js';
import type { AgentOnInstance, CommandOutcome } from '../harness/aws-proxy.js';
import type { Place } from '../../shared/aws/place.js';
import { SeededRandom } from './random.js';

/** What can be wrong with one simulated instance (`none`: nothing). */
export type InstanceFault =
  | 'none'
  | 'never-online' // SSM never sees it
  | 'online-late' // SSM sees it after onboarding's first look (10-14 minutes)
  | 'install-fails' // the installAgent step fails on every command
  | 'install-fails-once' // the first install fails, a re-sent one succeeds
  | 'configure-fails' // the configureAgent step fails on every command
  | 'agent-never-publishes' // the command succeeds, no datapoint ever arrives
  | 'agent-stops-publishing' // publishes for a few minutes, then stops for good
  | 'terminated-mid-onboarding' // terminated a minute after its install command
  | 'workload-profile' // launched with a workload's own instance profile (role without the agent policies)
  | 'older-agent-from-distributor' // came with an older agent that Distributor installed months ago (Quick Setup, an association)
  | 'opt-out'; // carries the opt-out tag

export const instanceFaults: readonly InstanceFault[] = [
  'none',
  'never-online',
  'online-late',
  'install-fails',
  'install-fails-once',
  'configure-fails',
  'agent-never-publishes',
  'agent-stops-publishing',
  'terminated-mid-onboarding',
  'workload-profile',
  'older-agent-from-distributor',
  'opt-out',
];

/** One instance of a scenario: what it is and how it behaves, with every delay decided up front. */
export interface InstanceSpec {
  name: string;
  /** The account and region it is launched in. Default the hub's. */
  place?: Place;
  os: OsFamily;
  fault: InstanceFault;
  /** Simulated ms after the run's start when it is launched. */
  launchAfterMs: number;
  /** Simulated ms after its launch when EventBridge delivers the `running` event. */
  eventDelayMs: number;
  /** Simulated ms after its launch when SSM sees it Online; undefined: never. */
  onlineAfterMs: number | undefined;
  /** How each install command sent to it ends (the last one repeats). */
  commandOutcomes: CommandOutcome[];
  /** Simulated ms after a successful install command when the agent's first datapoint is sent. */
  agentStartMs: number | undefined;
  /** Simulated ms after its first datapoint when the agent stops publishing; undefined: never. */
  agentStopsAfterMs: number | undefined;
  /** Simulated ms after its (first) install command when it is terminated; undefined: never. */
  terminateAfterCommandMs: number | undefined;
  tags: Record<string, string>;
  /** The agent already on the instance at launch; undefined: none. */
  agentAtLaunch?: AgentOnInstance;
  /**
   * Launched with a workload's own instance profile whose role carries these policies (ARNs), for
   * any fault: with the agent's two policies it is a compliant profile the product must keep as it
   * is. The `workload-profile` fault launches with one whose role has S3 read access only (unless
   * this says otherwise).
   */
  workloadProfilePolicies?: string[];
}

/** What the product should end with for an instance. */
export interface ExpectedOutcome {
  status: 'healthy' | 'alerted' | 'skipped' | 'gone';
  /** The diagnosis the alert names, `missing-data-alarm` for the product's alarm firing, or none. */
  alert: 'ssm-offline' | 'command-failed' | 'no-datapoints' | 'missing-data-alarm' | undefined;
  /** A word the alert must contain (the failing step). */
  alertMentions?: string;
}

/** The right end state for each fault. */
export function expectedOutcome(fault: InstanceFault): ExpectedOutcome {
  switch (fault) {
    case 'none':
    case 'online-late':
    case 'install-fails-once':
    case 'workload-profile':
    case 'older-agent-from-distributor':
      return { status: 'healthy', alert: undefined };
    case 'never-online':
      // Somebody must hear about an instance that never reports: the product's promise (README, first lines).
      return { status: 'alerted', alert: 'ssm-offline' };
    case 'install-fails':
      return { status: 'alerted', alert: 'command-failed', alertMentions: 'installAgent' };
    case 'configure-fails':
      return { status: 'alerted', alert: 'command-failed', alertMentions: 'configureAgent' };
    case 'agent-never-publishes':
      return { status: 'alerted', alert: 'no-datapoints' };
    case 'agent-stops-publishing':
      return { status: 'healthy', alert: 'missing-data-alarm' };
    case 'terminated-mid-onboarding':
      return { status: 'gone', alert: undefined };
    case 'opt-out':
      return { status: 'skipped', alert: undefined };
  }
}

const installFailure: CommandOutcome = {
  status: 'Failed',
  step: 'installAgent',
  output: 'Failed to install package; install status Failed',
  errorOutput: 'failed to download installation package reliably\ndial tcp 52.216.0.1:443: i/o timeout',
  responseCode: 1,
};
// The agent's config downloader failing to read the parameter (amazon-cloudwatch-agent
// tool/downloader/downloader.go); the control script stops there (set -e), before validation.
const configureFailure: CommandOutcome = {
  status: 'Failed',
  step: 'configureAgent',
  output: '****** processing amazon-cloudwatch-agent ******',
  errorOutput:
    'fail to fetch/remove json config: error in retrieving parameter store content: AccessDeniedException: User is not authorized to perform: ssm:GetParameter',
  responseCode: 1,
};
const success: CommandOutcome = { status: 'Success', output: 'Successfully installed AmazonCloudWatchAgent\nSuccessfully configured and started the agent' };

const minute = 60_000;

/**
 * One instance's behaviour for a fault, with delays drawn from `random` (realistic ranges: a fresh
 * instance registers with SSM in 30-180 s; Linux agents publish about a minute after the command,
 * Windows ones two to four).
 */
export function planInstance(input: { name: string; os: OsFamily; fault: InstanceFault; launchAfterMs?: number }, random: SeededRandom): InstanceSpec {
  const { name, os, fault } = input;
  const windows = os === 'windows';
  const spec: InstanceSpec = {
    name,
    os,
    fault,
    launchAfterMs: input.launchAfterMs ?? 0,
    eventDelayMs: random.int(2, 15) * 1000,
    // A fresh instance registers "in 30 s to several minutes" (reports of up to ~6 minutes):
    // 30 s to 3 minutes here (assumed distribution; see the register, C3).
    onlineAfterMs: random.int(30, 180) * 1000,
    commandOutcomes: [success],
    agentStartMs: (windows ? random.int(120, 240) : random.int(50, 90)) * 1000,
    agentStopsAfterMs: undefined,
    terminateAfterCommandMs: undefined,
    tags: { Name: name, team: random.pick(['web', 'data', 'batch']) },
  };
  switch (fault) {
    case 'never-online':
      spec.onlineAfterMs = undefined;
      break;
    case 'online-late':
      spec.onlineAfterMs = random.int(7, 12) * minute;
      break;
    case 'install-fails':
      spec.commandOutcomes = [installFailure];
      break;
    case 'install-fails-once':
      spec.commandOutcomes = [installFailure, success];
      break;
    case 'configure-fails':
      spec.commandOutcomes = [configureFailure];
      break;
    case 'agent-never-publishes':
      spec.agentStartMs = undefined;
      break;
    case 'agent-stops-publishing':
      spec.agentStopsAfterMs = random.int(2, 4) * minute;
      break;
    case 'terminated-mid-onboarding':
      spec.terminateAfterCommandMs = random.int(45, 90) * 1000;
      break;
    case 'opt-out':
      spec.tags['cw-autopilot:skip'] = 'true';
      break;
    case 'older-agent-from-distributor':
      // A version from long before the one Distributor serves now (the version number is made up).
      spec.agentAtLaunch = { version: '1.247350.0', installedBy: 'distributor' };
      break;
    case 'workload-profile':
    case 'none':
      break;
  }
  return spec;
}

/** Options of {@link mixedFleet}; every one has a default. */
export interface MixedFleetOptions {
  /** Instances in the fleet. Default 12. */
  size?: number;
  /** Share of instances with a fault, 0..1. Default 0.5. */
  faultRate?: number;
  seed?: number;
  /** Share of Windows instances. Default 1/3. */
  windowsShare?: number;
  /** Faults to draw from. Default every fault but `none`. */
  faults?: readonly InstanceFault[];
  /**
   * Launches are spread over this many simulated ms. Default 0: all at the start, because moto
   * dates a launch with its own (real) clock, which the simulated clock leaves behind as it advances.
   */
  launchSpreadMs?: number;
}

/**
 * A mixed fleet: `size` instances, about `faultRate` of them with a fault. The faulty ones cycle
 * through the fault list in a seeded order, so a dozen instances show most faults once.
 *
 * @example
 * mixedFleet({ size: 12, faultRate: 0.5, seed: 42 });
 */
export function mixedFleet(options: MixedFleetOptions = {}): InstanceSpec[] {
  const size = options.size ?? 12;
  const faultRate = options.faultRate ?? 0.5;
  const random = new SeededRandom(options.seed ?? 42);
  const windowsShare = options.windowsShare ?? 1 / 3;
  const pool = [...(options.faults ?? instanceFaults.filter((fault) => fault !== 'none'))];
  // A seeded shuffle, then the faults are dealt in that order.
  for (let i = pool.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [pool[i], pool[j]] = [pool[j] as InstanceFault, pool[i] as InstanceFault];
  }
  const faulty = Math.round(size * faultRate);
  const faultyIndexes = new Set<number>();
  while (faultyIndexes.size < Math.min(faulty, size)) faultyIndexes.add(random.int(0, size - 1));
  const specs: InstanceSpec[] = [];
  let dealt = 0;
  const spread = options.launchSpreadMs ?? 0;
  for (let i = 0; i < size; i++) {
    const os: OsFamily = random.chance(windowsShare) ? 'windows' : 'linux';
    const fault: InstanceFault = faultyIndexes.has(i) && pool.length > 0 ? (pool[dealt++ % pool.length] as InstanceFault) : 'none';
    const role = os === 'windows' ? 'win' : random.pick(['web', 'api', 'db', 'batch']);
    specs.push(planInstance({ name: `${role}-${i + 1}`, os, fault, launchAfterMs: Math.round((spread * i) / Math.max(1, size)) }, random));
  }
  return specs;
}

/** One instance per fault (Linux, plus Windows for the faults whose timing differs), for the e2e suite. */
export function everyFaultFleet(seed = 1): InstanceSpec[] {
  const random = new SeededRandom(seed);
  const specs: InstanceSpec[] = [];
  for (const fault of instanceFaults) {
    specs.push(planInstance({ name: `${fault}-linux`, os: 'linux', fault, launchAfterMs: 0 }, random));
  }
  for (const fault of ['none', 'online-late', 'install-fails', 'agent-never-publishes', 'agent-stops-publishing'] as const) {
    specs.push(planInstance({ name: `${fault}-windows`, os: 'windows', fault, launchAfterMs: 0 }, random));
  }
  return specs;
}
