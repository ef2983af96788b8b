import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SchedulerClient } from '@aws-sdk/client-scheduler';

// One client per service per cold start, reused by every invocation. Adaptive retry backs off on
// throttling across the calls of one container. Endpoints come from the SDK's own
// AWS_ENDPOINT_URL(_<SERVICE>) support: no switches here.
const config = { retryMode: 'adaptive', maxAttempts: 5 } as const;

export const ec2 = new EC2Client(config);
export const iam = new IAMClient(config);
export const ssm = new SSMClient(config);
export const scheduler = new SchedulerClient(config);
export const dynamodb = DynamoDBDocumentClient.from(new DynamoDBClient(config), {
  marshallOptions: { removeUndefinedValues: true },
});
