/** SDK client settings for harness code: always the local endpoint, never real AWS. */
export interface LocalClientConfig {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  maxAttempts?: number;
}

/**
 * Client config for the harness's own SDK clients, pointed at `endpoint` (default
 * `process.env.AWS_ENDPOINT_URL`). Refuses anything that is not a local address, so a harness
 * bug can never create resources in a real account.
 *
 * @example
 * const ec2 = new EC2Client(localClientConfig());
 */
export function localClientConfig(endpoint = process.env.AWS_ENDPOINT_URL, extra: { maxAttempts?: number } = {}): LocalClientConfig {
  if (!endpoint) throw new Error('AWS_ENDPOINT_URL is not set: call useAws() in the test file (or pass the endpoint)');
  const host = new URL(endpoint).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    throw new Error(`refusing to use ${endpoint}: the test harness talks to a local moto server only`);
  }
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    ...extra,
  };
}
