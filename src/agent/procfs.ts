import { readFileSync } from 'node:fs';

/**
 * Process identity on Linux: a pid alone can be reused, pid + start time (field 22 of
 * /proc/<pid>/stat, clock ticks since boot) cannot. This is what makes adopting a process after an
 * agent restart safe.
 */
export interface ProcStat {
  state: string;
  pgrp: number;
  startTime: string;
}

export function readProcStat(pid: number): ProcStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseProcStat(text);
}

/**
 * The fields of a /proc/<pid>/stat line after the command (field 2, in parentheses, which may itself
 * contain ") "): element 0 is field 3 (state), so field N (1-based, proc(5)) is element N - 3.
 */
export function statFields(text: string): string[] | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  return text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
}

export function parseProcStat(text: string): ProcStat | undefined {
  const rest = statFields(text);
  if (rest === undefined) return undefined;
  const state = rest[0];
  const pgrp = Number(rest[2]);
  const startTime = rest[19];
  if (state === undefined || startTime === undefined || !/^\d+$/.test(startTime)) return undefined;
  return { state, pgrp, startTime };
}

export function processStartTime(pid: number): string | undefined {
  return readProcStat(pid)?.startTime;
}

/** True when `pid` runs (not a zombie) and, if given, was started at `startTime`. */
export function isProcessAlive(pid: number, startTime?: string): boolean {
  const st = readProcStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X' || st.state === 'x') return false;
  return startTime === undefined || st.startTime === startTime;
}

/**
 * Sends `signal` to the process group led by `pid` (the agent spawns every instance as a group
 * leader), or to the pid alone if it is not a group leader. False when nothing was there.
 */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  const st = readProcStat(pid);
  const target = st && st.pgrp !== pid ? pid : -pid;
  try {
    process.kill(target, signal);
    return true;
  } catch {
    return false;
  }
}
