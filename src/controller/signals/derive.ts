import type { HostSignals } from '../../core/signals.js';

/**
 * Pure derivations of host signals: gauges from one snapshot, rates from two. A counter that went
 * down (the host rebooted, a device was re-created) yields no rate for that interval rather than a
 * negative one.
 */

export interface DerivedSample {
  signal: string;
  labels: Record<string, string>;
  value: number;
}

function rate(now: number, before: number, seconds: number): number | undefined {
  if (seconds <= 0 || now < before) return undefined;
  return (now - before) / seconds;
}

function cpuBusy(c: HostSignals['cpu']): { busy: number; total: number } {
  const total = c.user + c.nice + c.system + c.idle + c.iowait + c.irq + c.softirq + c.steal;
  return { busy: total - c.idle - c.iowait, total };
}

export function deriveHost(cur: HostSignals, prev: HostSignals | undefined): DerivedSample[] {
  const out: DerivedSample[] = [];
  const add = (signal: string, value: number | undefined, labels: Record<string, string> = {}) => {
    if (value !== undefined && Number.isFinite(value)) out.push({ signal, labels, value });
  };
  add('node_load1', cur.load1);
  add('node_load5', cur.load5);
  add('node_load15', cur.load15);
  add('node_load1_per_cpu', cur.cpuCount > 0 ? cur.load1 / cur.cpuCount : undefined);
  const m = cur.memory;
  add('node_memory_available_ratio', m.totalBytes > 0 ? m.availableBytes / m.totalBytes : undefined);
  add('node_memory_available_bytes', m.availableBytes);
  add('node_memory_total_bytes', m.totalBytes);
  add('node_swap_used_ratio', m.swapTotalBytes > 0 ? 1 - m.swapFreeBytes / m.swapTotalBytes : 0);
  for (const f of cur.filesystems) {
    const l = { mountpoint: f.mountpoint, device: f.device };
    add('node_filesystem_avail_ratio', f.sizeBytes > 0 ? f.availBytes / f.sizeBytes : undefined, l);
    add('node_filesystem_avail_bytes', f.availBytes, l);
    add('node_filesystem_files_free_ratio', f.files > 0 ? f.filesFree / f.files : undefined, l);
  }
  if (!prev || prev.bootTime !== cur.bootTime) return out;
  const dt = (cur.at - prev.at) / 1000;
  if (dt <= 0) return out;
  const a = cpuBusy(cur.cpu);
  const b = cpuBusy(prev.cpu);
  if (a.total > b.total && a.busy >= b.busy) {
    add('node_cpu_utilization', (a.busy - b.busy) / (a.total - b.total));
    add('node_cpu_iowait_ratio', (cur.cpu.iowait - prev.cpu.iowait) / (a.total - b.total));
  }
  const prevDisks = new Map(prev.disks.map((d) => [d.device, d]));
  for (const d of cur.disks) {
    const p = prevDisks.get(d.device);
    if (!p) continue;
    const l = { device: d.device };
    add('node_disk_read_bytes_per_second', rate(d.readBytes, p.readBytes, dt), l);
    add('node_disk_written_bytes_per_second', rate(d.writtenBytes, p.writtenBytes, dt), l);
    add('node_disk_io_utilization', rate(d.ioTimeSeconds, p.ioTimeSeconds, dt), l);
  }
  const prevNet = new Map(prev.network.map((n) => [n.device, n]));
  for (const n of cur.network) {
    const p = prevNet.get(n.device);
    if (!p) continue;
    const l = { device: n.device };
    add('node_network_receive_bytes_per_second', rate(n.receiveBytes, p.receiveBytes, dt), l);
    add('node_network_transmit_bytes_per_second', rate(n.transmitBytes, p.transmitBytes, dt), l);
    const errs = rate(n.receiveErrors + n.transmitErrors, p.receiveErrors + p.transmitErrors, dt);
    add('node_network_errors_per_second', errs, l);
    const drops = rate(n.receiveDrops + n.transmitDrops, p.receiveDrops + p.transmitDrops, dt);
    add('node_network_drops_per_second', drops, l);
  }
  return out;
}
