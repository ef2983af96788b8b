import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** A running moto server. */
export interface MotoServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Stops the server (and its process group). Safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startMotoServer}; every one has a default. */
export interface MotoServerOptions {
  /**
   * Python interpreter with moto installed, used as is. Default: `$MOTO_PYTHON`, else the one
   * {@link resolveMotoPython} finds (python3, or the project's `.venv-moto/`, which it creates
   * when python3 has no moto).
   */
  python?: string;
  /** Port to listen on. Default: a free port chosen by the OS. */
  port?: number;
  /**
   * `small` (default): a few Linux and Windows images of moto's catalogue, so that the EC2 backend
   * rebuilds fast after each reset; `all`: moto's full catalogue.
   */
  images?: 'small' | 'all';
  /**
   * AWS managed IAM policies to load: {@link commonManagedPolicies} (default) or `all` (~1500,
   * which adds ~1.5 s to the first call after every reset).
   */
  managedPolicies?: readonly string[] | 'all';
  /** How long to wait for the server to answer. Default 30 s. */
  startTimeoutMs?: number;
}

/** Raised when no usable moto can be found or installed; the message says how to get it. */
export class MotoNotInstalledError extends Error {
  override name = 'MotoNotInstalledError';

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    // What the machine lacks, not where the harness noticed it: vitest's globalSetup and the demo
    // print the one line without a stack.
    this.stack = `${this.name}: ${message}`;
  }
}

/**
 * The AWS managed policies moto loads by default: the two the agent role needs, and a few a
 * workload's own role typically carries. Pass `managedPolicies: 'all'` for moto's full catalogue.
 */
export const commonManagedPolicies = [
  'CloudWatchAgentServerPolicy',
  'AmazonSSMManagedInstanceCore',
  'CloudWatchAgentAdminPolicy',
  'AmazonSSMManagedEC2InstanceDefaultPolicy',
  'AmazonEC2RoleforSSM',
  'AmazonS3ReadOnlyAccess',
  'AmazonEC2ReadOnlyAccess',
  'AmazonDynamoDBReadOnlyAccess',
  'AmazonSSMReadOnlyAccess',
  'CloudWatchReadOnlyAccess',
  'CloudWatchFullAccess',
  'ReadOnlyAccess',
  'PowerUserAccess',
  'AdministratorAccess',
] as const;

// The launcher runs moto.server in this one python process (werkzeug, no reloader) and:
// - exits by itself when its parent goes away (parent pid changes), so a vitest killed with
//   SIGKILL, or interrupted before its teardown ran, leaves no python behind;
// - trims two start-up catalogues, because moto rebuilds every backend lazily after each reset
//   (once per test) and these made the first call of every test take ~2 s:
//   CWAP_MOTO_MANAGED_POLICIES (comma-separated names): IAM parses all ~1500 AWS managed policies
//   once per partition; CWAP_MOTO_AMIS=small: EC2 loads a handful of images of its own catalogue
//   (same ids) instead of ~1200.
const launcher = `
import os, sys, threading, time, runpy
# The parent's pid comes from the parent: it may die before this line runs.
parent = int(os.environ.get("CWAP_PARENT_PID") or os.getppid())
def watch_parent():
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)
threading.Thread(target=watch_parent, daemon=True).start()
if os.environ.get("CWAP_MOTO_AMIS") == "small":
    try:
        import moto.ec2.models.amis as amis
        from moto.utilities.utils import load_resource
        keep = ("Windows_Server-2016-English-Full-Base", "Windows_Server-2019-English-Core-EKS", "RHEL-7.4",
                "ubuntu/images/hvm-ssd/ubuntu-xenial", "al2023-ami-2023", "amzn2-ami-hvm-2.0")
        latest = load_resource(amis.__name__, "../resources/latest_amis/us-east-1.json")
        amis.AMIS[:] = [a for a in list(amis.AMIS) + list(latest) if a.get("name", "").startswith(keep)]
        # moto loads AMIS alone (no per-region "latest" images) when MOTO_AMIS_PATH is set.
        os.environ["MOTO_AMIS_PATH"] = "(selected in-process by the cw-agent-autopilot test harness)"
    except Exception as error:
        print("moto launcher: keeping the full AMI catalogue:", error, file=sys.stderr)
policies = os.environ.get("CWAP_MOTO_MANAGED_POLICIES", "all")
if policies != "all":
    try:
        import json
        import moto.iam.models as iam_models
        wanted = set(policies.split(","))
        catalogue = json.loads(iam_models.aws_managed_policies_data)
        iam_models.aws_managed_policies_data = json.dumps({k: v for k, v in catalogue.items() if k in wanted})
    except Exception as error:
        print("moto launcher: keeping every AWS managed policy:", error, file=sys.stderr)
sys.argv = ["moto.server"] + sys.argv[1:]
runpy.run_module("moto.server", run_name="__main__")
`;

/** Asks the OS for a free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/** What a command did: exit status and output, or `missing` when the executable does not exist. */
export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
  missing: boolean;
}

/** Runs a command to completion. {@link resolveMotoPython} takes one, so tests can stand in for python. */
export type CommandRunner = (command: string, args: readonly string[]) => Promise<CommandResult>;

/** Runs the command with its output captured (never through a shell). */
export const runCommand: CommandRunner = (command, args) =>
  new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ status: null, stdout, stderr: stderr || error.message, missing: error.code === 'ENOENT' }),
    );
    child.once('close', (status) => resolve({ status, stdout, stderr, missing: false }));
  });

/** The moto the harness installs when python3 has none: the version the suite is known to pass with. */
export const pinnedMoto = 'moto[server]==5.2.1';
/** The oldest moto the harness runs with (older ones lack APIs the suite uses). */
export const minimumMotoVersion = '5.1.12';

/** The project-local virtualenv (gitignored) the harness creates when python3 has no moto. */
export const defaultMotoVenv = fileURLToPath(new URL('../../.venv-moto', import.meta.url));

/** How a python tool the tests need is set up in a project-local virtualenv; every field has a default. */
export interface PythonToolSetup {
  /** The python that creates the virtualenv (and, for moto, runs it when it has moto). Default `python3`. */
  basePython?: string;
  /** Where the virtualenv goes. Default: the tool's own folder (`.venv-moto/`, `.venv-cfn-lint/`). */
  venvDirectory?: string;
  /** Create the virtualenv with `--system-site-packages` (the offline bootstrap tests). Default false. */
  systemSitePackages?: boolean;
  /** Extra `pip install` arguments, e.g. `--no-index`. Default none. */
  pipArguments?: readonly string[];
  /** Default {@link runCommand}. */
  run?: CommandRunner;
  /** Where the one line about a bootstrap goes. Default stderr. */
  log?: (line: string) => void;
}

/** Options of {@link resolveMotoPython}; every one has a default. */
export interface MotoPythonOptions extends PythonToolSetup {
  /** An interpreter to use as is, never bootstrapped: an error if it lacks moto. Default `$MOTO_PYTHON`. */
  python?: string;
  /** The environment `MOTO_PYTHON` is read from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

type MotoProbe = { found: 'no-python' } | { found: 'no-moto'; reason: string } | { found: 'moto'; version: string; recentEnough: boolean };

function isAtLeast(version: string, minimum: string): boolean {
  const parts = (text: string) => text.split('.').map((part) => Number.parseInt(part, 10) || 0);
  const [have, want] = [parts(version), parts(minimum)];
  for (let i = 0; i < want.length; i += 1) {
    if ((have[i] ?? 0) !== (want[i] ?? 0)) return (have[i] ?? 0) > (want[i] ?? 0);
  }
  return true;
}

function lastLine(result: CommandResult): string {
  return (result.stderr || result.stdout).trim().split('\n').at(-1)?.trim() ?? '';
}

async function probeMoto(run: CommandRunner, python: string): Promise<MotoProbe> {
  // moto.server too: moto without its [server] extra imports, but cannot serve.
  const result = await run(python, ['-c', 'import moto, moto.server; print(moto.__version__)']);
  if (result.missing) return { found: 'no-python' };
  if (result.status !== 0) return { found: 'no-moto', reason: lastLine(result) || 'import moto.server failed' };
  const version = result.stdout.trim().split('\n').at(-1)?.trim() ?? '';
  return { found: 'moto', version, recentEnough: isAtLeast(version, minimumMotoVersion) };
}

function venvPython(directory: string): string {
  return process.platform === 'win32' ? path.join(directory, 'Scripts', 'python.exe') : path.join(directory, 'bin', 'python');
}

const getPython =
  'install Python 3 with its venv module (Debian/Ubuntu: sudo apt-get install python3 python3-venv; macOS: brew install python; or https://www.python.org/downloads/)';

/**
 * The python that runs moto's server, set up if need be, in this order:
 * 1. `$MOTO_PYTHON` (or `options.python`), as is: an error if it has no moto;
 * 2. `python3`, when it has moto {@link minimumMotoVersion} or newer;
 * 3. the project's virtualenv `.venv-moto/`, when an earlier run created it;
 * 4. otherwise a new `.venv-moto/` with {@link pinnedMoto} from PyPI (one line on stderr says so).
 * Throws {@link MotoNotInstalledError}, with what to do, when python3 is missing or the install fails.
 *
 * @example
 * const python = await resolveMotoPython(); // 'python3', or '<repo>/.venv-moto/bin/python'
 */
export async function resolveMotoPython(options: MotoPythonOptions = {}): Promise<string> {
  const run = options.run ?? runCommand;
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const explicit = options.python ?? (options.env ?? process.env).MOTO_PYTHON;
  if (explicit) {
    const probe = await probeMoto(run, explicit);
    if (probe.found === 'moto' && probe.recentEnough) return explicit;
    const problem =
      probe.found === 'no-python' ? 'was not found' : probe.found === 'no-moto' ? `has no moto server (${probe.reason})` : `has moto ${probe.version}, older than ${minimumMotoVersion}`;
    throw new MotoNotInstalledError(
      `MOTO_PYTHON=${explicit} ${problem}: install it there (${explicit} -m pip install '${pinnedMoto}'), or unset MOTO_PYTHON to let the harness set up .venv-moto/`,
    );
  }

  const base = options.basePython ?? 'python3';
  const system = await probeMoto(run, base);
  if (system.found === 'moto' && system.recentEnough) return base;
  const directory = options.venvDirectory ?? defaultMotoVenv;
  const venv = await probeMoto(run, venvPython(directory));
  if (venv.found === 'moto' && venv.recentEnough) return venvPython(directory);
  if (system.found === 'no-python') {
    throw new MotoNotInstalledError(`The tests and the demo run moto, a Python AWS emulator, and ${base} was not found: ${getPython}, then run again.`);
  }

  const why = system.found === 'no-moto' ? `${base} has no moto server (${system.reason})` : `${base} has moto ${system.version}, older than ${minimumMotoVersion}`;
  await installIntoNewVenv({
    base,
    directory,
    requirement: pinnedMoto,
    why,
    systemSitePackages: options.systemSitePackages,
    pipArguments: options.pipArguments,
    run,
    log,
    works: async (python) => {
      const there = await probeMoto(run, python);
      return there.found === 'moto' && there.recentEnough;
    },
    fail: (message) => new MotoNotInstalledError(`${message}, or install moto yourself and set MOTO_PYTHON to that python`),
  });
  return venvPython(directory);
}

/** Options of {@link installIntoNewVenv}. */
export interface VenvInstall {
  /** The python that creates the virtualenv. */
  base: string;
  /** Where the virtualenv goes (replaced when the one there does not `works`). */
  directory: string;
  /** The pinned pip requirement, e.g. `moto[server]==5.2.1`. */
  requirement: string;
  /** Why it is installed, for the one line on stderr. */
  why: string;
  systemSitePackages?: boolean | undefined;
  pipArguments?: readonly string[] | undefined;
  run: CommandRunner;
  log: (line: string) => void;
  /** Whether the virtualenv whose python is given has what it is for. */
  works: (python: string) => Promise<boolean>;
  /** The error to throw, from a message saying what failed. */
  fail: (message: string) => Error;
}

/** The python of a virtualenv. */
export function venvPythonOf(directory: string): string {
  return venvPython(directory);
}

/**
 * Creates a project-local virtualenv with one pinned requirement from PyPI, saying so in one line.
 * It is built beside its final place and renamed into it: an interrupted or concurrent bootstrap
 * never leaves a half-installed virtualenv that a later run would take for a working one (the
 * scripts pip writes into bin/ name the build folder; callers run `python -m <module>`).
 */
export async function installIntoNewVenv(install: VenvInstall): Promise<void> {
  const { base, directory, run } = install;
  const relative = path.relative(process.cwd(), directory);
  const shown = relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : directory;
  install.log(`${install.requirement.replace(/[[=].*$/, '')}: ${install.why}; installing ${install.requirement} into ${shown}${path.sep} (once; needs PyPI, about a minute)`);
  const building = `${directory}.building-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    const created = await run(base, ['-m', 'venv', ...(install.systemSitePackages ? ['--system-site-packages'] : []), building]);
    if (created.status !== 0) {
      throw install.fail(`${base} -m venv failed (${lastLine(created)}): ${getPython}, or ${base} -m pip install '${install.requirement}' yourself`);
    }
    const installed = await run(venvPython(building), [
      '-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--quiet', ...(install.pipArguments ?? []), install.requirement,
    ]);
    if (installed.status !== 0) {
      throw install.fail(`pip could not install ${install.requirement} into ${shown}${path.sep} (${lastLine(installed)}): check the connection to PyPI (or PIP_INDEX_URL)`);
    }
    try {
      await rename(building, directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // Another run may have finished first: its virtualenv is as good as this one (and may be in
      // use). What was there before is broken (it was probed before): replace it.
      if (!(await install.works(venvPython(directory)))) {
        await rm(directory, { recursive: true, force: true });
        await rename(building, directory);
      }
    }
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  if (!(await install.works(venvPython(directory)))) {
    throw install.fail(`${install.requirement} was installed into ${shown}${path.sep}, but its python cannot run it: delete ${shown}${path.sep} and run again`);
  }
}

async function waitUntilAnswering(url: string, child: ChildProcess, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`moto server exited (${child.exitCode ?? child.signalCode}) before answering:\n${output()}`);
    }
    try {
      const response = await fetch(`${url}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`moto server did not answer at ${url} within ${timeoutMs} ms:\n${output()}`);
}

const running = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: a SIGKILL to the group is.
  process.on('exit', () => {
    for (const child of running) killGroup(child, 'SIGKILL');
  });
}

/**
 * Starts `python3 -m moto.server` on a free port with AWS managed IAM policies loaded
 * (`MOTO_IAM_LOAD_MANAGED_POLICIES=true`) and waits until it answers.
 *
 * @example
 * const moto = await startMotoServer();
 * // ... AWS_ENDPOINT_URL = moto.url ...
 * await moto.stop();
 */
export async function startMotoServer(options: MotoServerOptions = {}): Promise<MotoServer> {
  const python = await resolveMotoPython(options.python ? { python: options.python } : {});
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;

  const child = spawn(python, ['-c', launcher, '-H', '127.0.0.1', '-p', String(port)], {
    // Its own process group, so stop() can kill the whole tree with one signal.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      MOTO_IAM_LOAD_MANAGED_POLICIES: 'true',
      CWAP_PARENT_PID: String(process.pid),
      CWAP_MOTO_AMIS: options.images ?? 'small',
      CWAP_MOTO_MANAGED_POLICIES:
        options.managedPolicies === 'all' ? 'all' : (options.managedPolicies ?? commonManagedPolicies).join(','),
      PYTHONUNBUFFERED: '1',
      // moto must never be configured to pass calls through to real AWS.
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_DEFAULT_REGION: 'us-east-1',
    },
  });
  running.add(child);
  installExitHook();

  // Keep the last lines of output for error messages; werkzeug logs every request.
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (tail.length > 40) tail.splice(0, tail.length - 40);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => running.delete(child));

  try {
    await waitUntilAnswering(url, child, options.startTimeoutMs ?? 30_000, () => tail.join('\n'));
  } catch (error) {
    killGroup(child, 'SIGKILL');
    throw error;
  }

  let stopping: Promise<void> | undefined;
  return {
    url,
    stop() {
      stopping ??= (async () => {
        killGroup(child, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
        child.stdout?.destroy();
        child.stderr?.destroy();
      })();
      return stopping;
    },
  };
}

/** Empties every moto backend (POST /moto-api/reset). */
export async function resetMoto(motoUrl: string): Promise<void> {
  const response = await fetch(`${motoUrl}/moto-api/reset`, { method: 'POST' });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`moto reset failed: HTTP ${response.status}`);
}

/**
 * Seeds moto's random generator (`POST /moto-api/seed`): the resource ids it makes next follow
 * from the seed, so seeding twice before two launches in two accounts gives both instances the
 * same id, as two accounts' instances may have.
 */
export async function seedMoto(motoUrl: string, seed: number): Promise<void> {
  const response = await fetch(`${motoUrl}/moto-api/seed?a=${seed}`, { method: 'POST' });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`moto seed failed: HTTP ${response.status}`);
}
