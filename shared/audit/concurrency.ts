/**
 * Runs `work` over `items` with at most `limit` calls in flight; results keep the input order.
 * The audit bounds every fan-out with it, so a 10,000-instance fleet never opens hundreds of
 * requests at once (the SDK's adaptive retry then only has to smooth, not rescue).
 *
 * @example
 * const pages = await mapBounded(chunks, 4, (chunk) => readChunk(chunk));
 */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/** Splits items into consecutive chunks of at most `size`. */
export function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let from = 0; from < items.length; from += size) chunks.push(items.slice(from, from + size));
  return chunks;
}
