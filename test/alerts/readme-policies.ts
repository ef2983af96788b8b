import type { FilterPolicy } from '../harness/sns-filter-policy.js';

/** The subscription filter policies the README shows ("How to read an alert"), by what they are for. */
export const readmePolicies = {
  'alerts for the on-call': { event: ['alert'], severity: ['critical', 'warning'] },
  'everything the product publishes': { schemaVersion: [{ exists: true }] },
  'Windows alerts but ssm-offline': { event: ['alert'], os: ['windows'], diagnosis: [{ 'anything-but': ['ssm-offline'] }] },
  'audit summaries': { event: ['audit-summary'] },
} satisfies Record<string, FilterPolicy>;
