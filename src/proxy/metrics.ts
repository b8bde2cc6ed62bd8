/**
 * Prometheus text exposition (format 0.0.4), written by hand: the hot path only bumps numeric fields on
 * objects it already holds (an Upstream, a ServiceState); rendering walks them at scrape time.
 */

/** Latency buckets in seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BUCKET_MS = LATENCY_BUCKETS.map((s) => s * 1000);
const BUCKET_LABELS = LATENCY_BUCKETS.map((s) => String(s));

/** A histogram of durations; `observe` takes milliseconds. Buckets are stored non-cumulative. */
export class Histogram {
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sumMs = 0;
  count = 0;

  observe(ms: number): void {
    let i = 0;
    const n = BUCKET_MS.length;
    while (i < n && ms > BUCKET_MS[i]!) i++;
    this.counts[i]!++;
    this.sumMs += ms;
    this.count++;
  }
}

/** Counters by status class: index 0 = 1xx … 4 = 5xx. */
export const CLASS_LABELS = ['1xx', '2xx', '3xx', '4xx', '5xx'];

export function classIndex(status: number): number {
  const c = ((status / 100) | 0) - 1;
  return c < 0 ? 0 : Math.min(c, 4);
}

/** Escapes a label value (backslash, double quote, newline). */
export function esc(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}

/** Accumulates one metric family at a time; `family()` must be called before its samples. */
export class Exposition {
  private readonly out: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: string, value: number): void {
    this.out.push(`${name}${labels === '' ? '' : `{${labels}}`} ${fmt(value)}`);
  }

  histogram(name: string, labels: string, h: Histogram): void {
    let cum = 0;
    const sep = labels === '' ? '' : ',';
    for (let i = 0; i < BUCKET_LABELS.length; i++) {
      cum += h.counts[i]!;
      this.out.push(`${name}_bucket{${labels}${sep}le="${BUCKET_LABELS[i]}"} ${cum}`);
    }
    this.out.push(`${name}_bucket{${labels}${sep}le="+Inf"} ${h.count}`);
    this.out.push(`${name}_sum${labels === '' ? '' : `{${labels}}`} ${fmt(h.sumMs / 1000)}`);
    this.out.push(`${name}_count${labels === '' ? '' : `{${labels}}`} ${h.count}`);
  }

  text(): string {
    return `${this.out.join('\n')}\n`;
  }
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}
