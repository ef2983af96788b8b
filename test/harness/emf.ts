// Reads embedded metric format (EMF) records as CloudWatch does: every JSON line with an
// `_aws.CloudWatchMetrics` block becomes one series per metric and dimension set.

/** One metric series an EMF record publishes, with the value it carries. */
export interface EmittedSeries {
  namespace: string;
  metricName: string;
  /** The dimension set, with the values the record gives them. */
  dimensions: Record<string, string>;
  unit: string | undefined;
  value: unknown;
}

interface EmfDirective {
  Namespace: string;
  Dimensions: string[][];
  Metrics: { Name: string; Unit?: string }[];
}

/** The series of every EMF record in a text (stdout of a function); other lines are ignored. */
export function emittedSeries(text: string): EmittedSeries[] {
  const series: EmittedSeries[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let record: Record<string, unknown> & { _aws?: { CloudWatchMetrics?: EmfDirective[] } };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      continue;
    }
    for (const directive of record._aws?.CloudWatchMetrics ?? []) {
      for (const set of directive.Dimensions) {
        const dimensions = Object.fromEntries(set.map((name) => [name, String(record[name])]));
        for (const metric of directive.Metrics) {
          series.push({ namespace: directive.Namespace, metricName: metric.Name, dimensions, unit: metric.Unit, value: record[metric.Name] });
        }
      }
    }
  }
  return series;
}

/**
 * Runs `action` and returns what it wrote to stdout (Powertools Metrics writes its EMF records there,
 * as in Lambda), while it still reaches nowhere else.
 */
export async function stdoutOf(action: () => unknown): Promise<string> {
  const chunks: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  }) as typeof process.stdout.write;
  try {
    await action();
  } finally {
    process.stdout.write = write;
  }
  return chunks.join('');
}
