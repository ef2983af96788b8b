// The audit on a laptop, no AWS account: starts moto and the test harness's proxy (which answers
// the SSM calls moto lacks), creates the stack's resources and a mixed fleet (one instance per
// audit status), then runs the real `cw-autopilot audit` command against it.
//
//   npx tsx scripts/audit-demo.ts [audit options...]      e.g. --format markdown --min-coverage 90
//   npx tsx scripts/audit-demo.ts --serve                 keep it running; prints the variables
//                                                         to run `npx cw-autopilot audit --stage test`
//                                                         yourself from another terminal
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startAwsProxy } from '../test/harness/aws-proxy.js';
import { startMotoServer } from '../test/harness/moto-server.js';
import { deployStack } from '../test/harness/stack.js';
import { launchMixedFleet } from '../test/integration/audit-fleet.js';

// The SDK's "Node 20 support ends in 2027" notice is not the demo's business.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (!warning.message.startsWith('NodeVersionSupportWarning')) console.error(`${warning.name}: ${warning.message}`);
});

const args = process.argv.slice(2).filter((arg) => arg !== '--');
const serve = args.includes('--serve');
const credentials = { AWS_ACCESS_KEY_ID: 'demo', AWS_SECRET_ACCESS_KEY: 'demo', AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' };

const moto = await startMotoServer();
const proxy = await startAwsProxy({ motoUrl: moto.url });
Object.assign(process.env, credentials, { AWS_ENDPOINT_URL: proxy.url });
delete process.env.AWS_PROFILE;
const stop = async () => {
  await proxy.stop();
  await moto.stop();
};

try {
  const stack = await deployStack();
  const fleet = await launchMixedFleet(proxy, stack);
  // moto holds no onboard function to read the stack's settings from: the settings come from the
  // flags, and the harness names the stack's IAM resources without the region serverless.yml adds.
  const names = ['--settings-from-flags', '--agent-profile', stack.agentProfile.name, '--scheduler-role-arn', stack.schedulerRole.arn];
  process.stderr.write(`moto at ${moto.url}, proxy at ${proxy.url}: stack "test" and ${Object.keys(fleet).length} instances created\n`);
  if (serve) {
    process.stderr.write(
      `\nIn another terminal:\n  export ${Object.entries({ ...credentials, AWS_ENDPOINT_URL: proxy.url }).map(([key, value]) => `${key}=${value}`).join(' ')}\n  npx cw-autopilot audit --stage test ${names.join(' ')}\n\nCtrl-C stops moto.\n`,
    );
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  } else {
    const bin = fileURLToPath(new URL('../bin/cw-autopilot.mjs', import.meta.url));
    const child = spawn(process.execPath, [bin, 'audit', '--stage', 'test', ...names, ...args], { stdio: 'inherit', env: process.env });
    process.exitCode = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  }
} finally {
  await stop();
}
