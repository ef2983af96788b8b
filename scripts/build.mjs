// `npm run build` (and prepack / prepare): the JavaScript that an installed package runs.
//   dist/cw-autopilot.js  the CLI (bin/cw-autopilot.mjs runs it when cli/*.ts is not there)
//   dist/agent-config.js  the agent config renderer (scripts/render-agent-config.cjs without tsx)
// One esbuild bundle per entry, like the Lambda functions (serverless-esbuild): type checking is
// `npm run typecheck`'s job. npm packages stay imports (`packages: 'external'`), resolved from the
// `dependencies` the installed package gets. Each bundle sits one folder below the package root,
// as its sources sit below the repo root, so `new URL('../agent-config/', import.meta.url)` finds
// the same folder in both. The CLI's `await import(...)` of its own modules stays lazy (esbuild
// wraps them): the SDK clients are still created after the CLI has set AWS_REGION.
//
// `--if-esbuild` (prepare): skip, with one line, when esbuild is not installed, so that
// `npm ci --omit=dev` in a checkout still works; prepack has no such flag, so a tarball always has
// its dist/.
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = fileURLToPath(new URL('../dist/', import.meta.url));

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (error) {
  if (process.argv.includes('--if-esbuild') && error?.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('build: skipped, esbuild (a devDependency) is not installed; bin/cw-autopilot.mjs needs dist/ or tsx');
    process.exit(0);
  }
  throw error;
}

rmSync(dist, { recursive: true, force: true });
await esbuild.build({
  absWorkingDir: root,
  entryPoints: [
    { in: 'cli/cw-autopilot.ts', out: 'cw-autopilot' },
    { in: 'shared/agent-config.ts', out: 'agent-config' },
  ],
  outdir: dist,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
