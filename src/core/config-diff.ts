import type { ServiceSpec } from './config.js';

/**
 * What applying `nines.yaml` would change, field by field — `nines plan`, `nines apply` and
 * `nines diff` all print this. Both sides are zod-parsed specs (defaults filled in), so a field
 * left out of the file and the same field at its default compare equal, as in `terraform plan`.
 */
export interface FieldChange {
  /** Dotted path inside the service spec: `rolling.maxSurge`, `env.LOG_LEVEL`. */
  path: string;
  /** Absent when the field is new. */
  from?: unknown;
  /** Absent when the field is removed. */
  to?: unknown;
}

export type ServiceChange =
  | { service: string; kind: 'add'; spec: ServiceSpec }
  | { service: string; kind: 'change'; spec: ServiceSpec; fields: FieldChange[] }
  | { service: string; kind: 'remove' };

export interface ConfigPlan {
  changes: ServiceChange[];
  /** Services identical on both sides. */
  unchanged: string[];
}

export function planServices(
  desired: Readonly<Record<string, ServiceSpec>>,
  live: Readonly<Record<string, ServiceSpec>>,
): ConfigPlan {
  const changes: ServiceChange[] = [];
  const unchanged: string[] = [];
  for (const name of Object.keys(desired).sort()) {
    const want = desired[name] as ServiceSpec;
    const have = live[name];
    if (!have) {
      changes.push({ service: name, kind: 'add', spec: want });
      continue;
    }
    const fields: FieldChange[] = [];
    diffValue('', have, want, fields);
    if (fields.length === 0) unchanged.push(name);
    else changes.push({ service: name, kind: 'change', spec: want, fields });
  }
  for (const name of Object.keys(live).sort()) {
    if (!(name in desired)) changes.push({ service: name, kind: 'remove' });
  }
  return { changes, unchanged };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}.${key}`;
}

/** Objects recurse key by key; arrays and scalars compare whole (a list of hosts changed, not item 2). */
function diffValue(path: string, from: unknown, to: unknown, out: FieldChange[]): void {
  if (isPlainObject(from) && isPlainObject(to)) {
    const keys = new Set([...Object.keys(from), ...Object.keys(to)]);
    for (const k of [...keys].sort()) {
      const p = join(path, k);
      if (!(k in to) || to[k] === undefined) {
        if (from[k] !== undefined) out.push({ path: p, from: from[k] });
      } else if (!(k in from) || from[k] === undefined) {
        out.push({ path: p, to: to[k] });
      } else diffValue(p, from[k], to[k], out);
    }
    return;
  }
  if (!sameJson(from, to)) out.push({ path, from, to });
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** One line per change, terraform-style markers: `+` add, `~` change, `-` remove. */
export function renderPlan(plan: ConfigPlan, opts: { removeNote?: string } = {}): string {
  if (plan.changes.length === 0) return 'no changes: the controller matches the file';
  const lines: string[] = [];
  for (const c of plan.changes) {
    if (c.kind === 'add') {
      lines.push(`+ service ${c.service} (${c.spec.instances} instance(s), command: ${c.spec.command})`);
    } else if (c.kind === 'remove') {
      lines.push(`- service ${c.service}${opts.removeNote ? ` ${opts.removeNote}` : ''}`);
    } else {
      lines.push(`~ service ${c.service}`);
      lines.push(...renderFieldChanges(c.fields));
    }
  }
  const n = (k: ServiceChange['kind']) => plan.changes.filter((c) => c.kind === k).length;
  lines.push(`${n('add')} to add, ${n('change')} to change, ${n('remove')} to remove`);
  return lines.join('\n');
}

/** Field changes, one indented line each: `+ path: to`, `- path: from`, `~ path: from → to`. */
export function renderFieldChanges(fields: readonly FieldChange[], indent = '    '): string[] {
  return fields.map((f) =>
    !('from' in f)
      ? `${indent}+ ${f.path}: ${show(f.to)}`
      : !('to' in f)
        ? `${indent}- ${f.path}: ${show(f.from)}`
        : `${indent}~ ${f.path}: ${show(f.from)} → ${show(f.to)}`,
  );
}

/** Field by field, `from` → `to`, under `prefix` (objects recurse; arrays and scalars compare whole). */
export function diffFields(prefix: string, from: unknown, to: unknown): FieldChange[] {
  const out: FieldChange[] = [];
  diffValue(prefix, from, to, out);
  return out;
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? 'undefined');
}
