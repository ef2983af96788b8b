/**
 * Measures what `osls package` produced: each function's zip size and how long its bundle takes to
 * load in a fresh Node process (the module-init part of a Lambda cold start), against a bare
 * `node -e 0`.
 *
 *   npx tsx scripts/measure-bundles.ts             # measures .serverless/ as it is
 *   npx tsx scripts/measure-bundles.ts --package   # runs `osls package --stage dev` first
 *   npx tsx scripts/measure-bundles.ts --runs 11 --max-kb 400
 *
 * Prints a table, then one JSON line. Exits 1 when a zip is over --max-kb (default 400) or a
 * bundle fails to load or has no `handler` export. Needs `unzip` on the PATH.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stackEnvironment } from '../test/harness/stack.js';

interface FunctionMeasure {
  name: string;
  zipBytes: number;
  zipKB: number;
  bundleBytes: number;
  loadMs: number;
  importMedianMs: number;
}

const { values: args } = parseArgs({
  options: {
    package: { type: 'boolean', default: false },
    runs: { type: 'string', default: '7' },
    'max-kb': { type: 'string', default: '400' },
    'service-dir': { type: 'string', default: process.cwd() },
  },
});
const runs = Number(args.runs);
const maxKB = Number(args['max-kb']);
const serviceDir = path.resolve(args['service-dir']);

// Valid dummy settings, so the handlers' cold-start parseSettings() succeeds. Nothing is called:
// loading a bundle constructs SDK clients but sends no request.
const settingsEnv: Record<string, string> = {
  ...stackEnvironment('measure'),
  AWS_EC2_METADATA_DISABLED: 'true',
  POWERTOOLS_LOG_LEVEL: 'ERROR',
};

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Wall time of `node -e <code>` in `cwd`, median of `runs`; throws with stderr when it fails. */
function timeNode(code: string, cwd: string): number {
  const samples: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    const started = process.hrtime.bigint();
    const result = spawnSync(process.execPath, ['-e', code], {
      cwd,
      env: { PATH: process.env.PATH ?? '', ...settingsEnv },
      encoding: 'utf8',
    });
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    if (result.status !== 0) {
      throw new Error(`node -e ${JSON.stringify(code)} failed in ${cwd} (exit ${result.status}): ${result.stderr.trim()}`);
    }
    samples.push(elapsed);
  }
  return median(samples);
}

interface PackagedFunction {
  handler: string;
  package?: { artifact?: string };
}

/** The packaged functions, and the Lambda runtime they were built for (provider.runtime). */
function packagedService(): { functions: Record<string, PackagedFunction>; runtime: string } {
  const statePath = path.join(serviceDir, '.serverless', 'serverless-state.json');
  try {
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as {
      service: { functions: Record<string, PackagedFunction>; provider: { runtime: string } };
    };
    return { functions: state.service.functions, runtime: state.service.provider.runtime };
  } catch (error) {
    throw new Error(`No packaged service at ${statePath} (${(error as Error).message}): run with --package, or "npx osls package" first`);
  }
}

function measure(name: string, fn: PackagedFunction, baselineMs: number): FunctionMeasure {
  const zipPath = path.resolve(serviceDir, fn.package?.artifact ?? `.serverless/${name}.zip`);
  const zipBytes = statSync(zipPath).size;
  const directory = mkdtempSync(path.join(tmpdir(), `measure-${name}-`));
  try {
    execFileSync('unzip', ['-q', zipPath, '-d', directory]);
    const handlerModule = fn.handler.slice(0, fn.handler.lastIndexOf('.'));
    const exportName = fn.handler.slice(fn.handler.lastIndexOf('.') + 1);
    const file = ['.mjs', '.js', '.cjs']
      .map((extension) => `${handlerModule}${extension}`)
      .find((candidate) => {
        try {
          return statSync(path.join(directory, candidate)).isFile();
        } catch {
          return false;
        }
      });
    if (!file) throw new Error(`${name}: no ${handlerModule}.mjs/.js/.cjs in ${zipPath}`);
    const code =
      `import(${JSON.stringify(`./${file}`)}).then((m) => {` +
      ` if (typeof m[${JSON.stringify(exportName)}] !== 'function') { console.error('no ${exportName} export'); process.exit(3); } })` +
      `.catch((e) => { console.error(e); process.exit(2); })`;
    const importMedianMs = timeNode(code, directory);
    return {
      name,
      zipBytes,
      zipKB: Math.round((zipBytes / 1024) * 10) / 10,
      bundleBytes: statSync(path.join(directory, file)).size,
      importMedianMs: Math.round(importMedianMs * 10) / 10,
      loadMs: Math.round((importMedianMs - baselineMs) * 10) / 10,
    };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

if (args.package) {
  execFileSync('npx', ['osls', 'package', '--stage', 'dev', '--region', 'us-east-1'], {
    cwd: serviceDir,
    stdio: 'inherit',
    env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' },
  });
}

const { functions, runtime } = packagedService();
const baselineMs = timeNode('0', tmpdir());
const results = Object.entries(functions).map(([name, fn]) => measure(name, fn, baselineMs));

const rows = [
  ['function', 'zip bytes', 'zip KB', 'bundle bytes', 'import ms', 'load ms (- bare node)'],
  ...results.map((r) => [r.name, String(r.zipBytes), r.zipKB.toFixed(1), String(r.bundleBytes), r.importMedianMs.toFixed(1), r.loadMs.toFixed(1)]),
  ['(bare node -e 0)', '', '', '', baselineMs.toFixed(1), '0.0'],
];
const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
for (const [index, row] of rows.entries()) {
  console.log(row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '));
  if (index === 0) console.log(widths.map((width) => '-'.repeat(width)).join('  '));
}
// Load times are this machine's Node, not Lambda's: a guide to relative cost, not a cold start.
console.log(`loaded with Node ${process.version}; Lambda runs them on ${runtime}`);

const over = results.filter((r) => r.zipKB > maxKB);
console.log(
  JSON.stringify({
    node: process.version,
    runtime,
    runs,
    baselineMs: Math.round(baselineMs * 10) / 10,
    maxKB,
    functions: results,
    ok: over.length === 0,
  }),
);
if (over.length > 0) {
  console.error(`Over ${maxKB} KB: ${over.map((r) => `${r.name} (${r.zipKB} KB)`).join(', ')}`);
  process.exitCode = 1;
}
