import { InvalidInputError } from '../errors.js';
import * as z from 'zod';
import { parseTagMatch } from '../config/settings.js';
import { describeInputProblems } from '../input/triggers.js';

const tag = z
  .string()
  .trim()
  .min(1, 'an empty tag: expected key=value or key')
  .transform(parseTagMatch);

/**
 * The audit function's input, by hand or from its schedule (which sends `{"publish":true}`). Every
 * field is optional: `{}` audits every running instance of the region. Strict: a key it does not
 * know is refused, naming it, because a dropped one changes what is done (`instanceId` for
 * `instanceIds` would audit, and remediate, every instance; `dryrun` would remediate for real).
 */
const auditRequest = z.strictObject({
  tags: z.array(tag).default([]),
  instanceIds: z.array(z.string().regex(/^i-[0-9a-f]{8,17}$/, 'not an EC2 instance id')).max(200, 'at most 200 instance ids').default([]),
  remediate: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  /** Publish the summary to the stack's SNS topic. */
  publish: z.boolean().default(false),
  /** `problems` (default) leaves healthy rows out of the response, which must stay under 6 MB. */
  rows: z.enum(['problems', 'all']).default('problems'),
});

export type AuditRequest = z.infer<typeof auditRequest>;

/**
 * Reads an audit invocation's input.
 *
 * @example
 * parseAuditRequest({ tags: ['team=web'], remediate: true, dryRun: true });
 */
export function parseAuditRequest(input: unknown): AuditRequest {
  const request = input ?? {};
  const parsed = auditRequest.safeParse(request);
  if (!parsed.success) {
    throw new InvalidInputError(
      `audit: expected { tags?, instanceIds?, remediate?, dryRun?, publish?, rows? }: ${describeInputProblems(parsed.error, request)}`,
    );
  }
  return parsed.data;
}
