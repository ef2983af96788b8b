// How the SSM agent runs a Command document on one instance, step by step, as the proxy simulates
// it. Every rule here follows the amazon-ssm-agent source (snapshot 1c217c8, cited per rule) or the
// Distributor guide; what no public source settles is marked "assumed". The register in
// test/simulator/README.md lists the same rules with their sources.

/** A JSON object read from an untrusted document. */
type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One `mainSteps` entry of a schemaVersion 2.2 Command document. */
export interface DocumentStep {
  name: string;
  action: string;
  /** The step's `inputs`: the plugin's properties (docparser.go: `Properties: instancePluginConfig.Inputs`). */
  inputs: Json;
}

/**
 * The steps of a Command document's content (JSON), or undefined when it has none the proxy can
 * read (YAML content, a schema without mainSteps).
 */
export function documentStepsOf(content: string): DocumentStep[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || !Array.isArray(parsed.mainSteps)) return undefined;
  const steps = parsed.mainSteps.flatMap((step): DocumentStep[] =>
    isObject(step) && typeof step.name === 'string'
      ? [{ name: step.name, action: typeof step.action === 'string' ? step.action : '', inputs: isObject(step.inputs) ? step.inputs : {} }]
      : [],
  );
  return steps.length > 0 ? steps : undefined;
}

/** The CloudWatch agent on an instance, as far as the simulated instance knows it. */
export interface AgentOnInstance {
  version: string;
  /**
   * `distributor`: installed through AWS-ConfigureAWSPackage, so Distributor keeps a record of it
   * (configurepackage's local repository). `os-package`: rpm/deb/msi or baked into the AMI, which
   * Distributor knows nothing of and treats as "not installed" (prepareConfigurePackage).
   */
  installedBy: 'distributor' | 'os-package';
}

/**
 * The AmazonCloudWatchAgent version Distributor serves when no `version` is asked for. Assumed:
 * the value only needs to differ from the older versions tests install.
 */
export const latestAgentVersion = '1.300064.1';

/** The package name AWS publishes in Distributor (names are case sensitive). */
export const agentPackageName = 'AmazonCloudWatchAgent';

/** How a command invocation ends on one instance. Step names are the document's `mainSteps` names. */
export type CommandOutcome = (
  | {
      /**
       * Every step runs as the instance's state lets it (no forced failure); `output` replaces the
       * standard output of every step that succeeds.
       */
      status: 'Success';
      output?: string;
    }
  | {
      status: 'Failed';
      /** The step forced to fail, e.g. `installAgent` or `configureAgent`; the others run as usual. */
      step: string;
      /** StandardOutputContent of the failed step (and StandardErrorContent unless `errorOutput`). */
      output: string;
      errorOutput?: string;
      /** Default 1. */
      responseCode?: number;
    }
  | { status: 'InProgress' }
  | {
      /**
       * The step's execution timed out; later steps still run (RunPlugins stops early only for
       * onFailure/onSuccess exits and exit codes 168/169).
       */
      status: 'TimedOut';
      /** The step running when the time-out hit; default the first. */
      step?: string;
    }
  | {
      /**
       * The command never reached the instance (its SSM agent was not connected): "Delivery Timed
       * Out" ("Understanding command statuses"). No step runs. AWS reports it after the delivery
       * timeout (TimeoutSeconds); the proxy, which has no clock of the simulation, reports it at
       * once (assumed to be equivalent for the product, which polls later anyway).
       */
      status: 'DeliveryTimedOut';
    }
) & {
  /**
   * GetCommandInvocation answers InvocationDoesNotExist (and ListCommandInvocations omits the
   * invocation) for this many polls after SendCommand, as AWS does for a while.
   */
  invisibleForPolls?: number;
};

/** One step's state in an invocation, as GetCommandInvocation (with PluginName) reports it. */
export interface StepState {
  name: string;
  status: 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';
  statusDetails: string;
  responseCode: number;
  output: string;
  errorOutput: string;
}

/** One instance's invocation of a command. */
export interface InvocationState {
  status: 'InProgress' | 'Success' | 'Failed' | 'TimedOut';
  statusDetails: string;
  responseCode: number;
  steps: StepState[];
}

/** What running a command did: the invocation as SSM reports it, and the agent left on the instance. */
export interface CommandRun {
  invocation: InvocationState;
  agent: AgentOnInstance | undefined;
}

// runpluginutil.go: the control-flow modifiers and their exit codes.
const exitWithSuccess = 168;
const skippedBecauseOfExit = '\nStep was found to have onFailure property. Further document steps will be skipped.';

function step(name: string, status: StepState['status'], extra: Partial<StepState> = {}): StepState {
  return {
    name,
    status,
    statusDetails: status === 'TimedOut' ? 'ExecutionTimedOut' : status,
    responseCode: status === 'Success' ? 0 : status === 'Failed' ? 1 : -1,
    output: '',
    errorOutput: '',
    ...extra,
  };
}

/** A step's result before the document's control flow is applied. */
interface PluginResult {
  state: StepState;
  agent: AgentOnInstance | undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/**
 * AWS-ConfigureAWSPackage `Install` of AmazonCloudWatchAgent (configurepackage.go
 * prepareConfigurePackage, checkAlreadyInstalled; configurepackage_execute.go
 * executeConfigurePackage, executeInstall; ssminstaller.go executeAction):
 * - Distributor has no record (nothing installed, or an rpm/msi agent): the install script runs.
 * - the same version recorded as installed: "already installed", success, no script runs.
 * - an older version recorded, `Uninstall and reinstall` (the default): uninstall, then install.
 * - an older version recorded, `In-place update`: the package's update script runs; a package
 *   without one fails with "missing update script ..." and is not rolled back. That
 *   AmazonCloudWatchAgent ships no update script follows the Distributor guide ("In-place update
 *   ... is not supported for AWS-published packages"); the package itself is not public.
 */
function configurePackage(name: string, parameters: Json, agent: AgentOnInstance | undefined): PluginResult {
  const action = text(parameters.action) ?? '';
  const packageName = text(parameters.name) ?? '';
  if (packageName !== agentPackageName) {
    // Assumed wording: Distributor finds no package of that name (names are case sensitive).
    return { state: step(name, 'Failed', { errorOutput: `Package "${packageName}" not found in Distributor`, output: '' }), agent };
  }
  if (action === 'Uninstall') {
    return { state: step(name, 'Success', { output: agent ? `Successfully uninstalled ${agentPackageName} ${agent.version}` : `${agentPackageName} is not installed` }), agent: undefined };
  }
  if (action !== 'Install') {
    return { state: step(name, 'Failed', { errorOutput: `unsupported action: ${action}` }), agent };
  }
  const version = text(parameters.version) ?? latestAgentVersion;
  const inPlace = parameters.installationType === 'In-place update';
  const recorded = agent?.installedBy === 'distributor' ? agent.version : undefined;
  const installed: AgentOnInstance = { version, installedBy: 'distributor' };
  if (recorded === version) {
    return { state: step(name, 'Success', { output: `${agentPackageName} ${version} is already installed` }), agent };
  }
  if (recorded === undefined) {
    return { state: step(name, 'Success', { output: `Successfully installed ${agentPackageName} ${version}` }), agent: installed };
  }
  if (inPlace) {
    const error =
      'missing update script required for in-place update\n' +
      "Please create a Distributor package with update script and retry the install with 'In-place update' installation type, or choose 'Uninstall and reinstall' installation type";
    return { state: step(name, 'Failed', { output: `Failed to install package; install status Failed`, errorOutput: error }), agent };
  }
  return {
    state: step(name, 'Success', { output: `Successfully uninstalled ${agentPackageName} ${recorded}\nSuccessfully installed ${agentPackageName} ${version}` }),
    agent: installed,
  };
}

/**
 * AmazonCloudWatch-ManageAgent: every action runs amazon-cloudwatch-agent-ctl, so it fails where
 * no agent is installed. Assumed wording of the failure (the document's scripts are AWS's, not in
 * a public repository).
 */
function manageAgent(name: string, parameters: Json, agent: AgentOnInstance | undefined): PluginResult {
  if (!agent) {
    return { state: step(name, 'Failed', { errorOutput: 'amazon-cloudwatch-agent-ctl: No such file or directory (the CloudWatch agent is not installed)' }), agent };
  }
  return { state: step(name, 'Success', { output: `amazon-cloudwatch-agent-ctl -a ${text(parameters.action) ?? 'status'}: done` }), agent };
}

/** What a step does when nothing forces it to fail. */
function runStep(documentStep: DocumentStep, agent: AgentOnInstance | undefined): PluginResult {
  if (documentStep.action === 'aws:runDocument') {
    const parameters = isObject(documentStep.inputs.documentParameters) ? documentStep.inputs.documentParameters : {};
    if (documentStep.inputs.documentPath === 'AWS-ConfigureAWSPackage') return configurePackage(documentStep.name, parameters, agent);
    if (documentStep.inputs.documentPath === 'AmazonCloudWatch-ManageAgent') return manageAgent(documentStep.name, parameters, agent);
  }
  return { state: step(documentStep.name, 'Success'), agent };
}

/**
 * The step's `onFailure`, read from its `inputs` only, as the agent does (runpluginutil.go reads
 * `onFailure` from the plugin's Configuration.Properties, which docparser.go fills from the step's
 * `inputs`; a step-level `onFailure` key is parsed into InstancePluginConfig.OnFailure and never read).
 */
function onFailureOf(documentStep: DocumentStep): 'exit' | 'successAndExit' | undefined {
  const value = documentStep.inputs.onFailure;
  return value === 'exit' || value === 'successAndExit' ? value : undefined;
}

/**
 * Runs a command's steps on one instance, as the SSM agent would (runpluginutil.go RunPlugins):
 * each step runs unless an earlier one failed with `onFailure: exit` (or `successAndExit`) in its
 * inputs; then the rest are skipped. A step that timed out does not stop the rest. The invocation
 * is Failed when a step failed, else TimedOut when one timed out, else Success (aggregator.go DocumentResultAggregator: "Skipped is a form of
 * success").
 *
 * A skipped step is reported with Status Success and StatusDetails Skipped: the agent sends the
 * plugin status "Skipped" (contracts.ResultStatusSkipped); how the service shows it in
 * GetCommandInvocation is assumed (its Status enum has no Skipped).
 *
 * @example
 * const run = runCommand(documentStepsOf(content) ?? [], { status: 'Failed', step: 'installAgent', output: 'no space' }, undefined);
 * run.invocation.steps.map((s) => s.statusDetails); // ['Failed', 'Skipped'] with onFailure: exit in the install step's inputs
 */
export function runCommand(steps: DocumentStep[], outcome: CommandOutcome | undefined, agentBefore: AgentOnInstance | undefined): CommandRun {
  if (outcome?.status === 'DeliveryTimedOut') {
    return {
      invocation: {
        status: 'TimedOut',
        statusDetails: 'DeliveryTimedOut',
        responseCode: -1,
        // Assumed: each step of an undelivered invocation reads as the invocation does.
        steps: steps.map((documentStep) => step(documentStep.name, 'TimedOut', { statusDetails: 'DeliveryTimedOut' })),
      },
      agent: agentBefore,
    };
  }
  if (outcome?.status === 'InProgress') {
    return {
      invocation: {
        status: 'InProgress',
        statusDetails: 'InProgress',
        responseCode: -1,
        steps: steps.map((documentStep, index) => step(documentStep.name, index === 0 ? 'InProgress' : 'Pending')),
      },
      agent: agentBefore,
    };
  }
  const timedOutAt = outcome?.status === 'TimedOut' ? Math.max(0, outcome.step ? steps.findIndex((s) => s.name === outcome.step) : 0) : -1;
  let agent = agentBefore;
  let skipFrom: string | undefined;
  let timedOut = false;
  const states: StepState[] = [];
  for (const [index, documentStep] of steps.entries()) {
    if (skipFrom !== undefined) {
      states.push(
        step(documentStep.name, 'Success', {
          statusDetails: 'Skipped',
          output: `Plugin with name ${documentStep.action} and id ${documentStep.name} skipped due to prior step with an exit condition`,
        }),
      );
      continue;
    }
    if (index === timedOutAt) {
      // The plugin is stopped: exit code 137 on Linux, -1 on Windows (CommandStoppedPreemptivelyExitCode);
      // -1 here, the proxy does not know the platform.
      states.push(step(documentStep.name, 'TimedOut'));
      timedOut = true;
      continue;
    }
    let result: PluginResult;
    if (outcome?.status === 'Failed' && outcome.step === documentStep.name) {
      const responseCode = outcome.responseCode ?? 1;
      result = {
        state: step(documentStep.name, 'Failed', { responseCode, output: outcome.output, errorOutput: outcome.errorOutput ?? outcome.output }),
        agent,
      };
    } else {
      result = runStep(documentStep, agent);
      if (result.state.status === 'Success' && outcome?.status === 'Success' && outcome.output !== undefined) {
        result.state.output = outcome.output;
      }
    }
    agent = result.agent;
    const state = result.state;
    const onFailure = onFailureOf(documentStep);
    if (state.status === 'Failed' && onFailure) {
      state.output += skippedBecauseOfExit;
      state.errorOutput += skippedBecauseOfExit;
      if (onFailure === 'successAndExit') {
        state.status = 'Success';
        state.statusDetails = 'Success';
        state.responseCode = exitWithSuccess;
      }
      skipFrom = documentStep.name;
    }
    states.push(state);
  }
  const failed = states.find((s) => s.status === 'Failed');
  const status: InvocationState['status'] = failed ? 'Failed' : timedOut ? 'TimedOut' : 'Success';
  return {
    invocation: {
      status,
      statusDetails: status === 'TimedOut' ? 'ExecutionTimedOut' : status,
      responseCode: failed ? failed.responseCode : timedOut ? -1 : 0,
      steps: states,
    },
    agent,
  };
}
