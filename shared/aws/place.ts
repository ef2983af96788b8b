/**
 * Where an instance lives: an AWS account and a region. Every flow acts on (place, instance); the
 * hub's own place is the account and region the stack is deployed in.
 */
export interface Place {
  /** 12-digit AWS account id. */
  account: string;
  region: string;
}

/** `111111111111/eu-west-1`: a place as one string, for maps, logs and reports. */
export function placeLabel(place: Place): string {
  return `${place.account}/${place.region}`;
}

/** Whether two places are the same account and region. */
export function samePlace(a: Place, b: Place): boolean {
  return a.account === b.account && a.region === b.region;
}

/**
 * The account of an ARN (`arn:aws:lambda:us-east-1:123456789012:function:x` → `123456789012`), or
 * undefined when it has none.
 */
export function accountOfArn(arn: string): string | undefined {
  const account = arn.split(':')[4];
  return account && /^\d{12}$/.test(account) ? account : undefined;
}

const directions: Record<string, string> = {
  north: 'n',
  south: 's',
  east: 'e',
  west: 'w',
  central: 'c',
  northeast: 'ne',
  northwest: 'nw',
  southeast: 'se',
  southwest: 'sw',
};

/**
 * A region in a few characters, for names with a length limit (`eu-west-1` → `euw1`,
 * `ap-southeast-2` → `apse2`, `us-gov-west-1` → `usgovw1`).
 */
export function shortRegion(region: string): string {
  return region
    .split('-')
    .map((part, index) => (index === 0 ? part : (directions[part] ?? part)))
    .join('');
}
