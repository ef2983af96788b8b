import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { awsCallCount, coldStart, instanceId, resetAws, restoreWorld, runningEvent } from './onboard-harness.js';

beforeEach(() => {
  resetAws();
});

afterEach(() => {
  restoreWorld();
});

describe('an invocation with input the function does not accept', () => {
  const eventWithoutInstance = { ...runningEvent(), detail: { state: 'running' } };
  const eventWithBadInstance = { ...runningEvent(), detail: { 'instance-id': 'web-server-1', state: 'running' } };

  it.each([
    ['an empty object', {}, /instanceId: missing, expected a string/],
    ['null', null, /\(input\): .*null/],
    ['a string', 'garbage', /\(input\): .*string/],
    ['an event whose detail has no instance-id', eventWithoutInstance, /detail\.instance-id: missing, expected a string/],
    ['an event whose instance-id is not i-xxxx', eventWithBadInstance, /detail\.instance-id: not an EC2 instance id/],
    ['a retry with attempt 0', { instanceId, attempt: 0 }, /attempt: /],
    ['a retry for something that is not an instance', { instanceId: 'i-nothex!', attempt: 2 }, /instanceId: not an EC2 instance id/],
  ])('%s is rejected with InvalidInputError saying what is wrong, and no AWS call is made', async (_, input, problem) => {
    const onboard = await coldStart();

    const rejection = onboard.invoke(input);

    await expect(rejection).rejects.toBeInstanceOf(onboard.InvalidInputError);
    await expect(rejection).rejects.toThrow(problem);
    expect(awsCallCount()).toBe(0);
  });
});

describe('a deployment with a wrong setting', () => {
  async function coldStartError(overrides: Record<string, string | undefined>): Promise<Error> {
    const failure = await coldStart(overrides).then(
      () => new Error('the function started'),
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    );
    // The class of the module graph the failed cold start loaded.
    const { InvalidSettingsError } = await import('../../shared/errors.js');
    expect(failure).toBeInstanceOf(InvalidSettingsError);
    return failure;
  }

  it('SSM_MAX_ATTEMPTS=abc stops the cold start with an error naming the setting and the value', async () => {
    const error = await coldStartError({ SSM_MAX_ATTEMPTS: 'abc' });

    expect(error.message).toMatch(/SSM_MAX_ATTEMPTS: .*\(got "abc"\)/);
  });

  it('LINUX_CONFIG_PARAMETER without the AmazonCloudWatch- prefix stops the cold start, saying why', async () => {
    const error = await coldStartError({ LINUX_CONFIG_PARAMETER: 'my-config' });

    expect(error.message).toContain('LINUX_CONFIG_PARAMETER');
    expect(error.message).toContain('AmazonCloudWatch-');
    expect(error.message).toContain('(got "my-config")');
  });

  it('a missing STATE_TABLE stops the cold start, saying it got nothing', async () => {
    const error = await coldStartError({ STATE_TABLE: undefined });

    expect(error.message).toMatch(/STATE_TABLE: .*\(got nothing\)/);
  });

  it('every wrong setting is named at once', async () => {
    const error = await coldStartError({ SSM_MAX_ATTEMPTS: '0', CHECK_FUNCTION_ARN: 'cwap-dev-check' });

    expect(error.message).toContain('SSM_MAX_ATTEMPTS');
    expect(error.message).toContain('CHECK_FUNCTION_ARN');
    expect(error.message).toContain('(got "cwap-dev-check")');
  });

  it('no AWS call is made by a function that cannot start', async () => {
    await coldStartError({ WINDOWS_CONFIG_PARAMETER: 'windows-config' });

    expect(awsCallCount()).toBe(0);
  });

  it('the same deployment with valid settings starts and onboards (the control for the cases above)', async () => {
    const onboard = await coldStart();

    await expect(onboard.invoke(runningEvent())).resolves.toMatchObject({ status: 'checking' });
  });
});
