import { z } from 'zod';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** A duration: a number of milliseconds, or a string such as `500ms`, `2s`, `1.5m`, `1h`. */
export const duration = z
  .union([
    z.number().int().nonnegative(),
    // The pattern is for editors (JSON Schema); the transform below gives the error message.
    z.string().meta({ pattern: '^\\s*\\d+(\\.\\d+)?(ms|s|m|h)\\s*$', examples: ['500ms', '2s', '1m'] }),
  ])
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const m = DURATION_RE.exec(v.trim());
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use e.g. 500ms, 2s, 1m)` });
      return z.NEVER;
    }
    return Math.round(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
  });
