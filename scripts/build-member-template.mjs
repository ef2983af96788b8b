// Writes the member stack's template, member/member-stack.json, from deploy/member-stack.cjs:
//   npm run member:template                                   (the hub's default metric params)
//   npm run member:template -- --param namespace=Team/Hosts   (the same --param values as the hub's deploy)
// The agent configs in it must equal the hub's: give it every metric --param the hub was deployed
// with (namespace, memoryMetric, diskMetric, windowsDiskFreeMetric). --check compares instead of
// writing, and fails when the committed file differs.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const { renderMemberTemplate } = createRequire(import.meta.url)('../deploy/member-stack.cjs');
const target = fileURLToPath(new URL('../member/member-stack.json', import.meta.url));

const overrides = {};
let check = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 1) {
  const arg = args[i];
  if (arg === '--check') {
    check = true;
  } else if (arg === '--param' && /^[A-Za-z]\w*=/.test(args[i + 1] ?? '')) {
    const [name, ...value] = args[(i += 1)].split('=');
    overrides[name] = value.join('=');
  } else {
    console.error(`build-member-template: unexpected argument ${JSON.stringify(arg)}; usage: [--param name=value]... [--check]`);
    process.exit(2);
  }
}

const text = `${JSON.stringify(await renderMemberTemplate(overrides), null, 2)}\n`;
if (check) {
  if (readFileSync(target, 'utf8') !== text) {
    console.error('member/member-stack.json is not what deploy/member-stack.cjs renders: run npm run member:template');
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
  console.log(`wrote ${target}`);
}
