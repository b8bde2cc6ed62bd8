import { MetricsText } from './exposition.js';
import type { HostSignals } from './signals.js';

/** node_exporter's names for host signals, shared by the agent's and the controller's /metrics. */

const CPU_MODES = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;

/** The node_exporter-compatible exposition of a snapshot (plus `extra` labels on every sample). */
export function hostMetricsText(
  h: HostSignals,
  out = new MetricsText(),
  extra: Record<string, string> = {},
): MetricsText {
  h.cpus.forEach((c, i) => {
    for (const mode of CPU_MODES) {
      out.add(
        'node_cpu_seconds_total',
        'counter',
        'Seconds the CPUs spent in each mode.',
        { ...extra, cpu: String(i), mode },
        c[mode],
      );
    }
  });
  out.add('node_load1', 'gauge', '1m load average.', extra, h.load1);
  out.add('node_load5', 'gauge', '5m load average.', extra, h.load5);
  out.add('node_load15', 'gauge', '15m load average.', extra, h.load15);
  const mem: [string, number][] = [
    ['MemTotal', h.memory.totalBytes],
    ['MemFree', h.memory.freeBytes],
    ['MemAvailable', h.memory.availableBytes],
    ['Buffers', h.memory.buffersBytes],
    ['Cached', h.memory.cachedBytes],
    ['SwapTotal', h.memory.swapTotalBytes],
    ['SwapFree', h.memory.swapFreeBytes],
  ];
  for (const [k, v] of mem) {
    out.add(`node_memory_${k}_bytes`, 'gauge', `Memory information field ${k}_bytes.`, extra, v);
  }
  for (const f of h.filesystems) {
    const l = { ...extra, device: f.device, fstype: f.fstype, mountpoint: f.mountpoint };
    out.add('node_filesystem_size_bytes', 'gauge', 'Filesystem size in bytes.', l, f.sizeBytes);
    out.add('node_filesystem_free_bytes', 'gauge', 'Filesystem free space in bytes.', l, f.freeBytes);
    out.add(
      'node_filesystem_avail_bytes',
      'gauge',
      'Filesystem space available to non-root users in bytes.',
      l,
      f.availBytes,
    );
    out.add('node_filesystem_files', 'gauge', 'Filesystem total file nodes.', l, f.files);
    out.add('node_filesystem_files_free', 'gauge', 'Filesystem total free file nodes.', l, f.filesFree);
  }
  for (const d of h.disks) {
    const l = { ...extra, device: d.device };
    out.add(
      'node_disk_reads_completed_total',
      'counter',
      'The total number of reads completed successfully.',
      l,
      d.readsCompleted,
    );
    out.add(
      'node_disk_writes_completed_total',
      'counter',
      'The total number of writes completed successfully.',
      l,
      d.writesCompleted,
    );
    out.add(
      'node_disk_read_bytes_total',
      'counter',
      'The total number of bytes read successfully.',
      l,
      d.readBytes,
    );
    out.add(
      'node_disk_written_bytes_total',
      'counter',
      'The total number of bytes written successfully.',
      l,
      d.writtenBytes,
    );
    out.add(
      'node_disk_io_time_seconds_total',
      'counter',
      'Total seconds spent doing I/Os.',
      l,
      d.ioTimeSeconds,
    );
  }
  for (const n of h.network) {
    const l = { ...extra, device: n.device };
    out.add(
      'node_network_receive_bytes_total',
      'counter',
      'Network device statistic receive_bytes.',
      l,
      n.receiveBytes,
    );
    out.add(
      'node_network_transmit_bytes_total',
      'counter',
      'Network device statistic transmit_bytes.',
      l,
      n.transmitBytes,
    );
    out.add(
      'node_network_receive_packets_total',
      'counter',
      'Network device statistic receive_packets.',
      l,
      n.receivePackets,
    );
    out.add(
      'node_network_transmit_packets_total',
      'counter',
      'Network device statistic transmit_packets.',
      l,
      n.transmitPackets,
    );
    out.add(
      'node_network_receive_errs_total',
      'counter',
      'Network device statistic receive_errs.',
      l,
      n.receiveErrors,
    );
    out.add(
      'node_network_transmit_errs_total',
      'counter',
      'Network device statistic transmit_errs.',
      l,
      n.transmitErrors,
    );
    out.add(
      'node_network_receive_drop_total',
      'counter',
      'Network device statistic receive_drop.',
      l,
      n.receiveDrops,
    );
    out.add(
      'node_network_transmit_drop_total',
      'counter',
      'Network device statistic transmit_drop.',
      l,
      n.transmitDrops,
    );
  }
  out.add('node_boot_time_seconds', 'gauge', 'Node boot time, in unixtime.', extra, h.bootTime);
  return out;
}
