import { Writable } from 'node:stream';
import { main } from '../../cli/cw-autopilot.js';

/** What one run of the CLI printed, and its exit code. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

function capture(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

/**
 * Runs the CLI's `main` in this process (its AWS clients are this process's), with stdout and stderr
 * captured and an empty environment of its own.
 *
 * @example
 * const { code, stderr } = await runCli(['status', 'i-0123456789abcdef0', '--stage', 'test']);
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const stdout = capture();
  const stderr = capture();
  const code = await main(argv, { stdout: stdout.stream, stderr: stderr.stream, env });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}
