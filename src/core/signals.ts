import { z } from 'zod';

/**
 * Host signals: what an agent reads from Linux `/proc`, `os` and `fs.statfs` (no shelling out) and
 * sends in its report. Counters are cumulative since boot, as the kernel keeps them; rates are derived
 * by the controller from two successive snapshots, so a lost report loses no information.
 */
export interface CpuTimes {
  /** Seconds in each mode summed over every CPU (user, nice, system, idle, iowait, irq, softirq, steal). */
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
}

export interface FilesystemSignal {
  mountpoint: string;
  device: string;
  fstype: string;
  sizeBytes: number;
  freeBytes: number;
  /** Free to unprivileged users (what `df` shows as available). */
  availBytes: number;
  files: number;
  filesFree: number;
}

export interface DiskSignal {
  device: string;
  readsCompleted: number;
  writesCompleted: number;
  readBytes: number;
  writtenBytes: number;
  ioTimeSeconds: number;
}

export interface NetworkSignal {
  device: string;
  receiveBytes: number;
  transmitBytes: number;
  receivePackets: number;
  transmitPackets: number;
  receiveErrors: number;
  transmitErrors: number;
  receiveDrops: number;
  transmitDrops: number;
}

export interface HostSignals {
  /** When the agent read them (epoch ms). */
  at: number;
  cpuCount: number;
  cpu: CpuTimes;
  /** Per CPU, in the order of /proc/stat (node_cpu_seconds_total{cpu="N"}). */
  cpus: CpuTimes[];
  load1: number;
  load5: number;
  load15: number;
  memory: {
    totalBytes: number;
    freeBytes: number;
    availableBytes: number;
    buffersBytes: number;
    cachedBytes: number;
    swapTotalBytes: number;
    swapFreeBytes: number;
  };
  filesystems: FilesystemSignal[];
  disks: DiskSignal[];
  network: NetworkSignal[];
  bootTime: number;
}

const n = z.number().finite().nonnegative();
const cpuTimesSchema = z.strictObject({
  user: n,
  nice: n,
  system: n,
  idle: n,
  iowait: n,
  irq: n,
  softirq: n,
  steal: n,
});
const name = z.string().min(1).max(512);

export const hostSignalsSchema = z.strictObject({
  at: n,
  cpuCount: z.number().int().min(0).max(100_000),
  cpu: cpuTimesSchema,
  cpus: z.array(cpuTimesSchema).max(4096),
  load1: n,
  load5: n,
  load15: n,
  memory: z.strictObject({
    totalBytes: n,
    freeBytes: n,
    availableBytes: n,
    buffersBytes: n,
    cachedBytes: n,
    swapTotalBytes: n,
    swapFreeBytes: n,
  }),
  filesystems: z
    .array(
      z.strictObject({
        mountpoint: name,
        device: name,
        fstype: name,
        sizeBytes: n,
        freeBytes: n,
        availBytes: n,
        files: n,
        filesFree: n,
      }),
    )
    .max(1000),
  disks: z
    .array(
      z.strictObject({
        device: name,
        readsCompleted: n,
        writesCompleted: n,
        readBytes: n,
        writtenBytes: n,
        ioTimeSeconds: n,
      }),
    )
    .max(1000),
  network: z
    .array(
      z.strictObject({
        device: name,
        receiveBytes: n,
        transmitBytes: n,
        receivePackets: n,
        transmitPackets: n,
        receiveErrors: n,
        transmitErrors: n,
        receiveDrops: n,
        transmitDrops: n,
      }),
    )
    .max(1000),
  bootTime: n,
}) satisfies z.ZodType<HostSignals>;
