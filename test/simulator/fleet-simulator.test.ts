import { describe, expect, it } from 'vitest';
import { stateChangeEvent } from '../harness/fleet.js';
import { instanceIdsOf, isAbout, type TimelineEntry } from './fleet-simulator.js';

const a = 'i-0aaaaaaaaaaaaaaa1';
const b = 'i-0bbbbbbbbbbbbbbb2';

describe('which instances an invocation or a timeline line is about', () => {
  it('reads a per-instance check, a batch check, a state-change event and a queue batch', () => {
    expect(instanceIdsOf({ instanceId: a, attempt: 2 })).toEqual([a]);
    expect(instanceIdsOf({ instanceIds: [a, b], attempt: 1, look: 2, account: '111111111111', region: 'eu-west-1' })).toEqual([a, b]);
    expect(instanceIdsOf(stateChangeEvent(b, 'running'))).toEqual([b]);
    expect(instanceIdsOf({ Records: [{ body: JSON.stringify(stateChangeEvent(a, 'running')) }, { body: 'not json' }, { body: JSON.stringify(stateChangeEvent(b, 'running')) }] })).toEqual([a, b]);
    expect(instanceIdsOf({ auditId: 'x' })).toEqual([]);
    expect(instanceIdsOf(undefined)).toEqual([]);
  });

  it('attributes a batch line to each instance it lists, and a line of one instance to that one only', () => {
    const line = (fields: Partial<TimelineEntry>): TimelineEntry => ({ at: 0, instanceId: undefined, subject: 's', source: 'queue', step: 'queue batch', detail: '', ...fields });
    expect(isAbout(line({ instanceIds: [a, b] }), b)).toBe(true);
    expect(isAbout(line({ instanceId: a }), a)).toBe(true);
    expect(isAbout(line({ instanceId: a }), b)).toBe(false);
    expect(isAbout(line({}), a)).toBe(false);
  });
});
