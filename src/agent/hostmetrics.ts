import { readFile, statfs } from 'node:fs/promises';
import type { CpuTimes, DiskSignal, FilesystemSignal, HostSignals, NetworkSignal } from '../core/signals.js';

/**
 * Host signals from Linux `/proc` and `fs.statfs`, read in-process (no `df`, no `iostat`): a host whose
 * fork table is full or whose disk is full must still be able to say so. Parsers are pure functions of
 * the file text, so they are tested with fixtures; `readHostSignals` is the only I/O.
 *
 * The names on `/metrics` are node_exporter's, so existing dashboards and alert rules work unchanged.
 */

/** Clock ticks per second of /proc/stat (USER_HZ, 100 on every Linux architecture nines runs on). */
export const USER_HZ = 100;
const SECTOR_BYTES = 512;

function cpuFrom(fields: string[]): CpuTimes {
  const v = (i: number) => Number(fields[i] ?? 0) / USER_HZ;
  return {
    user: v(0),
    nice: v(1),
    system: v(2),
    idle: v(3),
    iowait: v(4),
    irq: v(5),
    softirq: v(6),
    steal: v(7),
  };
}

export function parseProcStatCpu(text: string): { cpu: CpuTimes; cpus: CpuTimes[]; bootTime: number } {
  let cpu: CpuTimes = cpuFrom([]);
  const cpus: CpuTimes[] = [];
  let bootTime = 0;
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    const key = parts[0] ?? '';
    if (key === 'cpu') cpu = cpuFrom(parts.slice(1));
    else if (/^cpu\d+$/.test(key)) cpus.push(cpuFrom(parts.slice(1)));
    else if (key === 'btime') bootTime = Number(parts[1] ?? 0);
  }
  return { cpu, cpus, bootTime };
}

export function parseLoadavg(text: string): { load1: number; load5: number; load15: number } {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  return { load1: a ?? 0, load5: b ?? 0, load15: c ?? 0 };
}

export function parseMeminfo(text: string): HostSignals['memory'] {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (m) kb.set(m[1]!, Number(m[2]) * (line.includes('kB') ? 1024 : 1));
  }
  const g = (k: string) => kb.get(k) ?? 0;
  return {
    totalBytes: g('MemTotal'),
    freeBytes: g('MemFree'),
    // Kernels before 3.14 have no MemAvailable: free + buffers + cache is the usual approximation.
    availableBytes: kb.get('MemAvailable') ?? g('MemFree') + g('Buffers') + g('Cached'),
    buffersBytes: g('Buffers'),
    cachedBytes: g('Cached'),
    swapTotalBytes: g('SwapTotal'),
    swapFreeBytes: g('SwapFree'),
  };
}

/** Whole devices only: partitions, loop and RAM disks would count the same I/O twice or not at all. */
const IGNORED_DISK = /^(z?ram|loop|fd|(h|s|v|xv)d[a-z]+\d|nvme\d+n\d+p\d|mmcblk\d+p\d|dm-|sr)\d*$/;

export function parseDiskstats(text: string): DiskSignal[] {
  const out: DiskSignal[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 14) continue;
    const device = f[2]!;
    if (IGNORED_DISK.test(device)) continue;
    const num = (i: number) => Number(f[i] ?? 0);
    out.push({
      device,
      readsCompleted: num(3),
      readBytes: num(5) * SECTOR_BYTES,
      writesCompleted: num(7),
      writtenBytes: num(9) * SECTOR_BYTES,
      ioTimeSeconds: num(12) / 1000,
    });
  }
  return out;
}

export function parseNetDev(text: string): NetworkSignal[] {
  const out: NetworkSignal[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.includes('|')) continue;
    const device = line.slice(0, colon).trim();
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (f.length < 16 || device === '') continue;
    out.push({
      device,
      receiveBytes: f[0]!,
      receivePackets: f[1]!,
      receiveErrors: f[2]!,
      receiveDrops: f[3]!,
      transmitBytes: f[8]!,
      transmitPackets: f[9]!,
      transmitErrors: f[10]!,
      transmitDrops: f[11]!,
    });
  }
  return out;
}

/** Pseudo and container-internal filesystems node_exporter leaves out too (overlay is kept: in a
 * container it is the root filesystem, the one that fills up). */
const IGNORED_FSTYPE =
  /^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs|ramfs)$/;
const IGNORED_MOUNT =
  /^\/(dev|proc|sys|run\/credentials\/.+|var\/lib\/docker\/.+|var\/lib\/containers\/storage\/.+)($|\/)/;

/** /proc/self/mounts escapes space, tab, newline and backslash as octal (`\040`). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export function parseMounts(text: string): { device: string; mountpoint: string; fstype: string }[] {
  const seen = new Set<string>();
  const out: { device: string; mountpoint: string; fstype: string }[] = [];
  for (const line of text.split('\n')) {
    const [dev, mp, fstype] = line.split(' ');
    if (!dev || !mp || !fstype) continue;
    const mountpoint = unescapeMount(mp);
    if (IGNORED_FSTYPE.test(fstype) || IGNORED_MOUNT.test(mountpoint) || seen.has(mountpoint)) continue;
    seen.add(mountpoint);
    out.push({ device: unescapeMount(dev), mountpoint, fstype });
  }
  return out;
}

async function fsSignal(m: {
  device: string;
  mountpoint: string;
  fstype: string;
}): Promise<FilesystemSignal | undefined> {
  // A hung network filesystem must not stall the report: give statfs a second.
  let timer: NodeJS.Timeout | undefined;
  const s = await Promise.race([
    statfs(m.mountpoint).catch(() => undefined),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), 1000);
    }),
  ]);
  clearTimeout(timer);
  if (!s || s.blocks === 0) return undefined;
  return {
    ...m,
    sizeBytes: s.blocks * s.bsize,
    freeBytes: s.bfree * s.bsize,
    availBytes: s.bavail * s.bsize,
    files: s.files,
    filesFree: s.ffree,
  };
}

async function text(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}

/** Reads every host signal; a file that cannot be read yields zeros/empty lists, never an error. */
export async function readHostSignals(procDir = '/proc', now = Date.now()): Promise<HostSignals> {
  const [stat, loadavg, meminfo, diskstats, netdev, mounts] = await Promise.all([
    text(`${procDir}/stat`),
    text(`${procDir}/loadavg`),
    text(`${procDir}/meminfo`),
    text(`${procDir}/diskstats`),
    text(`${procDir}/net/dev`),
    text(`${procDir}/self/mounts`),
  ]);
  const { cpu, cpus, bootTime } = parseProcStatCpu(stat);
  const filesystems = (await Promise.all(parseMounts(mounts).map(fsSignal))).filter(
    (f): f is FilesystemSignal => f !== undefined,
  );
  return {
    at: now,
    cpuCount: cpus.length,
    cpu,
    cpus,
    ...parseLoadavg(loadavg),
    memory: parseMeminfo(meminfo),
    filesystems,
    disks: parseDiskstats(diskstats),
    network: parseNetDev(netdev),
    bootTime,
  };
}

export { hostMetricsText } from '../core/signals-text.js';
