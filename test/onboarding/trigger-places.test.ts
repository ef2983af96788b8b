import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../shared/errors.js';
import { parseCheckRequest, parseOffboardRequest, parseOnboardTrigger } from '../../shared/input/triggers.js';

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
