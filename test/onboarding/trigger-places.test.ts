import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../shared/errors.js';
import { parseCheckRequest, parseOffboardRequest, parseOnboardQueueBatch, parseOnboardTrigger } from '../../shared/input/triggers.js';
import { queueUrlOfArn } from '../../shared/aws/queue-visibility.js';

const instanceId = 'i-0123456789abcdef0';
const event = (envelope: Record<string, unknown>, state = 'running') => ({
  'detail-type': 'EC2 Instance State-change Notification',
  source: 'aws.ec2',
  ...envelope,
  detail: { 'instance-id': instanceId, state },
});

describe('where an invocation says the instance lives', () => {
  it("an EventBridge event forwarded from a member keeps the member's account and region", () => {
    expect(parseOnboardTrigger(event({ account: '222222222222', region: 'eu-west-1' })).place).toEqual({ account: '222222222222', region: 'eu-west-1' });
    expect(parseOffboardRequest(event({ account: '222222222222', region: 'eu-west-1' }, 'terminated'))).toMatchObject({ state: 'terminated', place: { account: '222222222222', region: 'eu-west-1' } });
    expect(parseOnboardTrigger(event({})).place).toBeUndefined();
  });

  it("the product's own inputs carry account and region together, or neither (the hub's own place)", () => {
    expect(parseOnboardTrigger({ instanceId, attempt: 2, account: '222222222222', region: 'eu-west-1' })).toEqual({ kind: 'retry', instanceId, attempt: 2, place: { account: '222222222222', region: 'eu-west-1' } });
    expect(parseOnboardTrigger({ instanceId, remediate: true, account: '222222222222', region: 'eu-west-1' }).place).toEqual({ account: '222222222222', region: 'eu-west-1' });
    expect(parseCheckRequest({ instanceId, attempt: 1, account: '222222222222', region: 'eu-west-1' }).place).toEqual({ account: '222222222222', region: 'eu-west-1' });
    expect(parseCheckRequest({ instanceId })).toEqual({ instanceId, attempt: undefined, place: undefined });
    expect(parseOffboardRequest({ instanceId, account: '222222222222', region: 'eu-west-1' }).place).toEqual({ account: '222222222222', region: 'eu-west-1' });
  });

  it.each([
    ['an account without a region', () => parseCheckRequest({ instanceId, account: '222222222222' }), /account: give both account and region, or neither/],
    ['a region without an account', () => parseOnboardTrigger({ instanceId, attempt: 2, region: 'eu-west-1' }), /account: give both account and region, or neither/],
    ['an account that is not 12 digits', () => parseCheckRequest({ instanceId, account: '2222', region: 'eu-west-1' }), /account: not a 12-digit AWS account id/],
    ['a region that is not one', () => parseOffboardRequest({ instanceId, account: '222222222222', region: 'Ireland' }), /region: not an AWS region name/],
    ['an event whose account is not one', () => parseOnboardTrigger(event({ account: 'me', region: 'eu-west-1' })), /account: not a 12-digit AWS account id/],
  ])('%s is refused, naming the key', (_, parse, problem) => {
    expect(parse).toThrow(InvalidInputError);
    expect(parse).toThrow(problem);
  });
});

describe('a batch of the onboard queue', () => {
  const record = (extra: Record<string, unknown>) => ({ messageId: 'm-1', body: JSON.stringify(event({})), eventSource: 'aws:sqs', ...extra });

  it('keeps what a visibility change needs (receipt handle, queue ARN) and how often the message was delivered', () => {
    const queueArn = 'arn:aws:sqs:us-east-1:123456789012:cwap-dev-onboard';
    const { triggers } = parseOnboardQueueBatch({
      Records: [record({ receiptHandle: 'AQEB-handle', eventSourceARN: queueArn, attributes: { ApproximateReceiveCount: '3', SentTimestamp: '1741082400000' } })],
    });
    expect(triggers).toEqual([{ messageId: 'm-1', trigger: expect.objectContaining({ instanceId }), receiveCount: 3, delivery: { receiptHandle: 'AQEB-handle', queueArn } }]);
    expect(queueUrlOfArn(queueArn)).toBe('https://sqs.us-east-1.amazonaws.com/123456789012/cwap-dev-onboard');
    expect(queueUrlOfArn('arn:aws-cn:sqs:cn-north-1:123456789012:q')).toBe('https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q');
    expect(queueUrlOfArn('arn:aws:sns:us-east-1:123456789012:topic')).toBeUndefined();
  });

  it('a record built by hand, without them, is a first delivery whose visibility stays the queue\'s', () => {
    const { triggers } = parseOnboardQueueBatch({ Records: [record({})] });
    expect(triggers).toEqual([{ messageId: 'm-1', trigger: expect.objectContaining({ instanceId }), receiveCount: 1 }]);
  });
});
