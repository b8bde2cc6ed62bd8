import { readdir, readFile } from 'node:fs/promises';
import { statFields } from './procfs.js';

/**
 * CPU of each instance, for autoscaling on `cpu` (issue 5): the utime + stime of every process in the
 * instance's process group (the agent starts each instance as a group leader, so what it forks counts
 * too), plus cutime + cstime (children that exited and were reaped keep counting), as deltas between
 * two samples. Read from /proc, no subprocess.
 */

/** Linux USER_HZ: the unit of the times in /proc/<pid>/stat, 100 on every architecture nines runs on. */
export const CLK_TCK = 100;

/** Process group and its CPU time in clock ticks, from one /proc/<pid>/stat line. */
export function parseCpuTicks(text: string): { pgrp: number; ticks: number } | undefined {
  const f = statFields(text);
  return f && cpuOf(f);
}

function cpuOf(f: readonly string[]): { pgrp: number; ticks: number } | undefined {
  // pgrp is field 5; utime, stime, cutime, cstime are fields 14–17.
  const nums = [f[2], f[11], f[12], f[13], f[14]].map(Number);
  if (nums.some((n) => !Number.isFinite(n))) return undefined;
  const [pgrp = 0, utime = 0, stime = 0, cutime = 0, cstime = 0] = nums;
  return { pgrp, ticks: utime + stime + cutime + cstime };
}

/**
 * Resident memory of one /proc/<pid>/stat line (field 24, rss, in pages), in bytes. The page size is
 * not exposed to Node without a subprocess: 4 KiB, as on x86-64 and the usual arm64 kernels.
 */
export const PAGE_BYTES = 4096;
export function parseRssBytes(text: string): number | undefined {
  const f = statFields(text);
  return f && rssOf(f);
}

/** rss is field 24. */
function rssOf(f: readonly string[]): number | undefined {
  const pages = Number(f[21]);
  return Number.isFinite(pages) ? pages * PAGE_BYTES : undefined;
}

/**
 * CPU ticks per process group, for the groups asked about (one pass over /proc); with `rss`, also
 * their resident memory in bytes, from the same reads.
 */
export async function readGroupTicks(
  groups: ReadonlySet<number>,
  procDir = '/proc',
  rss?: Map<number, number>,
): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  if (groups.size === 0) return out;
  let names: string[];
  try {
    names = await readdir(procDir);
  } catch {
    return out;
  }
  await Promise.all(
    names
      .filter((n) => /^\d+$/.test(n))
      .map(async (n) => {
        let text: string;
        try {
          text = await readFile(`${procDir}/${n}/stat`, 'utf8');
        } catch {
          return; // exited meanwhile
        }
        // One split per process for both figures.
        const f = statFields(text);
        const s = f && cpuOf(f);
        if (f && s && groups.has(s.pgrp)) {
          out.set(s.pgrp, (out.get(s.pgrp) ?? 0) + s.ticks);
          if (rss) rss.set(s.pgrp, (rss.get(s.pgrp) ?? 0) + (rssOf(f) ?? 0));
        }
      }),
  );
  return out;
}

interface Sample {
  pid: number;
  ticks: number;
  at: number;
}

/**
 * Per-instance CPU, percent of one core over the time between two samples. Pure: fed the pids and the
 * ticks read, it keeps the previous sample per instance. A new pid (the instance restarted) or ticks
 * that went back start over: no value until the next sample.
 */
export class InstanceCpu {
  private readonly last = new Map<string, Sample>();
  private readonly values = new Map<string, number>();

  /** `pids`: instance id → pid of its running process; `ticks`: pid (group) → CPU ticks now. */
  update(pids: ReadonlyMap<string, number>, ticks: ReadonlyMap<number, number>, now: number): void {
    for (const id of [...this.last.keys()]) {
      if (!pids.has(id)) {
        this.last.delete(id);
        this.values.delete(id);
      }
    }
    for (const [id, pid] of pids) {
      const t = ticks.get(pid);
      if (t === undefined) {
        this.last.delete(id);
        this.values.delete(id);
        continue;
      }
      const prev = this.last.get(id);
      this.last.set(id, { pid, ticks: t, at: now });
      if (!prev || prev.pid !== pid || t < prev.ticks || now <= prev.at) {
        this.values.delete(id);
        continue;
      }
      const pct = (((t - prev.ticks) / CLK_TCK) * 1000 * 100) / (now - prev.at);
      this.values.set(id, Math.round(pct * 10) / 10);
    }
  }

  /** Percent of one core of the instance over the last interval; undefined until two samples. */
  get(id: string): number | undefined {
    return this.values.get(id);
  }
}
