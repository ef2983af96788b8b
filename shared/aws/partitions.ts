/** The partition (`aws`, `aws-cn`, `aws-us-gov`) an ARN belongs to; `aws` when the ARN has none. */
export function partitionOfArn(arn: string | undefined): string {
  return arn?.split(':')[1] || 'aws';
}

/** The partition of a region, for ARNs built before one is known (e.g. `cn-north-1` → `aws-cn`). */
export function partitionOfRegion(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}
