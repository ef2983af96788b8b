import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderedAgentConfigs } from '../../shared/agent-config.js';
import { useAws } from '../harness/aws-env.js';
import { launchInstance } from '../harness/fleet.js';
import { deployStack } from '../harness/stack.js';

// What a user gets from `npm pack` and `npm install --omit=dev`: the built CLI with the production
// dependencies only (no tsx, no TypeScript sources), run as `npx cw-autopilot` against moto.

const aws = useAws();
const root = fileURLToPath(new URL('../../', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The environment without what npm sets for the `npm test` that started vitest (the outer package,
 * script and local prefix), so a nested npm works on the folder it is given; the user's own npm
 * configuration (cache, registry, proxy) stays.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of Object.keys(env)) {
    if (/^npm_(package_|lifecycle_|command$|execpath$|node_execpath$|config_local_prefix$|config_call$)/i.test(name)) delete env[name];
  }
  delete env.NODE_PATH;
  return env;
}

function run(command: string, args: string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: options.cwd, env: cleanEnv(options.env), timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

function succeeded(result: Run, what: string): Run {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stderr}\n${result.stdout}`);
  return result;
}

let work = '';
let app = '';
let packedFiles: string[] = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'cwap-package-'));
  // prepack builds dist/ first.
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root });
  const [tarball] = JSON.parse(succeeded(packed, 'npm pack').stdout) as { filename: string; files: { path: string }[] }[];
  if (!tarball) throw new Error(`npm pack printed no tarball: ${packed.stdout}`);
  packedFiles = tarball.files.map((file) => file.path);

  app = path.join(work, 'app');
  await mkdir(app);
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'cwap-package-test', private: true }));
  const installed = await run('npm', ['install', '--prefix', app, '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', path.join(work, tarball.filename)], {
    cwd: app,
  });
  succeeded(installed, 'npm install of the tarball');
}, 180_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the package as npm pack builds it', () => {
  it('ships the bin and the built CLI, no TypeScript; installed --omit=dev, `npx cw-autopilot --help` runs', async () => {
    expect(packedFiles).toEqual(expect.arrayContaining(['package.json', 'bin/cw-autopilot.mjs', 'dist/cw-autopilot.js']));
    expect(packedFiles.filter((file) => file.endsWith('.ts') || /^(cli|shared|functions|test|scripts)\//.test(file))).toEqual([]);
    // The devDependencies the checkout runs the CLI with are not there: the bundle runs.
    expect(existsSync(path.join(app, 'node_modules', 'cw-agent-autopilot', 'dist', 'cw-autopilot.js'))).toBe(true);
    expect(existsSync(path.join(app, 'node_modules', 'tsx'))).toBe(false);
    expect(existsSync(path.join(app, 'node_modules', 'typescript'))).toBe(false);

    const help = await run('npx', ['--no-install', 'cw-autopilot', '--help'], { cwd: app });
    expect(help.stderr).toBe('');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: cw-autopilot <command>/);
    expect(help.stdout).toContain('audit');
  });

  it('the installed cw-autopilot audits moto: the JSON report lists the instance the test launched', async () => {
    const stack = await deployStack();
    const bare = await launchInstance({ os: 'linux', tags: { Name: 'packed-1' } });
    const before = aws.calls().length;
    const audit = await run(
      path.join(app, 'node_modules', '.bin', 'cw-autopilot'),
      ['audit', '--settings-from-flags', '--stage', 'test', '--table', stack.settings.stateTable, '--region', 'us-east-1', '--format', 'json', '--quiet'],
      { cwd: app, env: { AWS_ENDPOINT_URL: aws.proxy.url } },
    );
    expect(audit.stderr).toBe('');
    expect(audit.code).toBe(0);
    const report = JSON.parse(audit.stdout) as { summary: { running: number }; instances: { instanceId: string; name: string | null; os: string; status: string }[] };
    expect(report.summary.running).toBe(1);
    expect(report.instances).toEqual([expect.objectContaining({ instanceId: bare.instanceId, name: 'packed-1', os: 'linux', status: 'no-profile' })]);
    // It asked the proxy in front of moto (AWS_ENDPOINT_URL), not AWS.
    expect(aws.calls().slice(before).map((call) => call.operation)).toEqual(expect.arrayContaining(['DescribeInstances', 'DescribeInstanceInformation']));
  });

  it('the agent config renderer runs from the built dist/agent-config.js without tsx and renders what the source renders', async () => {
    // A checkout installed without devDependencies: the renderer's files, no node_modules.
    const checkout = path.join(work, 'checkout');
    for (const file of ['package.json', 'scripts/render-agent-config.cjs', 'dist/agent-config.js', 'shared/agent-config.ts', 'agent-config']) {
      await cp(path.join(root, file), path.join(checkout, file), { recursive: true });
    }
    const params: Record<string, string> = { namespace: 'Team/Metrics', memoryMetric: 'MEM', diskMetric: 'DISK', windowsDiskFreeMetric: 'DISK_FREE' };
    const script = `
      const renderer = require('./scripts/render-agent-config.cjs');
      const params = ${JSON.stringify(params)};
      const resolveVariable = async (name) => params[name.replace(/^param:/, '')];
      Promise.all([renderer.linux({ resolveVariable }), renderer.windows({ resolveVariable })])
        .then((texts) => process.stdout.write(JSON.stringify(texts)));
    `;
    const rendered = succeeded(await run(process.execPath, ['-e', script], { cwd: checkout }), 'the renderer');
    const expected = renderedAgentConfigs({ namespace: 'Team/Metrics', memory: 'MEM', disk: 'DISK', windowsDiskFree: 'DISK_FREE' });
    // osls's escape for the agent's own `${aws:InstanceId}` placeholder.
    const escaped = (text: string) => text.replace(/\$\{/g, '\\${');
    expect(JSON.parse(rendered.stdout)).toEqual([escaped(expected.linux), escaped(expected.windows)]);
    expect(expected.linux).toContain('Team/Metrics');
  });
});
