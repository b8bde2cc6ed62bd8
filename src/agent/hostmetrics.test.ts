import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import {
  hostMetricsText,
  parseDiskstats,
  parseLoadavg,
  parseMeminfo,
  parseMounts,
  parseNetDev,
  parseProcStatCpu,
  readHostSignals,
} from './hostmetrics.js';
import { agentMetricsText, startAgentMetrics } from './metrics-server.js';

const STAT = `cpu  11807 26 2733 40385 230 0 60 9 0 0
cpu0 7428 13 1359 18762 65 0 10 5 0 0
cpu1 4379 13 1374 21623 165 0 50 4 0 0
intr 1 2 3
btime 1764885000
`;

test('hostmetrics: /proc/stat gives seconds per mode (USER_HZ 100) and the boot time', () => {
  const r = parseProcStatCpu(STAT);
  assert.equal(r.cpus.length, 2);
  assert.equal(r.cpu.user, 118.07);
  assert.equal(r.cpu.idle, 403.85);
  assert.equal(r.cpus[1]?.system, 13.74);
  assert.equal(r.bootTime, 1764885000);
});

test('hostmetrics: loadavg, meminfo (with and without MemAvailable)', () => {
  assert.deepEqual(parseLoadavg('1.09 0.54 0.22 2/153 8007\n'), { load1: 1.09, load5: 0.54, load15: 0.22 });
  const m = parseMeminfo(
    'MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\nBuffers: 10 kB\nCached: 200 kB\nSwapTotal: 50 kB\nSwapFree: 40 kB\nHugePages_Total:       0\n',
  );
  assert.equal(m.totalBytes, 1_024_000);
  assert.equal(m.availableBytes, 614_400);
  assert.equal(m.swapFreeBytes, 40_960);
  const old = parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n');
  assert.equal(old.availableBytes, 310 * 1024);
});

test('hostmetrics: diskstats keeps whole disks, sectors become bytes', () => {
  const d = parseDiskstats(
    [
      ' 254       0 vda 36050 8057 2073746 9650 35059 29418 3410656 11201 0 5252 21582 4464 48 147976 222',
      ' 254       1 vda1 100 0 200 1 100 0 200 1 0 5 5',
      '   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0',
      ' 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0',
      ' 259       0 nvme0n1 10 0 8 0 20 0 16 0 0 1500 0',
      ' 259       1 nvme0n1p1 10 0 8 0 20 0 16 0 0 1500 0',
    ].join('\n'),
  );
  assert.deepEqual(
    d.map((x) => x.device),
    ['vda', 'nvme0n1'],
  );
  assert.equal(d[0]?.readBytes, 2073746 * 512);
  assert.equal(d[0]?.writtenBytes, 3410656 * 512);
  assert.equal(d[0]?.ioTimeSeconds, 5.252);
  assert.equal(d[1]?.ioTimeSeconds, 1.5);
});

test('hostmetrics: net/dev per device with errors and drops', () => {
  const n = parseNetDev(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1083898    4865    0    0    0     0          0         0  1083898    4865    0    0    0     0       0          0
  eth0: 500 10 2 3 0 0 0 0 700 20 4 5 0 0 0 0
`);
  assert.equal(n.length, 2);
  assert.deepEqual(n[1], {
    device: 'eth0',
    receiveBytes: 500,
    receivePackets: 10,
    receiveErrors: 2,
    receiveDrops: 3,
    transmitBytes: 700,
    transmitPackets: 20,
    transmitErrors: 4,
    transmitDrops: 5,
  });
});

test('hostmetrics: mounts skip pseudo filesystems, unescape octal, dedupe mountpoints', () => {
  const m = parseMounts(
    [
      'proc /proc proc rw 0 0',
      '/dev/vda / ext4 rw 0 0',
      'tmpfs /dev/shm tmpfs rw 0 0',
      '/dev/vdb /srv/my\\040data xfs rw 0 0',
      '/dev/vda / ext4 rw 0 0',
      'cgroup2 /sys/fs/cgroup cgroup2 rw 0 0',
    ].join('\n'),
  );
  assert.deepEqual(m, [
    { device: '/dev/vda', mountpoint: '/', fstype: 'ext4' },
    { device: '/dev/vdb', mountpoint: '/srv/my data', fstype: 'xfs' },
  ]);
});

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

test('hostmetrics: this host read from /proc and statfs; /metrics passes promtool check metrics', async (t) => {
  if (!existsSync('/proc/stat')) {
    t.skip('no /proc (not Linux)');
    return;
  }
  const h = await readHostSignals();
  assert.ok(h.cpuCount >= 1);
  assert.ok(h.memory.totalBytes > 0 && h.memory.availableBytes <= h.memory.totalBytes);
  assert.ok(
    h.filesystems.some((f) => f.mountpoint === '/' && f.sizeBytes > 0),
    'the root filesystem',
  );
  assert.ok(h.network.some((n) => n.device === 'lo'));
  const text = agentMetricsText(h, [
    { id: 'web-1', state: 'running', healthy: true, restarts: 2 },
    { id: 'web-"2"', state: 'backoff', healthy: false, restarts: 5 },
  ]);
  assert.match(text, /^node_cpu_seconds_total\{cpu="0",mode="user"\} [\d.]+$/m);
  assert.match(text, /^node_memory_MemAvailable_bytes \d+$/m);
  assert.match(text, /^node_filesystem_avail_bytes\{device="[^"]+",fstype="[^"]+",mountpoint="\/"\} \d+$/m);
  assert.match(text, /^node_network_receive_bytes_total\{device="lo"\} \d+$/m);
  assert.match(text, /^nines_agent_instance_restarts_total\{instance="web-\\"2\\""\} 5$/m);
  assert.equal(hostMetricsText(h).text().split('# TYPE node_load1 ').length, 2, 'one TYPE line per family');
  if (!have('promtool')) {
    t.skip('promtool not found: apt-get install prometheus');
    return;
  }
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  // node_exporter's memory names (node_memory_MemAvailable_bytes …) are camelCase, which promtool's
  // linter flags (exit 3) on node_exporter itself too; compatibility wins for exactly those names, and
  // any other finding (or a parse error) fails the test.
  const findings = `${check.stdout}${check.stderr}`.split('\n').filter((l) => l.trim() !== '');
  const other = findings.filter(
    (l) =>
      !/^node_memory_(Mem|Swap)\w+_bytes metric names should be written in 'snake_case' not 'camelCase'$/.test(
        l.trim(),
      ),
  );
  assert.deepEqual(other, [], `promtool: ${findings.join('\n')}`);
  assert.ok(check.status === 0 || check.status === 3, `promtool exit ${check.status}`);
});

test('hostmetrics: the agent metrics listener answers /metrics and 404 elsewhere', async (t) => {
  if (!existsSync('/proc/stat')) {
    t.skip('no /proc (not Linux)');
    return;
  }
  const srv = await startAgentMetrics(
    { host: '127.0.0.1', port: 0 },
    { hostSignals: () => readHostSignals(), observed: () => [] },
  );
  try {
    const res = await fetch(`http://127.0.0.1:${srv.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(await res.text(), /^node_load1 /m);
    const other = await fetch(`http://127.0.0.1:${srv.port}/`);
    assert.equal(other.status, 404);
    await other.body?.cancel();
  } finally {
    await srv.close();
  }
});
