// Output helpers for the benchmarks: a human table for the log, and the one-line JSON result that a
// benchmark prints last (machine-readable; CI and the docs read the last line of stdout).

/** Formats a cell: numbers get thousands separators (at most 2 decimals), objects become compact JSON. */
export function formatCell(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    return v.toLocaleString('en-US', { maximumFractionDigits: 2 });
  }
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * Renders rows (objects) as an aligned text table. `columns` picks and orders the keys (default: every
 * key in order of first appearance); a column is { key, title?, align? } or just the key. Numbers are
 * right-aligned unless told otherwise.
 */
export function renderTable(rows, columns) {
  const cols = (columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))]).map((c) =>
    typeof c === 'string' ? { key: c, title: c } : { title: c.key, ...c },
  );
  const cells = rows.map((r) => cols.map((c) => formatCell(r[c.key])));
  const right = cols.map((c) =>
    c.align
      ? c.align === 'right'
      : rows.length > 0 && rows.every((r) => typeof r[c.key] === 'number' || r[c.key] == null),
  );
  const widths = cols.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i].length)));
  const line = (vals) =>
    vals
      .map((v, i) => (right[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    line(cols.map((c) => c.title)),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.map(line),
  ].join('\n');
}

/** Prints the table (with an optional title line) to stdout. */
export function printTable(rows, columns, title) {
  if (title) console.log(`\n${title}`);
  console.log(renderTable(rows, columns));
}

/** Prints `obj` as one line of JSON: the final line of every benchmark's output. */
export function printResultLine(obj) {
  const text = JSON.stringify(obj);
  if (text.includes('\n')) throw new Error('result line must be single-line JSON');
  process.stdout.write(`${text}\n`);
}
