// Run by template.test.ts, one child process per function, with the environment the packaged stack
// gives that function:   tsx test/deploy/emit-product-metrics.ts check|audit
// Drives the real handler down every path that writes a product metric (the AWS SDK faked with
// aws-sdk-client-mock; nothing leaves the process). Its stdout is then what the function writes in
// Lambda, the EMF records CloudWatch turns into metrics, among its log lines.
import type { Context } from 'aws-lambda';
import { isolateFromRealAws } from '../harness/aws-env.js';

// Before any product module is loaded: they create their SDK clients at import.
isolateFromRealAws();

const context = { functionName: 'emit-product-metrics', awsRequestId: 'req-1', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000);

function expectOutcome(what: string, got: unknown, expected: Record<string, unknown>): void {
  const result = got as Record<string, unknown>;
  for (const [key, value] of Object.entries(expected)) {
    if (result[key] !== value) throw new Error(`${what}: expected ${key} ${String(value)}, got ${JSON.stringify(got)}`);
  }
}

/** The first healthy check of a launch, then the last check of a launch whose metrics never came. */
async function check(): Promise<void> {
  const harness = await import('../check/check-harness.js');
  const { instanceId } = await import('../check/fixtures.js');
  const { handler } = await import('../../functions/check.js');
  const lastAttempt = Number(process.env.CHECK_MAX_ATTEMPTS);
  const launch = { launchTime: minutesAgo(10).toISOString(), commandSentAt: minutesAgo(9).toISOString(), createdAt: minutesAgo(10).toISOString() };

  harness.resetAws(launch);
  harness.givenInstance(harness.ec2Instance({ LaunchTime: minutesAgo(10) }));
  harness.givenDatapoints(minutesAgo(7), minutesAgo(1));
  expectOutcome('first healthy check', await handler({ instanceId, attempt: 1 }, context), { action: 'healthy' });

  harness.resetAws({ ...launch, checkAttempts: lastAttempt - 1, reinstalls: 0 });
  harness.givenInstance(harness.ec2Instance({ LaunchTime: minutesAgo(10) }));
  expectOutcome('last check without metrics', await handler({ instanceId, attempt: lastAttempt }, context), { action: 'alerted' });
}

/** The audit its schedule runs: the whole region, summary published. */
async function audit(): Promise<void> {
  const { mockClient } = await import('aws-sdk-client-mock');
  const { PublishCommand, SNSClient } = await import('@aws-sdk/client-sns');
  const { generateFleet, installFakeAws } = await import('../../scripts/simulated-fleet.js');
  const { handler } = await import('../../functions/audit.js');
  mockClient(SNSClient).on(PublishCommand).resolves({ MessageId: 'm-1' });
  const aws = installFakeAws({ ...generateFleet(50), table: process.env.STATE_TABLE ?? '' });
  try {
    const response = await handler({ publish: true }, context);
    expectOutcome('scheduled audit', response.summary, { partial: false });
  } finally {
    aws.restore();
  }
}

const paths: Record<string, () => Promise<void>> = { check, audit };
const name = process.argv[2] ?? '';
const run = paths[name];
if (!run) throw new Error(`emit-product-metrics: expected one of ${Object.keys(paths).join(', ')}, got "${name}"`);
await run();
