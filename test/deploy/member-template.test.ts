import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { renderedAgentConfigs } from '../../shared/agent-config.js';
import { memberTemplateFile } from '../harness/member-stacks.js';

// The committed member/member-stack.json is what deploy/member-stack.cjs renders: the StackSet
// deploys the file, so it must never drift from the definitions the hub shares.

const { renderMemberTemplate } = createRequire(import.meta.url)('../../deploy/member-stack.cjs') as {
  renderMemberTemplate: (overrides?: Record<string, string>) => Promise<{ Resources: Record<string, { Properties: Record<string, unknown> }> }>;
};

describe('the committed member template', () => {
  it('is a fresh render of deploy/member-stack.cjs (else: npm run member:template)', async () => {
    expect(readFileSync(memberTemplateFile, 'utf8')).toBe(`${JSON.stringify(await renderMemberTemplate(), null, 2)}\n`);
  });

  it('renders a --param override into its agent configs as the hub renders them', async () => {
    const rendered = await renderMemberTemplate({ namespace: 'Team/Hosts' });
    const expected = renderedAgentConfigs({ namespace: 'Team/Hosts', memory: 'MEMORY_USED', disk: 'DISK_USED', windowsDiskFree: 'DISK_FREE' });
    expect(rendered.Resources.LinuxAgentConfigParameter?.Properties.Value).toBe(expected.linux);
    expect(rendered.Resources.WindowsAgentConfigParameter?.Properties.Value).toBe(expected.windows);
  });
});
