import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

// Runs cfn-lint (python, AWS's resource specs) on CloudFormation templates. It is an independent
// check of what the stack would deploy; the template test's own assertions check our intent.

/** How to get cfn-lint, in every message that reports it missing. */
export const cfnLintInstall = 'pip install cfn-lint';

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
 * Lints `files` with the `cfn-lint` found on PATH and returns every finding. cfn-lint's exit code
 * is a bit mask of the finding levels (2 error, 4 warning, 8 informational); 1 means it failed.
 *
 * @example
 * const errors = (await cfnLint([templatePath])).filter((f) => f.level === 'Error');
 */
export async function cfnLint(files: string[], region = 'us-east-1'): Promise<CfnLintFinding[]> {
  if (files.length === 0) throw new Error('cfnLint: no template to lint');
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)('cfn-lint', ['--format', 'json', '--regions', region, '--', ...files], {
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
