// The simulated SSM agent runs the product's real install document by the agent's own rules
// (amazon-ssm-agent runpluginutil.go, configurepackage): these scenarios are what a real instance
// would do with it, so a document change that breaks on real instances breaks here first.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { documentStepsOf, latestAgentVersion, runCommand, type AgentOnInstance, type DocumentStep } from './command-execution.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const productDocument = readFileSync(path.join(repo, 'agent-config', 'install-and-configure.json'), 'utf8');

function productSteps(): DocumentStep[] {
  const steps = documentStepsOf(productDocument);
  if (!steps) throw new Error('the install document has no steps the simulator can read');
  return steps;
}

/** The product's document changed as a test needs (a copy; the repo file is untouched). */
function variant(change: (document: { mainSteps: Record<string, unknown>[] }) => void): DocumentStep[] {
  const document = JSON.parse(productDocument) as { mainSteps: Record<string, unknown>[] };
  change(document);
  return documentStepsOf(JSON.stringify(document)) ?? [];
}

function installInputs(document: { mainSteps: Record<string, unknown>[] }): Record<string, unknown> {
  const inputs = document.mainSteps[0]?.inputs;
  if (typeof inputs !== 'object' || inputs === null) throw new Error('installAgent has no inputs');
  return inputs as Record<string, unknown>;
}

const installFails = { status: 'Failed', step: 'installAgent', output: 'failed to download installation package reliably' } as const;
const olderFromDistributor: AgentOnInstance = { version: '1.247350.0', installedBy: 'distributor' };

describe('a failed install step with the product document', () => {
  it('stops the command: configure is skipped, never run against a missing agent', () => {
    const run = runCommand(productSteps(), installFails, undefined);
    expect(run.invocation.status).toBe('Failed');
    expect(run.invocation.steps.map((step) => [step.name, step.status, step.statusDetails])).toEqual([
      ['installAgent', 'Failed', 'Failed'],
      ['configureAgent', 'Success', 'Skipped'],
    ]);
    expect(run.invocation.steps[0]?.errorOutput).toContain('Further document steps will be skipped.');
    expect(run.agent).toBeUndefined();
  });

  it('would run configure anyway with onFailure at step level, where the SSM agent never reads it', () => {
    const steps = variant((document) => {
      const install = document.mainSteps[0] as Record<string, unknown>;
      delete installInputs(document).onFailure;
      install.onFailure = 'exit';
    });
    const run = runCommand(steps, installFails, undefined);
    // configure ran, and failed, on an instance without an agent.
    expect(run.invocation.steps.map((step) => [step.name, step.status])).toEqual([
      ['installAgent', 'Failed'],
      ['configureAgent', 'Failed'],
    ]);
    expect(run.invocation.steps[1]?.errorOutput).toContain('amazon-cloudwatch-agent-ctl');
  });

  it('would be reported as a success with onFailure: successAndExit, configure skipped', () => {
    const steps = variant((document) => {
      installInputs(document).onFailure = 'successAndExit';
    });
    const run = runCommand(steps, installFails, undefined);
    expect(run.invocation.status).toBe('Success');
    expect(run.invocation.steps.map((step) => [step.status, step.statusDetails, step.responseCode])).toEqual([
      ['Success', 'Success', 168],
      ['Success', 'Skipped', 0],
    ]);
  });
});

describe('installing over what Distributor already has on the instance', () => {
  it('a fresh instance gets the current agent, then its configuration', () => {
    const run = runCommand(productSteps(), undefined, undefined);
    expect(run.invocation.status).toBe('Success');
    expect(run.agent).toEqual({ version: latestAgentVersion, installedBy: 'distributor' });
  });

  it('the same version already installed by Distributor is left as it is, and configured', () => {
    const current: AgentOnInstance = { version: latestAgentVersion, installedBy: 'distributor' };
    const run = runCommand(productSteps(), undefined, current);
    expect(run.invocation.steps[0]?.output).toBe(`AmazonCloudWatchAgent ${latestAgentVersion} is already installed`);
    expect(run.invocation.status).toBe('Success');
    expect(run.agent).toEqual(current);
  });

  it('an older Distributor-installed agent is uninstalled and the current one installed (the default installation type)', () => {
    const run = runCommand(productSteps(), undefined, olderFromDistributor);
    expect(run.invocation.status).toBe('Success');
    expect(run.invocation.steps[0]?.output).toContain(`Successfully uninstalled AmazonCloudWatchAgent ${olderFromDistributor.version}`);
    expect(run.agent).toEqual({ version: latestAgentVersion, installedBy: 'distributor' });
  });

  it('would fail every time over an older Distributor-installed agent with installationType In-place update', () => {
    const steps = variant((document) => {
      const parameters = installInputs(document).documentParameters as Record<string, unknown>;
      parameters.installationType = 'In-place update';
    });
    for (let attempt = 0; attempt < 3; attempt++) {
      const run = runCommand(steps, undefined, olderFromDistributor);
      expect(run.invocation.status).toBe('Failed');
      expect(run.invocation.steps[0]?.errorOutput).toContain('missing update script required for in-place update');
      expect(run.invocation.steps[1]?.statusDetails).toBe('Skipped');
      expect(run.agent).toEqual(olderFromDistributor);
    }
  });

  it('an agent from an rpm, an msi or the AMI is unknown to Distributor: In-place update installs normally', () => {
    const steps = variant((document) => {
      const parameters = installInputs(document).documentParameters as Record<string, unknown>;
      parameters.installationType = 'In-place update';
    });
    const run = runCommand(steps, undefined, { version: '1.247350.0', installedBy: 'os-package' });
    expect(run.invocation.status).toBe('Success');
    expect(run.agent).toEqual({ version: latestAgentVersion, installedBy: 'distributor' });
  });

  it('a package name in the wrong case is not found (Distributor names are case sensitive)', () => {
    const steps = variant((document) => {
      const parameters = installInputs(document).documentParameters as Record<string, unknown>;
      parameters.name = 'amazoncloudwatchagent';
    });
    const run = runCommand(steps, undefined, undefined);
    expect(run.invocation.steps[0]?.status).toBe('Failed');
    expect(run.agent).toBeUndefined();
  });
});

describe('outcomes a test forces', () => {
  it('a forced configure failure leaves the freshly installed agent in place', () => {
    const run = runCommand(productSteps(), { status: 'Failed', step: 'configureAgent', output: 'Configuration validation first phase failed' }, undefined);
    expect(run.invocation.steps.map((step) => step.status)).toEqual(['Success', 'Failed']);
    expect(run.agent?.installedBy).toBe('distributor');
  });

  it('a time-out in the install step does not stop the document: configure still runs, and fails without an agent', () => {
    const run = runCommand(productSteps(), { status: 'TimedOut', step: 'installAgent' }, undefined);
    expect(run.invocation.status).toBe('Failed');
    expect(run.invocation.steps.map((step) => step.status)).toEqual(['TimedOut', 'Failed']);
    expect(run.agent).toBeUndefined();
  });

  it('a time-out in the configure step leaves the invocation TimedOut and the agent installed', () => {
    const run = runCommand(productSteps(), { status: 'TimedOut', step: 'configureAgent' }, undefined);
    expect(run.invocation).toMatchObject({ status: 'TimedOut', statusDetails: 'ExecutionTimedOut' });
    expect(run.agent?.installedBy).toBe('distributor');
  });

  it('a command that never reached the instance is DeliveryTimedOut, and no step ran', () => {
    const run = runCommand(productSteps(), { status: 'DeliveryTimedOut' }, undefined);
    expect(run.invocation).toMatchObject({ status: 'TimedOut', statusDetails: 'DeliveryTimedOut' });
    expect(run.invocation.steps.map((step) => step.statusDetails)).toEqual(['DeliveryTimedOut', 'DeliveryTimedOut']);
    expect(run.agent).toBeUndefined();
  });

  it('a command still running has its first step in progress and the rest pending', () => {
    const run = runCommand(productSteps(), { status: 'InProgress' }, olderFromDistributor);
    expect(run.invocation.steps.map((step) => step.status)).toEqual(['InProgress', 'Pending']);
    expect(run.agent).toEqual(olderFromDistributor);
  });
});
