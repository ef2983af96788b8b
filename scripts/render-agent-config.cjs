'use strict';
// Deploy-time variable source for serverless.yml:
//   Value: ${file(./scripts/render-agent-config.cjs):linux}
// The AmazonCloudWatch-* parameters must hold exactly what the product's own renderer produces, so
// this file renders nothing itself: it calls renderedAgentConfigs() of shared/agent-config.ts with
// the stack's params (overridable with `--param name=value`). Like bin/cw-autopilot.mjs, it loads
// the TypeScript source through tsx when tsx is installed (a developer checkout: never a stale
// build), else the bundle `npm run build` made (dist/agent-config.js), which needs no devDependency.
// CommonJS because osls `require`s variable-source files.

const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

/** A standard-tier SSM parameter holds at most 4 KB; an advanced one costs money. */
const STANDARD_PARAMETER_LIMIT_BYTES = 4096;

/** @type {Record<string, string>} the placeholder value each `param:` feeds, by settings key */
const paramOf = {
  namespace: 'namespace',
  memory: 'memoryMetric',
  disk: 'diskMetric',
  windowsDiskFree: 'windowsDiskFreeMetric',
};

/** @returns {Promise<{ renderedAgentConfigs: (metrics: Record<string, string>) => Record<string, string> }>} */
async function loadRenderer() {
  const source = path.join(__dirname, '..', 'shared', 'agent-config.ts');
  if (fs.existsSync(source)) {
    let tsx;
    try {
      tsx = require('tsx/cjs/api');
    } catch (error) {
      if (error.code !== 'MODULE_NOT_FOUND') throw error;
    }
    if (tsx) return tsx.require(source, __filename);
  }
  const built = path.join(__dirname, '..', 'dist', 'agent-config.js');
  if (!fs.existsSync(built)) {
    throw new Error('agent config: tsx is not installed and dist/agent-config.js is missing: run `npm ci` (or `npm run build`)');
  }
  return import(pathToFileURL(built).href);
}

/**
 * The agent configs rendered with the metric params `resolveVariable('param:<name>')` gives, each
 * checked to fit a standard parameter. Also used by the member stack's generator (deploy/member-stack.cjs).
 */
async function renderAll(resolveVariable) {
  const metrics = {};
  for (const [key, param] of Object.entries(paramOf)) {
    const value = await resolveVariable(`param:${param}`);
    if (typeof value !== 'string' || value.trim() === '') {
      throw new Error(`agent config: param "${param}" must be a non-empty string (got ${JSON.stringify(value)})`);
    }
    metrics[key] = value;
  }
  const { renderedAgentConfigs } = await loadRenderer();
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

module.exports = { linux: source('linux'), windows: source('windows'), escapeForFramework, renderAll };
