import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ajvDraft04, { type ErrorObject, type ValidateFunction } from 'ajv-draft-04';

// ajv ships CommonJS; under NodeNext its class is the module's `default` export.
const Ajv = ajvDraft04.default;

// The CloudWatch agent's own config schema (aws/amazon-cloudwatch-agent,
// translator/config/schema.json), kept beside the repo in ../shared/vendor and not copied into it:
// an independent judge of what the agent accepts, not our restatement of it.

const repo = fileURLToPath(new URL('../../', import.meta.url));

/** Where the vendored schema lives: `../shared/vendor/` next to the repo root, in any clone. */
export const agentConfigSchemaPath = path.resolve(repo, '..', 'shared', 'vendor', 'amazon-cloudwatch-agent-schema.json');

/** Whether the schema is there; without it the schema tests are skipped and say why. */
export const agentConfigSchemaAvailable = existsSync(agentConfigSchemaPath);

let validate: ValidateFunction | undefined;

/** Reads and compiles the schema once (about a second); later calls reuse it. */
export function agentConfigSchemaValidator(): ValidateFunction {
  if (validate) return validate;
  const schema = JSON.parse(readFileSync(agentConfigSchemaPath, 'utf8')) as { $schema?: string };
  if (schema.$schema !== 'http://json-schema.org/draft-04/schema#') {
    throw new Error(`${agentConfigSchemaPath}: expected a draft-04 schema, got $schema ${String(schema.$schema)}`);
  }
  // strict off: ajv's strict mode lints the schema's authoring (the agent's schema has an unknown
  // keyword "descriptions", a metrics_collection_interval outside "properties" in
  // nvidiaGpuDefinitions, type-less minItems), and JSON Schema ignores unknown keywords anyway.
  // It changes nothing about which configs are valid.
  const compiled = new Ajv({ allErrors: true, strict: false }).compile(schema);
  validate = compiled;
  return compiled;
}

const describeError = (error: ErrorObject): string =>
  `${error.instancePath || '/'} ${error.message ?? error.keyword}` +
  (error.keyword === 'additionalProperties' ? ` (${String(error.params.additionalProperty)})` : '');

/**
 * The schema's complaints about an agent config, one readable line each (empty: valid).
 *
 * @example
 * expect(agentConfigSchemaErrors(JSON.parse(rendered))).toEqual([]);
 */
export function agentConfigSchemaErrors(config: unknown): string[] {
  const check = agentConfigSchemaValidator();
  return check(config) ? [] : (check.errors ?? []).map(describeError);
}
