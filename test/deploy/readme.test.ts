import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { parseDocument, type Tags } from 'yaml';
import { productMetricNames } from '../../shared/observability/product-metrics.js';

// The README is what a reviewer reads instead of serverless.yml and the code: these tests hold the
// parts of it that restate them (the roles' permissions, the state record's fields) to the source.

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
const readme = read('README.md');

interface Statement {
  Action: string | string[];
}
interface Resource {
  Type: string;
  Properties: {
    AssumeRolePolicyDocument?: unknown;
    ManagedPolicyArns?: (string | { 'Fn::Sub': string })[];
    Policies?: { PolicyDocument: { Statement: Statement[] } }[];
    PolicyDocument?: { Statement: Statement[] };
    Roles?: unknown[];
    TimeToLiveSpecification?: { AttributeName: string; Enabled: boolean };
    AlarmName?: string;
  };
}

// CloudFormation short tags (!Ref, !Sub, !GetAtt...) read as plain values: only names and actions matter.
const cfnTags: Tags = ['!Ref', '!Sub', '!GetAtt', '!Not', '!Equals', '!Or', '!And', '!If', '!Split', '!Condition'].map((tag) => ({ tag, resolve: (value: unknown) => value }));
const agentResources = createRequire(import.meta.url)('../../deploy/agent-resources.cjs') as Record<string, unknown>;

/**
 * serverless.yml's value with every `${file(./deploy/agent-resources.cjs):path}` replaced by what
 * the module holds there (its `${self:...}` variables left as text), as osls reads it.
 */
function withSharedDefinitions(value: unknown): unknown {
  if (typeof value === 'string') {
    const address = /^\$\{file\(\.\/deploy\/agent-resources\.cjs\):([\w.]+)\}$/.exec(value)?.[1];
    if (!address) return value;
    return address.split('.').reduce<any>((found, key) => found?.[key], agentResources) ?? value;
  }
  if (Array.isArray(value)) return value.map(withSharedDefinitions);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withSharedDefinitions(v)]));
  return value;
}

// `resources` is a list of fragments osls merges; no two of ours define the same resource.
const fragments = withSharedDefinitions(
  (parseDocument(read('serverless.yml'), { customTags: cfnTags }).toJS() as { resources: unknown[] }).resources,
) as { Resources?: Record<string, Resource> }[];
const resources: Record<string, Resource> = Object.assign({}, ...fragments.map((fragment) => fragment.Resources ?? {}));

/** The text of a README section: from its heading to the next heading of the same or a higher level. */
function section(text: string, heading: string): string {
  const level = /^#+/.exec(heading)?.[0].length ?? 0;
  const lines = text.split('\n');
  const start = lines.indexOf(heading);
  if (start < 0) throw new Error(`README has no heading "${heading}"`);
  const end = lines.findIndex((line, i) => i > start && /^#+ /.test(line) && (/^#+/.exec(line)?.[0].length ?? 0) <= level);
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

/** The backticked IAM actions (`service:Action`) in a text. */
function actionsIn(text: string): Set<string> {
  return new Set([...text.matchAll(/`([a-z0-9-]+:[A-Za-z]+)`/g)].map((match) => match[1] as string));
}

/** The actions column of the tables in a text: what the README says a role is granted. */
function tabledActions(text: string): Set<string> {
  const rows = text.split('\n').filter((line) => line.startsWith('|') && !line.startsWith('|---'));
  return new Set(rows.flatMap((row) => [...actionsIn(row.split('|')[2] ?? '')]));
}

/** The actions of a role's inline policies and of the AWS::IAM::Policy resources attached to it (whatever their condition). */
function grantedActions(role: string): Set<string> {
  const policies = resources[role]?.Properties.Policies;
  if (!policies) throw new Error(`serverless.yml has no inline policies on ${role}`);
  const attached = Object.values(resources)
    .filter((resource) => resource.Type === 'AWS::IAM::Policy' && JSON.stringify(resource.Properties.Roles) === JSON.stringify([role]))
    .map((resource) => ({ PolicyDocument: resource.Properties.PolicyDocument! }));
  return new Set([...policies, ...attached].flatMap((policy) => policy.PolicyDocument.Statement.flatMap((statement) => [statement.Action].flat())));
}

const securityModel = section(readme, '## Security model');
/** What the section says of every function's role (its own log group), before the per-role tables. */
const everyFunctionRole = section(securityModel, '### What each function may do in the account').split('\n#### ')[0] ?? '';
const roleSections: Record<string, string> = {
  OnboardRole: '#### `onboard` (`OnboardRole`)',
  CheckRole: '#### `check` (`CheckRole`)',
  OffboardRole: '#### `offboard` (`OffboardRole`)',
  AuditRole: '#### `audit` (`AuditRole`)',
  SchedulerTargetRole: '#### The scheduler role (`SchedulerTargetRole`) and the agent role (`AgentRole`)',
};

describe('the README security model', () => {
  it('covers every IAM role the stack creates', () => {
    const roles = Object.entries(resources).filter(([, resource]) => resource.Type === 'AWS::IAM::Role').map(([name]) => name);
    expect(roles.sort()).toEqual([...Object.keys(roleSections), 'AgentRole'].sort());
  });

  for (const [role, heading] of Object.entries(roleSections)) {
    it(`names every action ${role} is granted, and tables none it is not`, () => {
      const text = section(securityModel, heading);
      const granted = grantedActions(role);
      const named = actionsIn(role === 'SchedulerTargetRole' ? text : `${everyFunctionRole}\n${text}`);
      expect([...granted].filter((action) => !named.has(action))).toEqual([]);
      expect([...tabledActions(text)].filter((action) => !granted.has(action))).toEqual([]);
    });
  }

  it('names the managed policies of the agent role', () => {
    const text = section(securityModel, roleSections.SchedulerTargetRole as string);
    const policies = (resources.AgentRole?.Properties.ManagedPolicyArns ?? [])
      .map((arn) => (typeof arn === 'string' ? arn : arn['Fn::Sub']))
      .map((arn) => arn.slice(arn.lastIndexOf('/') + 1));
    expect(policies).toEqual(['CloudWatchAgentServerPolicy', 'AmazonSSMManagedInstanceCore']);
    for (const policy of policies) expect(text).toContain(`\`${policy}\``);
  });
});

describe('the README state table', () => {
  it('lists each attribute of the instance record once, and the TTL attribute', () => {
    const source = read('shared/state/instance-record.ts');
    const body = /export interface OnboardingRecord \{\n([\s\S]*?)\n\}/.exec(source)?.[1];
    if (!body) throw new Error('shared/state/instance-record.ts has no OnboardingRecord interface');
    const fields = [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((match) => match[1] as string);
    const ttl = resources.StateTable?.Properties.TimeToLiveSpecification;
    expect(ttl?.Enabled).toBe(true);
    // The key is named above the table, not in it.
    const expected = new Set([...fields, ttl?.AttributeName as string]);
    expected.delete('recordKey');

    const rows = section(readme, '### The state table')
      .split('\n')
      .filter((line) => line.startsWith('| `'));
    const listed = rows.flatMap((row) => [...(row.split('|')[1] ?? '').matchAll(/`(\w+)`/g)].map((match) => match[1] as string));
    expect(listed.filter((name, i) => listed.indexOf(name) !== i)).toEqual([]);
    expect([...listed].sort()).toEqual([...expected].sort());
  });
});

describe('the README on the product\'s own monitoring', () => {
  const metricsSection = section(readme, "## The product's own metrics");

  it('tables every product metric', () => {
    const table = metricsSection.split('\n### ')[0] ?? '';
    const tabled = new Set(table.split('\n').filter((line) => line.startsWith('| `')).map((line) => /^\| `(\w+)`/.exec(line)?.[1]));
    expect([...tabled].sort()).toEqual([...new Set(Object.values(productMetricNames))].sort());
  });

  it('tables every kind of alarm the stack puts on its functions, and counts them right', () => {
    const names = Object.values(resources)
      .filter((resource) => resource.Type === 'AWS::CloudWatch::Alarm')
      .map((resource) => resource.Properties.AlarmName ?? '');
    const suffixes = new Set(names.map((name) => /^\$\{self:custom\.prefix\}-(onboard|check|offboard|audit)-(.+)$/.exec(name)?.[2] ?? `unexpected name ${name}`));
    const alarms = section(metricsSection, '### Alarms on the product');
    // A row per kind of function alarm (`<function>`), and the onboard queue's own (`onboard`).
    const tabled = new Set([...alarms.matchAll(/^\| `cwap-<stage>-(?:<function>|onboard)-([a-z-]+)`/gm)].map((match) => match[1]));
    expect([...tabled].sort()).toEqual([...suffixes].sort());
    expect(section(metricsSection, '### Dashboard')).toContain(`the ${names.length} alarms below`);
    expect(section(readme, '## What it costs')).toContain(`${names.length} standard-resolution alarms`);
  });
});
