// The published JSON Schema of the topic payload (schemas/alert-payload.v1.json), compiled once with
// Ajv, an independent validator: tests check every kind of message the product publishes against it.
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const schemaPath = new URL('../../schemas/alert-payload.v1.json', import.meta.url);

/** The schema as published in the repository. */
export const payloadSchema: Record<string, unknown> = JSON.parse(readFileSync(schemaPath, 'utf8'));

const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats.default(ajv);
const validate = ajv.compile(payloadSchema);

/**
 * What is wrong with a payload by the published schema: one line per violation (`/path message`),
 * none when it conforms.
 *
 * @example
 * expect(payloadViolations(JSON.parse(message.protocols?.sqs ?? ''))).toEqual([]);
 */
export function payloadViolations(payload: unknown): string[] {
  if (validate(payload)) return [];
  return (validate.errors ?? []).map((error) => `${error.instancePath || '/'} ${error.message ?? ''}${error.params ? ` ${JSON.stringify(error.params)}` : ''}`);
}
