'use strict';
// Deploy-time variable source for serverless.yml:
//   Value: ${file(./scripts/render-agent-config.cjs):linux}
// The AmazonCloudWatch-* parameters must hold exactly what the product's own renderer produces, so
// this file renders nothing itself: it loads shared/agent-config.ts through tsx and calls
// renderedAgentConfigs() with the stack's params (overridable with `--param name=value`).
// CommonJS because osls `require`s variable-source files.

const path = require('node:path');
const { require: tsRequire } = require('tsx/cjs/api');

/** A standard-tier SSM parameter holds at most 4 KB; an advanced one costs money. */
const STANDARD_PARAMETER_LIMIT_BYTES = 4096;

/** @type {Record<string, string>} the placeholder value each `param:` feeds, by settings key */
const paramOf = {
  namespace: 'namespace',
  memory: 'memoryMetric',
  disk: 'diskMetric',
  windowsDiskFree: 'windowsDiskFreeMetric',
};

async function renderAll(resolveVariable) {
  const metrics = {};
  for (const [key, param] of Object.entries(paramOf)) {
    const value = await resolveVariable(`param:${param}`);
    if (typeof value !== 'string' || value.trim() === '') {
      throw new Error(`agent config: param "${param}" must be a non-empty string (got ${JSON.stringify(value)})`);
    }
    metrics[key] = value;
  }
  const { renderedAgentConfigs } = tsRequire(path.join(__dirname, '..', 'shared', 'agent-config.ts'), __filename);
  const rendered = renderedAgentConfigs(metrics);
  for (const [os, text] of Object.entries(rendered)) {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > STANDARD_PARAMETER_LIMIT_BYTES) {
      throw new Error(
        `agent config: the rendered ${os} config is ${bytes} bytes, over the ${STANDARD_PARAMETER_LIMIT_BYTES}-byte ` +
          `limit of a standard SSM parameter. Shorten agent-config/${os}.json or the metric params.`,
      );
    }
  }
  return rendered;
}

/**
 * osls parses every resolved string for `${...}` again, and the agent configs contain the agent's
 * own `${aws:InstanceId}` placeholder. A backslash before the `$` is the framework's escape: it
 * comes out of resolution as a plain `$`, so the parameter receives the config unchanged.
 */
function escapeForFramework(text) {
  return text.replace(/\$\{/g, '\\${');
}

// Not cached: osls may call a source before the params it asks for are resolvable (it then retries).
function source(os) {
  return async ({ resolveVariable }) => escapeForFramework((await renderAll(resolveVariable))[os]);
}

module.exports = { linux: source('linux'), windows: source('windows'), escapeForFramework };
