import { GetCommandInvocationCommand, type GetCommandInvocationCommandOutput } from '@aws-sdk/client-ssm';
import type { Clients } from '../aws/client-factory.js';
import { SSMClient } from '@aws-sdk/client-ssm';
import { awsErrorName } from '../aws/errors.js';

/** The steps of agent-config/install-and-configure.json, in the order they run. */
export const installSteps = ['installAgent', 'configureAgent'] as const;
export type InstallStep = (typeof installSteps)[number];

/** Where the install-and-configure command is on one instance. */
export type CommandState = 'not-yet-known' | 'running' | 'success' | 'failed' | 'timed-out' | 'cancelled';

/** What GetCommandInvocation says about the install command, step by step. */
export interface CommandStatus {
  commandId: string;
  state: CommandState;
  /** The SSM status of the step that decided `state` (e.g. Failed, TimedOut, InProgress). */
  status: string | undefined;
  statusDetails: string | undefined;
  /** The step that failed, timed out or is still running. */
  step: InstallStep | undefined;
  /** The first lines of that step's error output (or of its output when it has no error output). */
  errorLines: string[];
  responseCode: number | undefined;
}

/** How many lines of a failing step's output an alert quotes. */
export const quotedLines = 5;

const stateOfStatus: Record<string, CommandState> = {
  Pending: 'running',
  InProgress: 'running',
  Delayed: 'running',
  Cancelling: 'running',
  Success: 'success',
  Failed: 'failed',
  TimedOut: 'timed-out',
  Cancelled: 'cancelled',
  Undeliverable: 'failed',
  Terminated: 'cancelled',
};

/** Maps an SSM invocation status to the product's command state. Unknown statuses count as running. */
export function commandStateOf(status: string | undefined): CommandState {
  return (status && stateOfStatus[status]) || 'running';
}

/** The first non-empty lines of a command output, trimmed. */
export function firstLines(text: string | undefined, count = quotedLines): string[] {
  return (text ?? '')
    .split(/\r?\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line.trim().length > 0)
    .slice(0, count);
}

async function stepInvocation(clients: Clients, commandId: string, instanceId: string, step: InstallStep): Promise<GetCommandInvocationCommandOutput | undefined> {
  try {
    return await clients.of(SSMClient).send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId, PluginName: step }));
  } catch (error) {
    // Right after SendCommand, and for a step that has not started, SSM answers
    // InvocationDoesNotExist: "not yet known", not a failure.
    if (awsErrorName(error) === 'InvocationDoesNotExist') return undefined;
    throw error;
  }
}

/**
 * Reads the install-and-configure command's status on one instance, step by step: the first step
 * that did not succeed decides the state and is named, with the first lines of its error output.
 *
 * @example
 * const status = await commandStatus(record.commandId, instanceId);
 * // { state: 'failed', step: 'installAgent', errorLines: ['Failed to download ...'], ... }
 */
export async function commandStatus(clients: Clients, commandId: string, instanceId: string): Promise<CommandStatus> {
  let last: CommandStatus | undefined;
  for (const step of installSteps) {
    const invocation = await stepInvocation(clients, commandId, instanceId, step);
    if (!invocation) {
      // A later step not known yet while the earlier one succeeded: the command is still running.
      return last
        ? { ...last, state: 'running', status: 'Pending', step, errorLines: [] }
        : { commandId, state: 'not-yet-known', status: undefined, statusDetails: undefined, step: undefined, errorLines: [], responseCode: undefined };
    }
    const state = commandStateOf(invocation.Status);
    const current: CommandStatus = {
      commandId,
      state,
      status: invocation.Status,
      statusDetails: invocation.StatusDetails,
      step,
      errorLines: state === 'success' ? [] : firstLines(invocation.StandardErrorContent || invocation.StandardOutputContent),
      responseCode: invocation.ResponseCode,
    };
    if (state !== 'success') return current;
    last = current;
  }
  return { ...(last as CommandStatus), step: undefined };
}
