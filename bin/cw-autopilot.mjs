#!/usr/bin/env node
// Runs the TypeScript CLI from the repo (tsx compiles it on the fly): `npx cw-autopilot audit ...`.
import { register } from 'tsx/esm/api';

// The SDK warns once per process that Node 20 support ends in 2027; the repo's Node is 20 on
// purpose (DESIGN.md), and the CLI's stderr is for the audit's own progress and errors.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (!warning.message.startsWith('NodeVersionSupportWarning')) console.error(`${warning.name}: ${warning.message}`);
});
register();
const { main } = await import('../cli/cw-autopilot.ts');
process.exitCode = await main(process.argv.slice(2));
