#!/usr/bin/env node
// `npx cw-autopilot audit ...`. In a checkout (cli/*.ts is there and so is tsx, a devDependency)
// it runs the TypeScript source, so an edit needs no rebuild and a stale dist/ is never run; an
// installed package has no cli/ and runs the bundle `npm run build` made (dist/cw-autopilot.js).
import { existsSync } from 'node:fs';

// The SDK warns once per process that Node 20 support ends in 2027; the repo's Node is 20 on
// purpose (README, "Node versions"), and the CLI's stderr is for its own progress and errors.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (!warning.message.startsWith('NodeVersionSupportWarning')) console.error(`${warning.name}: ${warning.message}`);
});

const source = new URL('../cli/cw-autopilot.ts', import.meta.url);
const built = new URL('../dist/cw-autopilot.js', import.meta.url);

async function entry() {
  if (existsSync(source)) {
    try {
      const { register } = await import('tsx/esm/api');
      register();
      return source;
    } catch (error) {
      if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
      // A checkout installed with --omit=dev: the bundle, if one was built.
    }
  }
  if (existsSync(built)) return built;
  console.error('cw-autopilot: dist/cw-autopilot.js is missing and tsx is not installed: run `npm ci` (or `npm run build`) in the checkout');
  process.exit(1);
}

const { main } = await import((await entry()).href);
process.exitCode = await main(process.argv.slice(2));
