import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { installIntoNewVenv, runCommand, venvPythonOf, type PythonToolSetup } from '../harness/moto-server.js';

// Runs cfn-lint (python, AWS's resource specs) on CloudFormation templates. It is an independent
// check of what the stack would deploy; the template test's own assertions check our intent.

/** How to get cfn-lint, in every message that reports it missing. */
export const cfnLintInstall = 'pip install cfn-lint';

/** The cfn-lint the tests install when none is on PATH: the version the template is known to lint clean with. */
export const pinnedCfnLint = 'cfn-lint==1.51.0';

/** The project-local virtualenv (gitignored) the tests create when no cfn-lint is on PATH. */
export const defaultCfnLintVenv = fileURLToPath(new URL('../../.venv-cfn-lint', import.meta.url));

/** Options of {@link resolveCfnLint}: the virtualenv defaults to {@link defaultCfnLintVenv}. */
export type CfnLintSetup = PythonToolSetup;

/** How to run cfn-lint: an executable and the arguments before cfn-lint's own. */
export interface CfnLintCommand {
  command: string;
  prefix: string[];
}

/**
 * The cfn-lint to run, set up if need be, as the harness sets up moto: `cfn-lint` on PATH; else the
 * project's `.venv-cfn-lint/` from an earlier run; else a new `.venv-cfn-lint/` with
 * {@link pinnedCfnLint} from PyPI (one line on stderr says so). Throws
 * {@link CfnLintUnavailableError}, saying what to do, when python3 is missing or pip fails.
 *
 * @example
 * const { command, prefix } = await resolveCfnLint(); // { command: 'cfn-lint', prefix: [] } when it is on PATH
 */
export async function resolveCfnLint(options: CfnLintSetup = {}): Promise<CfnLintCommand> {
  const run = options.run ?? runCommand;
  const onPath = await run('cfn-lint', ['--version']);
  if (!onPath.missing && onPath.status === 0) return { command: 'cfn-lint', prefix: [] };
  const directory = options.venvDirectory ?? defaultCfnLintVenv;
  const python = venvPythonOf(directory);
  const works = async (candidate: string) => (await run(candidate, [...viaPython, '--version'])).status === 0;
  if (await works(python)) return { command: python, prefix: viaPython };
  const base = options.basePython ?? 'python3';
  const probe = await run(base, ['--version']);
  if (probe.missing) {
    throw new CfnLintUnavailableError(`cfn-lint is not on PATH and ${base} was not found to install it: install Python 3 with its venv module, or ${cfnLintInstall}`);
  }
  await installIntoNewVenv({
    base,
    directory,
    requirement: pinnedCfnLint,
    why: 'not on PATH',
    systemSitePackages: options.systemSitePackages,
    pipArguments: options.pipArguments,
    run,
    log: options.log ?? ((line: string) => void process.stderr.write(`${line}\n`)),
    works,
    fail: (message) => new CfnLintUnavailableError(`${message}, or ${cfnLintInstall}`),
  });
  return { command: python, prefix: viaPython };
}

// cfn-lint's console script (`cfn-lint = cfnlint.runner:main`), run through the virtualenv's python:
// the scripts pip writes into bin/ name the folder the virtualenv was built in, before its rename.
const viaPython = ['-c', "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())"];

/** One finding of cfn-lint's `--format json` output, reduced to what a test reports. */
export interface CfnLintFinding {
  /** `Error`, `Warning` or `Informational`. */
  level: string;
  /** Rule id, e.g. `E3027`. */
  rule: string;
  /** Where in the template, e.g. `Resources/AuditScheduleRule/Properties/ScheduleExpression`. */
  path: string;
  message: string;
  file: string;
}

interface RawFinding {
  Level: string;
  Rule: { Id: string };
  Location: { Path?: (string | number)[] };
  Message: string;
  Filename: string;
}

/** Thrown when cfn-lint cannot be run at all (not installed, or it crashed). */
export class CfnLintUnavailableError extends Error {
  override readonly name = 'CfnLintUnavailableError';
}

/**
 * Lints `files` with the cfn-lint {@link resolveCfnLint} finds (or sets up) and returns every finding. cfn-lint's exit code
 * is a bit mask of the finding levels (2 error, 4 warning, 8 informational); 1 means it failed.
 *
 * @example
 * const errors = (await cfnLint([templatePath])).filter((f) => f.level === 'Error');
 */
export async function cfnLint(files: string[], region = 'us-east-1', setup?: CfnLintSetup): Promise<CfnLintFinding[]> {
  if (files.length === 0) throw new Error('cfnLint: no template to lint');
  const { command, prefix } = await resolveCfnLint(setup);
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(command, [...prefix, '--format', 'json', '--regions', region, '--', ...files], {
      maxBuffer: 16 * 1024 * 1024,
    }));
  } catch (error) {
    const failed = error as NodeJS.ErrnoException & { code?: string | number; stdout?: string; stderr?: string };
    if (failed.code === 'ENOENT') {
      throw new CfnLintUnavailableError(`cfn-lint is not installed (no cfn-lint on PATH): ${cfnLintInstall}`, { cause: error });
    }
    // Any other bit (1: an exception, 32: bad arguments...) means cfn-lint did not lint.
    if (typeof failed.code !== 'number' || (failed.code & ~0b1110) !== 0) {
      throw new CfnLintUnavailableError(
        `cfn-lint failed (exit ${String(failed.code)}): ${failed.stderr || failed.message}\nIf it is not installed: ${cfnLintInstall}`,
        { cause: error },
      );
    }
    stdout = failed.stdout ?? '';
  }
  return (JSON.parse(stdout) as RawFinding[]).map((raw) => ({
    level: raw.Level,
    rule: raw.Rule.Id,
    path: (raw.Location.Path ?? []).join('/'),
    message: raw.Message,
    file: raw.Filename,
  }));
}

/** The CloudFormation templates `osls package` wrote into `directory` (update and create stack). */
export function packagedTemplates(directory: string): string[] {
  return readdirSync(directory)
    .filter((name) => /^cloudformation-template-.+\.json$/.test(name))
    .map((name) => path.join(directory, name));
}

const skippedDirectories = new Set(['node_modules', '.git', '.serverless', '.esbuild', '.bench', 'dist', 'coverage']);

/**
 * Every file under `root` that is a CloudFormation template on its own (JSON or YAML with a
 * top-level `AWSTemplateFormatVersion` or `Resources`): serverless.yml is not one, its
 * `resources:` block is merged into the packaged template.
 */
export function cloudFormationTemplatesUnder(root: string): string[] {
  const found: string[] = [];
  const visit = (directory: string): void => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const full = path.join(directory, entry.name);
      if (entry.isDirectory()) {
        if (!skippedDirectories.has(entry.name)) visit(full);
      } else if (/\.(json|ya?ml|template)$/.test(entry.name) && isCloudFormationTemplate(readFileSync(full, 'utf8'))) {
        found.push(full);
      }
    }
  };
  visit(root);
  return found.sort();
}

function isCloudFormationTemplate(text: string): boolean {
  if (/^(AWSTemplateFormatVersion|Resources)\s*:/m.test(text)) return true;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && ('AWSTemplateFormatVersion' in parsed || 'Resources' in parsed);
  } catch {
    return false;
  }
}
