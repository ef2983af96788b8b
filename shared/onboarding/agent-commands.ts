import { InstanceNotReachableError } from '../errors.js';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import type { Clients } from '../aws/client-factory.js';
import { SSMClient } from '@aws-sdk/client-ssm';
import { awsErrorName } from '../aws/errors.js';
import type { OsFamily } from '../agent-config.js';
import type { Settings } from '../config/settings.js';

/**
 * Runs the stack's install-and-configure document on one instance, with the agent config
 * parameter for its OS. Returns the command id.
 */
export async function sendInstallCommand(clients: Clients, instanceId: string, os: OsFamily, settings: Settings): Promise<string> {
  try {
    const result = await clients.of(SSMClient).send(
      new SendCommandCommand({
        DocumentName: settings.agentDocumentName,
        InstanceIds: [instanceId],
        Parameters: { configParameter: [settings.configParameter[os]] },
        Comment: `cw-agent-autopilot: install and configure the CloudWatch agent (${os})`,
        TimeoutSeconds: 600,
      }),
    );
    const commandId = result.Command?.CommandId;
    if (!commandId) throw new Error(`SendCommand for ${instanceId} returned no command id`);
    return commandId;
  } catch (error) {
    if (awsErrorName(error) === 'InvalidInstanceId') {
      throw new InstanceNotReachableError(
        `${instanceId} is not reachable by Systems Manager yet (InvalidInstanceId): not registered, not running, or its role is not picked up`,
      );
    }
    throw error;
  }
}
