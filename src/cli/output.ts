import type { DeployEventRecord } from '../controller/store/types.js';

/** Exit codes scripts can rely on (documented in the README). */
export const EXIT = { ok: 0, failed: 1, refused: 2, unreachable: 3, timeout: 4, usage: 64 } as const;

export interface Out {
  json: boolean;
  line(s: string): void;
  progress(e: DeployEventRecord): void;
  result(value: unknown, human: string): void;
  error(code: string, message: string): void;
}

export function makeOut(json: boolean, stream: NodeJS.WriteStream = process.stdout): Out {
  const color = !json && stream.isTTY === true && !process.env.NO_COLOR;
  const paint = (c: number, s: string) => (color ? `\x1b[${c}m${s}\x1b[0m` : s);
  return {
    json,
    line(s) {
      if (!json) stream.write(`${s}\n`);
    },
    progress(e) {
      if (json) return;
      const t = new Date(e.at).toISOString().slice(11, 23);
      const c =
        e.type.endsWith('failed') || e.type.includes('timeout') ? 31 : e.type.endsWith('succeeded') ? 32 : 36;
      stream.write(`${paint(90, t)} ${paint(c, e.type.padEnd(22))} ${e.message}\n`);
    },
    result(value, human) {
      stream.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
    },
    error(code, message) {
      if (json) process.stderr.write(`${JSON.stringify({ error: { code, message } })}\n`);
      else process.stderr.write(`${paint(31, 'error')} ${code}: ${message}\n`);
    },
  };
}

export function table(head: string[], rows: string[][], indent = ''): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    indent +
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [fmt(head), ...rows.map(fmt)].join('\n');
}
