import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MotoNotInstalledError, pinnedMoto, resolveMotoPython, runCommand, startMotoServer, type CommandResult, type CommandRunner, type MotoPythonOptions } from './moto-server.js';

// How the harness finds the python that runs moto, with python itself stood in for: a "python" is
// a file whose content says what it has (`moto 5.2.1`, `no moto`), so a virtualenv the harness
// creates, fills and renames is real folders and files. python3 is the `system` setting.

type SystemPython = 'missing' | 'no moto' | `moto ${string}`;

let folder = '';
beforeEach(async () => {
  folder = await mkdtemp(path.join(tmpdir(), 'cwap-moto-python-'));
});
afterEach(async () => {
  await rm(folder, { recursive: true, force: true });
});

const ok = (stdout = ''): CommandResult => ({ status: 0, stdout, stderr: '', missing: false });
const failed = (stderr: string): CommandResult => ({ status: 1, stdout: '', stderr, missing: false });
const missing: CommandResult = { status: null, stdout: '', stderr: 'spawn ENOENT', missing: true };

function pretendPython(system: SystemPython, behaviour: { venv?: CommandResult; pip?: CommandResult; duringPip?: () => Promise<void> } = {}) {
  const calls: string[][] = [];
  const has = (what: string): CommandResult =>
    what.startsWith('moto ') ? ok(`${what.slice('moto '.length)}\n`) : what === 'no moto' ? failed("ModuleNotFoundError: No module named 'moto'") : missing;
  const run: CommandRunner = async (command, args) => {
    calls.push([command, ...args]);
    await new Promise((resolve) => setImmediate(resolve));
    const python = command === 'python3' ? system : existsSync(command) ? await readFile(command, 'utf8') : 'missing';
    if (python === 'missing') return missing;
    if (args[0] === '-c') return has(python);
    if (args[0] === '-m' && args[1] === 'venv') {
      if (behaviour.venv) return behaviour.venv;
      const target = args.at(-1) as string;
      await mkdir(path.join(target, 'bin'), { recursive: true });
      await writeFile(path.join(target, 'bin', 'python'), 'no moto');
      return ok();
    }
    if (args[0] === '-m' && args[1] === 'pip') {
      if (behaviour.pip) return behaviour.pip;
      await behaviour.duringPip?.();
      await writeFile(command, `moto ${(args.at(-1) as string).split('==')[1]}`);
      return ok();
    }
    throw new Error(`unexpected command ${command} ${args.join(' ')}`);
  };
  const logged: string[] = [];
  const options = (extra: MotoPythonOptions = {}): MotoPythonOptions => ({
    run,
    log: (line) => logged.push(line),
    env: {},
    venvDirectory: path.join(folder, '.venv-moto'),
    ...extra,
  });
  return { calls, logged, options };
}

const venvPython = () => path.join(folder, '.venv-moto', 'bin', 'python');
const installs = (calls: string[][]) => calls.filter((call) => call.includes('venv') || call.includes('pip'));

describe('the python that runs moto', () => {
  it('python3 with moto 5.2.1 runs moto itself: no virtualenv, nothing said', async () => {
    const python = pretendPython('moto 5.2.1');
    expect(await resolveMotoPython(python.options())).toBe('python3');
    expect(installs(python.calls)).toEqual([]);
    expect(python.logged).toEqual([]);
    expect(existsSync(path.join(folder, '.venv-moto'))).toBe(false);
  });

  it('python3 without moto: one line on stderr, then .venv-moto/ with the pinned moto[server]==5.2.1, whose python runs moto', async () => {
    const python = pretendPython('no moto');
    expect(await resolveMotoPython(python.options())).toBe(venvPython());
    expect(python.logged).toHaveLength(1);
    expect(python.logged[0]).toContain("python3 has no moto server (ModuleNotFoundError: No module named 'moto')");
    expect(python.logged[0]).toContain(`installing moto[server]==5.2.1 into ${path.join(folder, '.venv-moto')}${path.sep}`);
    const [venv, pip] = installs(python.calls);
    expect(venv?.slice(0, 3)).toEqual(['python3', '-m', 'venv']);
    expect(pip?.[0]).toBe(path.join(venv?.[3] as string, 'bin', 'python'));
    expect(pip?.slice(1, 4)).toEqual(['-m', 'pip', 'install']);
    expect(pip?.at(-1)).toBe('moto[server]==5.2.1');
    expect(await readFile(venvPython(), 'utf8')).toBe('moto 5.2.1');
    // Built elsewhere and renamed: nothing else is left in the folder.
    expect(await readdir(folder)).toEqual(['.venv-moto']);
  });

  it('python3 with a moto older than 5.1.12 gets the virtualenv too', async () => {
    const python = pretendPython('moto 4.2.14');
    expect(await resolveMotoPython(python.options())).toBe(venvPython());
    expect(python.logged[0]).toContain('python3 has moto 4.2.14, older than 5.1.12');
  });

  it('the virtualenv an earlier run created is used as it is: no second install, nothing said', async () => {
    const first = pretendPython('no moto');
    await resolveMotoPython(first.options());
    const second = pretendPython('no moto');
    expect(await resolveMotoPython(second.options())).toBe(venvPython());
    expect(installs(second.calls)).toEqual([]);
    expect(second.logged).toEqual([]);
  });

  it('no python3: one line that says how to get it, and no install attempted', async () => {
    const python = pretendPython('missing');
    const error = await resolveMotoPython(python.options()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MotoNotInstalledError);
    const { message } = error as Error;
    expect(message).not.toContain('\n');
    expect(message).toContain('python3 was not found');
    expect(message).toContain('sudo apt-get install python3 python3-venv');
    expect(message).toContain('https://www.python.org/downloads/');
    expect(installs(python.calls)).toEqual([]);
    expect(python.logged).toEqual([]);
  });

  it('MOTO_PYTHON without moto is an error that names it: the harness installs nothing into a python it was given', async () => {
    const python = pretendPython('moto 5.2.1');
    const interpreter = path.join(folder, 'their-python');
    await writeFile(interpreter, 'no moto');
    await expect(resolveMotoPython(python.options({ env: { MOTO_PYTHON: interpreter } }))).rejects.toThrow(
      `MOTO_PYTHON=${interpreter} has no moto server (ModuleNotFoundError: No module named 'moto'): install it there (${interpreter} -m pip install '${pinnedMoto}')`,
    );
    expect(installs(python.calls)).toEqual([]);

    await writeFile(interpreter, 'moto 5.1.12');
    expect(await resolveMotoPython(python.options({ env: { MOTO_PYTHON: interpreter } }))).toBe(interpreter);
  });

  it('python3 without its venv module: says to install python3-venv, and leaves nothing behind', async () => {
    const python = pretendPython('no moto', { venv: failed('The virtual environment was not created successfully because ensurepip is not available.') });
    await expect(resolveMotoPython(python.options())).rejects.toThrow(
      /^python3 -m venv failed \(The virtual environment was not created successfully because ensurepip is not available\.\): install Python 3 with its venv module \(Debian\/Ubuntu: sudo apt-get install python3 python3-venv/,
    );
    expect(await readdir(folder)).toEqual([]);
  });

  it('pip cannot reach PyPI: says so, and leaves no .venv-moto/ for the next run to trust', async () => {
    const python = pretendPython('no moto', { pip: failed('ERROR: No matching distribution found for moto==5.2.1') });
    await expect(resolveMotoPython(python.options())).rejects.toThrow(
      `pip could not install moto[server]==5.2.1 into ${path.join(folder, '.venv-moto')}${path.sep} (ERROR: No matching distribution found for moto==5.2.1): check the connection to PyPI`,
    );
    expect(await readdir(folder)).toEqual([]);

    const next = pretendPython('no moto');
    expect(await resolveMotoPython(next.options())).toBe(venvPython());
    expect(installs(next.calls)).toHaveLength(2);
  });

  it('two runs that bootstrap at once both get the one working .venv-moto/', async () => {
    const [a, b] = [pretendPython('no moto'), pretendPython('no moto')];
    expect(await Promise.all([resolveMotoPython(a.options()), resolveMotoPython(b.options())])).toEqual([venvPython(), venvPython()]);
    expect(await readdir(folder)).toEqual(['.venv-moto']);
    expect(await readFile(venvPython(), 'utf8')).toBe('moto 5.2.1');
  });

  it('a working .venv-moto/ that another run finished meanwhile is kept (it may be running moto), not replaced', async () => {
    const python = pretendPython('no moto', {
      duringPip: async () => {
        await mkdir(path.join(folder, '.venv-moto', 'bin'), { recursive: true });
        await writeFile(venvPython(), 'moto 5.2.1');
        await writeFile(path.join(folder, '.venv-moto', 'the-other-run'), '');
      },
    });
    expect(await resolveMotoPython(python.options())).toBe(venvPython());
    expect(await readdir(path.join(folder, '.venv-moto'))).toContain('the-other-run');
    expect(await readdir(folder)).toEqual(['.venv-moto']);
  });

  it('a broken .venv-moto/ (its python gone, e.g. after a python upgrade) is replaced', async () => {
    await mkdir(path.join(folder, '.venv-moto', 'bin'), { recursive: true });
    await writeFile(path.join(folder, '.venv-moto', 'pyvenv.cfg'), 'home = /gone');
    const python = pretendPython('no moto');
    expect(await resolveMotoPython(python.options())).toBe(venvPython());
    expect(existsSync(path.join(folder, '.venv-moto', 'pyvenv.cfg'))).toBe(false);
  });
});

// A real bootstrap: python3 -m venv, pip, and a moto server from the new virtualenv. Slow (a venv
// and pip take 20-60 s), so only with CWAP_TEST_MOTO_BOOTSTRAP set:
//   pypi     a fresh virtualenv, moto[server]==5.2.1 downloaded from PyPI;
//   offline  a virtualenv with --system-site-packages and pip --no-index: pip resolves the pin
//            from the moto python3 already has (no network; everything else is real).
const bootstrapMode = process.env.CWAP_TEST_MOTO_BOOTSTRAP;
describe.runIf(bootstrapMode)(`a real bootstrap of .venv-moto (CWAP_TEST_MOTO_BOOTSTRAP=${bootstrapMode})`, () => {
  it('creates the virtualenv, installs the pinned moto, and a moto server started from it answers', async () => {
    if (bootstrapMode !== 'pypi' && bootstrapMode !== 'offline') throw new Error(`CWAP_TEST_MOTO_BOOTSTRAP must be pypi or offline, not ${bootstrapMode}`);
    const logged: string[] = [];
    const directory = path.join(folder, '.venv-moto');
    const python = await resolveMotoPython({
      basePython: 'python3',
      env: {},
      venvDirectory: directory,
      log: (line) => logged.push(line),
      // The stand-in for python3 lacking moto: a python3 that has it would be used as it is.
      run: async (command, args) => {
        if (command === 'python3' && args[0] === '-c') return failed("ModuleNotFoundError: No module named 'moto' (as if)");
        return runCommand(command, args);
      },
      ...(bootstrapMode === 'offline' ? { systemSitePackages: true, pipArguments: ['--no-index'] } : {}),
    });
    expect(python).toBe(path.join(directory, 'bin', 'python'));
    expect(logged).toHaveLength(1);
    const moto = await startMotoServer({ python });
    try {
      const response = await fetch(`${moto.url}/moto-api/`);
      await response.arrayBuffer();
      expect(response.ok).toBe(true);
    } finally {
      await moto.stop();
    }
  }, 600_000);
});
