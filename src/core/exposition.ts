/**
 * Prometheus text exposition (format 0.0.4) for the agent's and the controller's `/metrics`. Families
 * are grouped (HELP and TYPE once, then every sample), which `promtool check metrics` insists on.
 */

export type MetricType = 'counter' | 'gauge';

export type MetricLabels = Readonly<Record<string, string>>;

interface Family {
  type: MetricType;
  help: string;
  samples: string[];
}

/** Escapes a label value (backslash, double quote, newline). */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

export class MetricsText {
  private readonly families = new Map<string, Family>();

  /** Adds one sample; the first call for a name fixes its type and help. */
  add(name: string, type: MetricType, help: string, labels: MetricLabels, value: number): this {
    let f = this.families.get(name);
    if (!f) {
      f = { type, help, samples: [] };
      this.families.set(name, f);
    }
    const keys = Object.keys(labels);
    const l =
      keys.length === 0 ? '' : `{${keys.map((k) => `${k}="${escapeLabel(labels[k] ?? '')}"`).join(',')}}`;
    f.samples.push(`${name}${l} ${fmt(value)}`);
    return this;
  }

  /** Declares a family with no samples yet (so a scrape always shows it). */
  declare(name: string, type: MetricType, help: string): this {
    if (!this.families.has(name)) this.families.set(name, { type, help, samples: [] });
    return this;
  }

  text(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(
        `# HELP ${name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`,
        `# TYPE ${name} ${f.type}`,
      );
      out.push(...f.samples);
    }
    return `${out.join('\n')}\n`;
  }
}
