'use strict';
// Deploy-time variable source for serverless.yml:
//   DashboardBody: ${file(./scripts/render-dashboard.cjs):body}
// Renders the dashboard with shared/observability/product-dashboard.ts (loaded through tsx) from the stack's own
// function names, metric namespace and audit schedule, as an Fn::Sub so that CloudFormation fills in
// the partition, region and account the stack is deployed to.
// CommonJS because osls `require`s variable-source files.

const path = require('node:path');
const { require: tsRequire } = require('tsx/cjs/api');
const { escapeForFramework } = require('./render-agent-config.cjs');

async function body({ resolveVariable }) {
  const text = async (name) => {
    const value = await resolveVariable(name);
    if (typeof value !== 'string' || value.trim() === '') {
      throw new Error(`dashboard: ${name} must be a non-empty string (got ${JSON.stringify(value)})`);
    }
    return value;
  };
  const { productFunctions, renderProductDashboard } = tsRequire(path.join(__dirname, '..', 'shared', 'observability', 'product-dashboard.ts'), __filename);
  const functionNames = {};
  for (const fn of productFunctions) functionNames[fn] = await text(`self:custom.${fn}FunctionName`);
  const dashboard = renderProductDashboard({
    partition: '${AWS::Partition}',
    region: '${AWS::Region}',
    accountId: '${AWS::AccountId}',
    prefix: await text('self:custom.prefix'),
    namespace: await text('self:provider.environment.POWERTOOLS_METRICS_NAMESPACE'),
    functionNames,
    auditSchedule: (await resolveVariable('param:auditSchedule')) || '',
  });
  return { 'Fn::Sub': escapeForFramework(JSON.stringify(dashboard)) };
}

module.exports = { body };
