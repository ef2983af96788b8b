import { InstanceNotReachableError } from '../errors.js';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import type { Clients } from '../aws/client-factory.js';
import { SSMClient } from '@aws-sdk/client-ssm';
import { awsErrorName } from '../aws/errors.js';
import type { OsFamily } from '../agent-config.js';
import type { Settings } from '../config/settings.js';

/** SendCommand takes up to 50 instance ids (API reference, `InstanceIds`). */
export const maxInstancesPerCommand = 50;

/**
 * Runs the stack's install-and-configure document on one instance, with the agent config
 * parameter for its OS. Returns the command id.
 */
export async function sendInstallCommand(clients: Clients, instanceId: string, os: OsFamily, settings: Settings): Promise<string> {
  return sendInstallCommandTo(clients, [instanceId], os, settings);
}

/**
 * Runs the install-and-configure document on up to {@link maxInstancesPerCommand} instances of one
 * OS at once: one command, one command id for all of them (each instance has its own invocation,
 * read with GetCommandInvocation). Systems Manager refuses the whole call when one of them is not
 * reachable (InvalidInstanceId), thrown as {@link InstanceNotReachableError}.
 *
 * @example
 * const commandId = await sendInstallCommandTo(clients, ['i-0abc', 'i-0def'], 'linux', settings);
 */
export async function sendInstallCommandTo(clients: Clients, instanceIds: readonly string[], os: OsFamily, settings: Settings): Promise<string> {
  const named = instanceIds.length === 1 ? instanceIds[0] : `${instanceIds.length} instances (${instanceIds.join(', ')})`;
  try {
    const result = await clients.of(SSMClient).send(
      new SendCommandCommand({
        DocumentName: settings.agentDocumentName,
        InstanceIds: [...instanceIds],
        Parameters: { configParameter: [settings.configParameter[os]] },
        Comment: `cw-agent-autopilot: install and configure the CloudWatch agent (${os})`,
        TimeoutSeconds: 600,
      }),
    );
    const commandId = result.Command?.CommandId;
    if (!commandId) throw new Error(`SendCommand for ${named} returned no command id`);
    return commandId;
  } catch (error) {
    if (awsErrorName(error) === 'InvalidInstanceId') {
      const subject = instanceIds.length === 1 ? `${named} is` : `one or more of ${named} are`;
      throw new InstanceNotReachableError(
        `${subject} not reachable by Systems Manager yet (InvalidInstanceId): not registered, not running, or its role is not picked up`,
      );
    }
    throw error;
  }
}
