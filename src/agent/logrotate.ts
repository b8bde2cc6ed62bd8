import { copyFile, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';

export interface LogRotation {
  /** A log larger than this is rotated. Default 10 MiB. */
  maxBytes: number;
  /** Rotated generations kept (`<id>.log.1` newest). Default 3. */
  keep: number;
  /** Logs (and their generations) untouched for this long are deleted: instances long gone. Default 7 days. */
  retentionMs: number;
}

export const DEFAULT_LOG_ROTATION: LogRotation = {
  maxBytes: 10 * 1024 * 1024,
  keep: 3,
  retentionMs: 7 * 24 * 3600 * 1000,
};

/**
 * Size-based rotation of instance logs, logrotate's `copytruncate` way: the app keeps writing to the
 * descriptor it inherited (opened O_APPEND, so after the truncate its writes land at the new end).
 * Lines written between the copy and the truncate are lost — the documented price of copytruncate,
 * paid at most once per `maxBytes` of output and never by the app itself.
 */
export async function rotateLogs(dir: string, r: LogRotation, now = Date.now()): Promise<string[]> {
  const rotated: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return rotated;
  }
  for (const name of names) {
    const file = join(dir, name);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    if (now - st.mtimeMs > r.retentionMs && /\.log(\.\d+)?$/.test(name)) {
      await rm(file, { force: true });
      continue;
    }
    if (!name.endsWith('.log') || st.size <= r.maxBytes) continue;
    for (let g = r.keep - 1; g >= 1; g--) {
      await rename(`${file}.${g}`, `${file}.${g + 1}`).catch(() => undefined);
    }
    if (r.keep >= 1) await copyFile(file, `${file}.1`);
    await truncate(file, 0);
    rotated.push(name);
  }
  return rotated;
}
