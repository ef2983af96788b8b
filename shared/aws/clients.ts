import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { SNSClient } from '@aws-sdk/client-sns';
import { LambdaClient } from '@aws-sdk/client-lambda';

// One client per service per cold start, reused by every invocation. Endpoints come from the SDK's
// own AWS_ENDPOINT_URL(_<SERVICE>) support, and the retry mode from AWS_RETRY_MODE: no switches
// here. The functions keep the SDK's default "standard" mode: "adaptive" rate-limits a container
// for the rest of its life after one throttling error, which turns a Lambda's sparse calls into
// 1-2 s waits each (measured: onboarding 0.8 s -> 65 s with 5% throttling). The audit CLI, a dense
// scan, sets AWS_RETRY_MODE=adaptive.
// The /* @__PURE__ */ marks let esbuild drop the clients a function never uses from its bundle.
const config = { maxAttempts: 5 } as const;

export const ec2 = /* @__PURE__ */ new EC2Client(config);
export const iam = /* @__PURE__ */ new IAMClient(config);
export const ssm = /* @__PURE__ */ new SSMClient(config);
export const scheduler = /* @__PURE__ */ new SchedulerClient(config);
export const cloudwatch = /* @__PURE__ */ new CloudWatchClient(config);
export const sns = /* @__PURE__ */ new SNSClient(config);
export const lambda = /* @__PURE__ */ new LambdaClient(config);
export const dynamodb = /* @__PURE__ */ DynamoDBDocumentClient.from(/* @__PURE__ */ new DynamoDBClient(config), {
  marshallOptions: { removeUndefinedValues: true },
});
