// A small evaluator of SNS subscription filter policies (filter policy scope MessageAttributes, the
// default), for the operators the README's policies use: exact string values, `anything-but` and
// `exists`. Each rule cites the SNS Developer Guide page it follows. Anything else is refused, so a
// policy this cannot judge never passes a test by accident. The integration tests check the same
// policies against moto's own implementation.

/** A message's String attributes, as SNS compares them (name -> value). */
export type StringAttributes = Readonly<Record<string, string | undefined>>;

/** One value in a policy property's list. */
type PolicyValue = string | { 'anything-but': string | string[] } | { exists: boolean };

/** A filter policy: property name -> the values any one of which must match. */
export type FilterPolicy = Readonly<Record<string, readonly PolicyValue[]>>;

/** The policy uses something this evaluator does not implement, or SNS would refuse it. */
export class UnsupportedPolicyError extends Error {
  override name = 'UnsupportedPolicyError';
}

function checkConstraints(policy: FilterPolicy): void {
  // subscription-filter-policy-constraints.html, "Common policy constraints": "A filter policy can
  // have a maximum of five keys", and "The total combination of values in a filter policy must not
  // exceed 150. To calculate the total combination, multiply the number of values in each array".
  const keys = Object.keys(policy);
  if (keys.length > 5) throw new UnsupportedPolicyError(`${keys.length} keys: SNS allows at most 5`);
  const combinations = Object.values(policy).reduce((product, values) => product * values.length, 1);
  if (combinations > 150) throw new UnsupportedPolicyError(`${combinations} value combinations: SNS allows at most 150`);
  for (const [key, values] of Object.entries(policy)) {
    // Attribute-based policies are flat: "Amazon SNS doesn't accept a nested filter policy for
    // attribute-based filtering" (same page). `$or` (and-or-logic.html#or-operator) is not implemented.
    if (!Array.isArray(values) || key === '$or') throw new UnsupportedPolicyError(`${key}: only a flat list of values is implemented`);
  }
}

function valueMatches(value: PolicyValue, attribute: string | undefined, attributes: StringAttributes): boolean {
  if (typeof value === 'string') {
    // string-value-matching.html#string-exact-matching: "Exact matching occurs when a policy property
    // value matches one or more message attribute values"; subscription-filter-policy-constraints.html:
    // "For string matching in the filter policy, the comparison is case-sensitive."
    return attribute === value;
  }
  if ('anything-but' in value) {
    // string-value-matching.html#string-anything-but-matching: it "matches any message attribute ...
    // values that don't include any of the policy property values". A message without the attribute
    // matches no property of the policy (sns-subscription-filter-policies.html: "each property name in
    // the filter policy matches a message attribute name"); the page adds that anything-but "can be
    // combined with "exists": false" for that case.
    const excluded = typeof value['anything-but'] === 'string' ? [value['anything-but']] : value['anything-but'];
    if (!excluded.every((item) => typeof item === 'string')) throw new UnsupportedPolicyError('only string anything-but lists are implemented');
    return attribute !== undefined && !excluded.includes(attribute);
  }
  if ('exists' in value && typeof value.exists === 'boolean') {
    // attribute-key-matching.html: "exists": true matches messages that include the property ("The key
    // must have a non-null and non-empty value"); "exists": false matches messages that don't, and
    // "only matches if at least one attribute is present. An empty set of attributes results in the
    // filter not matching."
    if (value.exists) return attribute !== undefined && attribute !== '';
    return attribute === undefined && Object.values(attributes).some((other) => other !== undefined);
  }
  throw new UnsupportedPolicyError(`operator ${JSON.stringify(value)} is not implemented`);
}

/**
 * Whether a subscription with this filter policy receives a message with these String attributes.
 * Properties AND together and the values of one property OR together (and-or-logic.html: "You can
 * apply AND logic using multiple property names", "OR logic by assigning multiple values to a
 * property name"); attributes the policy does not name are ignored (sns-subscription-filter-policies.html:
 * "it ignores the ones that aren't specified in the policy").
 *
 * @example
 * acceptsMessage({ event: ['alert'] }, { event: 'alert', severity: 'critical' }); // true
 */
export function acceptsMessage(policy: FilterPolicy, attributes: StringAttributes): boolean {
  checkConstraints(policy);
  return Object.entries(policy).every(([name, values]) => values.some((value) => valueMatches(value, attributes[name], attributes)));
}
