import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { RoutingSnapshot } from '../core/protocol.js';

/**
 * Runtime validation of a RoutingSnapshot arriving from the network or from the on-disk cache. Lenient
 * about extra fields (a newer controller may add some) but strict about what the proxy relies on.
 * (A candidate for src/core/protocol.ts next to proxyReportSchema.)
 */
const healthSchema = z.object({
  path: z.string().startsWith('/'),
  intervalMs: z.number().int().positive(),
  timeoutMs: z.number().int().positive(),
  rise: z.number().int().min(1),
  fall: z.number().int().min(1),
  type: z.enum(['http', 'tcp']).optional(),
  fastIntervalMs: z.number().int().positive().optional(),
});

const nonNeg = z.number().nonnegative();

export const routingSnapshotSchema = z.object({
  version: z.number().int().nonnegative(),
  services: z.array(
    z.object({
      name: z.string().min(1),
      hosts: z.array(z.string().min(1)),
      pathPrefix: z.string().startsWith('/'),
      // An unknown mode (a newer controller) is applied as `live`, with a warning.
      mode: z.string(),
      health: healthSchema,
      balance: z.enum(['least-connections', 'round-robin', 'weighted']).optional(),
      slowStartMs: nonNeg.optional(),
      outlier: z
        .object({
          consecutiveConnectFailures: nonNeg.optional(),
          consecutive5xx: nonNeg.optional(),
          baseEjectionMs: nonNeg.optional(),
          maxEjectionMs: nonNeg.optional(),
          maxEjectionPercent: z.number().min(0).max(100).optional(),
        })
        .optional(),
      panicThresholdPercent: z.number().min(0).max(100).optional(),
      retry: z
        .object({
          attempts: z.number().int().min(0).max(10).optional(),
          budgetPercent: nonNeg.optional(),
          minConcurrent: nonNeg.optional(),
        })
        .optional(),
      retryAfterSeconds: nonNeg.optional(),
      maintenance: z.object({ message: z.string().optional(), html: z.string().optional() }).optional(),
      pauseTimeoutMs: nonNeg.optional(),
      wsDrainTimeoutMs: nonNeg.optional(),
      previewOf: z.string().min(1).optional(),
      instances: z.array(
        z.object({
          id: z.string().min(1),
          address: z.string().min(1),
          port: z.number().int().min(1).max(65535),
          state: z.enum(['ready', 'draining', 'maintenance']),
          weight: z.number().nonnegative(),
          release: z.string(),
        }),
      ),
    }),
  ),
});

/** Parses and validates; throws a zod error with the offending path on bad input. */
export function parseSnapshot(data: unknown): RoutingSnapshot {
  return routingSnapshotSchema.parse(data) as RoutingSnapshot;
}

/** Reads the cached snapshot; undefined when there is none. Throws on a corrupt file. */
export async function readSnapshotCache(file: string): Promise<RoutingSnapshot | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseSnapshot(JSON.parse(text));
}

/** Writes atomically: a temporary file next to it, fsync, then rename over the old one. */
export async function writeSnapshotCache(file: string, json: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  // The cache's folder may not exist yet (a fresh data dir): without it no snapshot was ever cached.
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(json);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
