import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand, type CommandResult, type CommandRunner } from '../harness/moto-server.js';
import { CfnLintUnavailableError, pinnedCfnLint, resolveCfnLint, type CfnLintSetup } from './cfn-lint.js';

// Where `npm test` finds cfn-lint on a fresh laptop, with the executables stood in for: a "python"
// is a file that says whether it has cfn-lint, so the virtualenv the tests create is real folders.

let folder = '';
beforeEach(async () => {
  folder = await mkdtemp(path.join(tmpdir(), 'cwap-cfn-lint-'));
});
afterEach(async () => {
  await rm(folder, { recursive: true, force: true });
});

const ok: CommandResult = { status: 0, stdout: 'cfn-lint 1.51.0\n', stderr: '', missing: false };
const failed = (stderr: string): CommandResult => ({ status: 1, stdout: '', stderr, missing: false });
const missing: CommandResult = { status: null, stdout: '', stderr: 'spawn ENOENT', missing: true };

function machine(has: { onPath: boolean; python3: boolean; pip?: CommandResult }) {
  const calls: string[] = [];
  const run: CommandRunner = async (command, args) => {
    calls.push([command, ...args].join(' '));
    if (command === 'cfn-lint') return has.onPath ? ok : missing;
    if (command === 'python3') {
      if (!has.python3) return missing;
      if (args[1] === 'venv') {
        const target = args.at(-1) as string;
        await mkdir(path.join(target, 'bin'), { recursive: true });
        await writeFile(path.join(target, 'bin', 'python'), 'no cfn-lint');
      }
      return ok;
    }
    if (!existsSync(command)) return missing;
    if (args[1] === 'pip') {
      if (has.pip) return has.pip;
      await writeFile(command, args.at(-1) as string);
      return ok;
    }
    return (await readFile(command, 'utf8')).startsWith('cfn-lint==') ? ok : failed("No module named cfnlint");
  };
  const logged: string[] = [];
  const setup: CfnLintSetup = { run, log: (line) => logged.push(line), venvDirectory: path.join(folder, '.venv-cfn-lint') };
  return { calls, logged, setup };
}

describe('finding cfn-lint for the template test', () => {
  it('uses the cfn-lint on PATH and installs nothing', async () => {
    const { calls, setup } = machine({ onPath: true, python3: true });
    expect(await resolveCfnLint(setup)).toEqual({ command: 'cfn-lint', prefix: [] });
    expect(calls).toEqual(['cfn-lint --version']);
  });

  it('without one, installs the pinned cfn-lint into .venv-cfn-lint/ once, saying so in one line, and reuses it', async () => {
    const { logged, setup, calls } = machine({ onPath: false, python3: true });
    const python = path.join(folder, '.venv-cfn-lint', 'bin', 'python');
    expect(await resolveCfnLint(setup)).toEqual({ command: python, prefix: [expect.any(String), expect.any(String)] });
    expect(logged).toEqual([expect.stringMatching(new RegExp(`^cfn-lint: not on PATH; installing ${pinnedCfnLint.replace(/[.]/g, '\\.')} into `))]);
    expect(calls.filter((call) => call.includes(' -m pip install '))).toHaveLength(1);
    expect(await resolveCfnLint(setup)).toEqual({ command: python, prefix: [expect.any(String), expect.any(String)] });
    expect(logged).toHaveLength(1);
  });

  it('without python3, says in one line what to install', async () => {
    const { setup } = machine({ onPath: false, python3: false });
    await expect(resolveCfnLint(setup)).rejects.toThrow(CfnLintUnavailableError);
    await expect(resolveCfnLint(setup)).rejects.toThrow(/python3 was not found .*pip install cfn-lint$/);
  });

  it('when pip cannot reach PyPI, says so and leaves no half-made virtualenv', async () => {
    const { setup } = machine({ onPath: false, python3: true, pip: failed('ERROR: No matching distribution found for cfn-lint==1.51.0') });
    await expect(resolveCfnLint(setup)).rejects.toThrow(/pip could not install cfn-lint==1\.51\.0 .*No matching distribution.*PyPI/);
    expect(existsSync(path.join(folder, '.venv-cfn-lint'))).toBe(false);
  });
});

// A real bootstrap: python3 -m venv and pip, offline from python3's own cfn-lint (this machine has
// no PyPI). Slow (a virtualenv and pip), so only when asked: CWAP_TEST_CFN_LINT_BOOTSTRAP=offline.
describe.skipIf(process.env.CWAP_TEST_CFN_LINT_BOOTSTRAP !== 'offline')('a real cfn-lint bootstrap (CWAP_TEST_CFN_LINT_BOOTSTRAP=offline)', () => {
  it('creates .venv-cfn-lint/ whose python runs cfn-lint', async () => {
    const onlyVenv: CommandRunner = (command, args) => (command === 'cfn-lint' ? Promise.resolve(missing) : runCommand(command, args));
    const setup: CfnLintSetup = { run: onlyVenv, log: () => undefined, venvDirectory: path.join(folder, '.venv-cfn-lint'), systemSitePackages: true, pipArguments: ['--no-index'] };
    const found = await resolveCfnLint(setup);
    expect(found.command).toBe(path.join(folder, '.venv-cfn-lint', 'bin', 'python'));
    expect((await runCommand(found.command, [...found.prefix, '--version'])).stdout).toContain('cfn-lint');
  }, 180_000);
});
