// Every fault a simulated instance can have, in one fleet, through the real handlers: each ends in
// the right state with the right alert or none. No AWS faults here (see faults-everywhere).
import { beforeAll, describe, expect, it } from 'vitest';
import { DescribeIamInstanceProfileAssociationsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { localClientConfig } from '../harness/client-config.js';
import { latestAgentVersion } from '../harness/command-execution.js';
import { agentManagedPolicies } from '../harness/stack.js';
import { FleetSimulator, type InstanceOutcome, type RunReport } from '../simulator/fleet-simulator.js';
import { everyFaultFleet, type InstanceFault } from '../simulator/scenarios.js';
import { useSimulation } from '../simulator/vitest-simulation.js';

const simulation = useSimulation();
let outcomes: InstanceOutcome[];
let report: RunReport;
let simulator: FleetSimulator;

beforeAll(async () => {
  simulator = new FleetSimulator(simulation.environment, simulation.clock);
  simulator.launch(everyFaultFleet(7));
  report = await simulator.run();
  outcomes = await simulator.outcomes();
}, 120_000);

function outcomeOf(name: string): InstanceOutcome {
  const found = outcomes.find((outcome) => outcome.spec.name === name);
  if (!found) throw new Error(`no instance ${name}`);
  return found;
}

const scenarios: [string, InstanceFault, string][] = [
  ['none-linux', 'none', 'a Linux instance with nothing wrong is healthy, with alarms and no alert'],
  ['none-windows', 'none', 'a Windows instance with nothing wrong is healthy after its grace period, with no alert'],
  ['online-late-linux', 'online-late', 'a Linux instance that comes online in SSM late is healthy after SSM retries, with no alert'],
  ['online-late-windows', 'online-late', 'a Windows instance that comes online in SSM late is healthy, with no alert'],
  ['install-fails-linux', 'install-fails', 'a Linux instance whose install fails every time is alerted once: command-failed naming installAgent'],
  ['install-fails-windows', 'install-fails', 'a Windows instance whose install fails every time is alerted once: command-failed naming installAgent'],
  ['install-fails-once-linux', 'install-fails-once', 'an install that fails once is re-sent by the checker and ends healthy, with no alert'],
  ['configure-fails-linux', 'configure-fails', 'a failing configure step is alerted once: command-failed naming configureAgent'],
  ['agent-never-publishes-linux', 'agent-never-publishes', 'an agent that never publishes is alerted once: no-datapoints'],
  ['agent-never-publishes-windows', 'agent-never-publishes', 'a Windows agent that never publishes is alerted once: no-datapoints'],
  ['agent-stops-publishing-linux', 'agent-stops-publishing', 'an agent that stops publishing later: healthy, then its missing-data alarm goes off'],
  ['agent-stops-publishing-windows', 'agent-stops-publishing', 'a Windows agent that stops publishing later: healthy, then its missing-data alarm goes off'],
  ['terminated-mid-onboarding-linux', 'terminated-mid-onboarding', 'an instance terminated mid-onboarding ends gone: no alert, no alarm, no schedule left'],
  ['workload-profile-linux', 'workload-profile', 'an instance with a workload profile keeps it, its role gets the agent policies, and it is healthy'],
  ['older-agent-from-distributor-linux', 'older-agent-from-distributor', 'an instance with an older Distributor-installed agent is reinstalled (not updated in place) and healthy'],
  ['opt-out-linux', 'opt-out', 'an instance with the opt-out tag is skipped: no profile, no command, no alert'],
];

describe('a fleet with one instance per fault ends with every instance in the right state', () => {
  it('the run finishes with nothing pending and no invocation failing', () => {
    expect(report.timedOut).toBe(false);
    expect(report.failedDeliveries).toEqual([]);
  });

  it.each(scenarios)('%s: %s', (name, fault) => {
    const outcome = outcomeOf(name);
    expect(outcome.spec.fault).toBe(fault);
    expect(outcome.problems).toEqual([]);
    expect(outcome.definite).toBe(true);
    expect(outcome.pendingSchedules).toEqual([]);
  });

  // Onboarding stops looking after SSM_MAX_ATTEMPTS and hands over to the checker, so somebody
  // hears about an instance that never reports.
  it('never-online-linux: an instance never online in SSM is alerted once: ssm-offline', () => {
    const outcome = outcomeOf('never-online-linux');
    expect(outcome.alerts.map((alert) => alert.attributes.diagnosis)).toEqual(['ssm-offline']);
    expect(outcome.problems).toEqual([]);
  });

  it('never-online-linux: onboarding stops looking after SSM_MAX_ATTEMPTS and sends no install command', () => {
    const outcome = outcomeOf('never-online-linux');
    expect(outcome.record?.ssmAttempts).toBe(simulation.environment.stack.settings.ssmMaxAttempts);
    expect(outcome.installs).toBe(0);
    expect(outcome.pendingSchedules).toEqual([]);
  });

  it('each alert names the instance and its diagnosis, and tells what to do', () => {
    for (const outcome of outcomes.filter((candidate) => candidate.alerts.length > 0)) {
      const [alert] = outcome.alerts;
      expect(alert?.subject).toContain(outcome.instanceId);
      expect(alert?.subject).toContain(outcome.spec.name);
      expect(alert?.message).toContain(`Diagnosis: ${alert?.attributes.diagnosis}`);
      expect(alert?.message).toContain('Next step:');
    }
    expect(outcomeOf('configure-fails-linux').alerts[0]?.message).toContain('configureAgent');
    expect(outcomeOf('install-fails-linux').alerts[0]?.message).toContain('failed to download installation package');
  });

  it('a failing install is re-sent at most CHECK_MAX_ATTEMPTS - 1 times, each one recorded', () => {
    const outcome = outcomeOf('install-fails-linux');
    const max = simulation.environment.stack.settings.checkMaxAttempts;
    expect(outcome.installs).toBe(max);
    expect(outcome.record?.reinstalls).toBe(max - 1);
    expect(outcomeOf('install-fails-once-linux').installs).toBe(2);
  });

  it('healthy instances get their alarms; gone and skipped ones have none', async () => {
    const cloudwatch = new CloudWatchClient(localClientConfig(simulation.environment.motoUrl));
    const prefix = simulation.environment.stack.settings.alarms.prefix;
    const alarmsOf = async (instanceId: string) =>
      (await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNamePrefix: `${prefix}-${instanceId}-` }))).MetricAlarms?.map((alarm) => alarm.AlarmName) ?? [];
    expect(await alarmsOf(outcomeOf('none-linux').instanceId)).toEqual(
      expect.arrayContaining([expect.stringMatching(/MEMORY_USED-missing$/), expect.stringMatching(/DISK_USED-missing$/)]),
    );
    expect(await alarmsOf(outcomeOf('none-windows').instanceId)).toEqual(expect.arrayContaining([expect.stringMatching(/DISK_FREE-missing$/)]));
    expect(await alarmsOf(outcomeOf('terminated-mid-onboarding-linux').instanceId)).toEqual([]);
    expect(await alarmsOf(outcomeOf('opt-out-linux').instanceId)).toEqual([]);
    cloudwatch.destroy();
  });

  it('the workload keeps its own profile; its role now carries the agent policies', async () => {
    const outcome = outcomeOf('workload-profile-linux');
    expect(outcome.record?.profilePath).toBe('existing-role-policies-added');
    const ec2 = new EC2Client(localClientConfig(simulation.environment.motoUrl));
    const iam = new IAMClient(localClientConfig(simulation.environment.motoUrl));
    const associations = await ec2.send(new DescribeIamInstanceProfileAssociationsCommand({ Filters: [{ Name: 'instance-id', Values: [outcome.instanceId] }] }));
    expect(associations.IamInstanceProfileAssociations?.map((association) => association.IamInstanceProfile?.Arn)).toEqual([
      expect.stringMatching(/instance-profile\/workload-profile-linux-app$/),
    ]);
    const policies = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: 'workload-profile-linux-app' }));
    expect(policies.AttachedPolicies?.map((policy) => policy.PolicyArn)).toEqual(expect.arrayContaining([...agentManagedPolicies]));
    ec2.destroy();
    iam.destroy();
  });

  it('an older Distributor-installed agent is uninstalled and the current one installed, by one command', () => {
    const outcome = outcomeOf('older-agent-from-distributor-linux');
    expect(outcome.installs).toBe(1);
    expect(simulation.environment.proxy.agents.get(outcome.instanceId)).toEqual({ version: latestAgentVersion, installedBy: 'distributor' });
  });

  it('the opted-out instance was not touched: no profile associated, no command', async () => {
    const outcome = outcomeOf('opt-out-linux');
    expect(outcome.installs).toBe(0);
    expect(outcome.record?.reason).toContain('opt-out');
    const ec2 = new EC2Client(localClientConfig(simulation.environment.motoUrl));
    const associations = await ec2.send(new DescribeIamInstanceProfileAssociationsCommand({ Filters: [{ Name: 'instance-id', Values: [outcome.instanceId] }] }));
    expect(associations.IamInstanceProfileAssociations ?? []).toEqual([]);
    ec2.destroy();
  });

  it('every healthy instance got exactly one install command, and its first datapoint is recorded', () => {
    for (const outcome of outcomes.filter((candidate) => candidate.status === 'healthy' && candidate.spec.fault !== 'install-fails-once')) {
      expect(outcome.installs, outcome.label).toBe(1);
      expect(outcome.record?.firstDatapointAt, outcome.label).toBeDefined();
    }
  });
});
