import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A running moto server. */
export interface MotoServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Stops the server (and its process group). Safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startMotoServer}; every one has a default. */
export interface MotoServerOptions {
  /** Python interpreter with moto installed. Default: `$MOTO_PYTHON` or `python3`. */
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

/** Raised when python3 or moto[server] is not there, with the command that fixes it. */
export class MotoNotInstalledError extends Error {
  override name = 'MotoNotInstalledError';
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

const installHint = "pip install 'moto[server]>=5.1.12'";

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

function checkMotoInstalled(python: string): void {
  const probe = spawnSync(python, ['-c', 'import moto, moto.server; print(moto.__version__)'], {
    encoding: 'utf8',
  });
  if (probe.error && (probe.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new MotoNotInstalledError(
      `The integration tests need python3 with moto: "${python}" was not found. Install Python 3, then: ${installHint}`,
    );
  }
  if (probe.status !== 0) {
    const reason = (probe.stderr || probe.stdout || '').trim().split('\n').slice(-1)[0] ?? '';
    throw new MotoNotInstalledError(
      `The integration tests need moto's server in "${python}" (${reason || 'import moto.server failed'}). Install it with: ${installHint}`,
    );
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
  const python = options.python ?? process.env.MOTO_PYTHON ?? 'python3';
  checkMotoInstalled(python);
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
