import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import type { HostSignals } from '../../core/signals.js';
import { deriveHost } from './derive.js';
import { controllerMetricsText } from './metrics.js';
import { histogramQuantile, Signals } from './signals.js';

function host(at: number, o: Partial<HostSignals> = {}): HostSignals {
  const cpu = { user: 10, nice: 0, system: 10, idle: 80, iowait: 0, irq: 0, softirq: 0, steal: 0 };
  return {
    at,
    cpuCount: 2,
    cpu,
    cpus: [cpu],
    load1: 3,
    load5: 2,
    load15: 1,
    memory: {
      totalBytes: 1000,
      freeBytes: 100,
      availableBytes: 250,
      buffersBytes: 0,
      cachedBytes: 0,
      swapTotalBytes: 0,
      swapFreeBytes: 0,
    },
    filesystems: [
      {
        mountpoint: '/',
        device: '/dev/vda',
        fstype: 'ext4',
        sizeBytes: 1000,
        freeBytes: 100,
        availBytes: 50,
        files: 10,
        filesFree: 5,
      },
    ],
    disks: [
      {
        device: 'vda',
        readsCompleted: 0,
        writesCompleted: 0,
        readBytes: 0,
        writtenBytes: 0,
        ioTimeSeconds: 0,
      },
    ],
    network: [
      {
        device: 'eth0',
        receiveBytes: 0,
        transmitBytes: 0,
        receivePackets: 0,
        transmitPackets: 0,
        receiveErrors: 0,
        transmitErrors: 0,
        receiveDrops: 0,
        transmitDrops: 0,
      },
    ],
    bootTime: 1,
    ...o,
  };
}

const value = (xs: { signal: string; value: number; labels: Record<string, string> }[], s: string) =>
  xs.find((x) => x.signal === s)?.value;

test('derive: gauges from one snapshot, rates from two (hand-computed)', () => {
  const a = host(0);
  const b = host(10_000, {
    // 100 s of CPU time passed over all CPUs, 60 of them idle: 40 % busy.
    cpu: { user: 30, nice: 0, system: 30, idle: 140, iowait: 0, irq: 0, softirq: 0, steal: 0 },
    disks: [
      {
        device: 'vda',
        readsCompleted: 1,
        writesCompleted: 1,
        readBytes: 10_240,
        writtenBytes: 20_480,
        ioTimeSeconds: 5,
      },
    ],
    network: [
      {
        device: 'eth0',
        receiveBytes: 1000,
        transmitBytes: 500,
        receivePackets: 0,
        transmitPackets: 0,
        receiveErrors: 3,
        transmitErrors: 2,
        receiveDrops: 0,
        transmitDrops: 0,
      },
    ],
  });
  const one = deriveHost(a, undefined);
  assert.equal(value(one, 'node_memory_available_ratio'), 0.25);
  assert.equal(value(one, 'node_filesystem_avail_ratio'), 0.05);
  assert.equal(value(one, 'node_load1_per_cpu'), 1.5);
  assert.equal(value(one, 'node_cpu_utilization'), undefined, 'no rate from one snapshot');
  const two = deriveHost(b, a);
  assert.equal(value(two, 'node_cpu_utilization'), 0.4);
  assert.equal(value(two, 'node_disk_read_bytes_per_second'), 1024);
  assert.equal(value(two, 'node_disk_written_bytes_per_second'), 2048);
  assert.equal(value(two, 'node_disk_io_utilization'), 0.5);
  assert.equal(value(two, 'node_network_receive_bytes_per_second'), 100);
  assert.equal(value(two, 'node_network_errors_per_second'), 0.5);
  // A reboot (new boot time) resets the counters: no rate rather than a negative one.
  assert.equal(value(deriveHost(host(20_000, { bootTime: 2 }), b), 'node_cpu_utilization'), undefined);
});

test('signals: host_up follows report age; query by signal and selector; history', () => {
  let now = 1_000_000;
  const s = new Signals({ now: () => now, hostDownAfterMs: 15_000 });
  const h = { id: 'h-1', name: 'alpha', zone: 'a' };
  s.agentReport(
    h,
    [{ id: 'web-1', service: 'web', state: 'running', healthy: true, restarts: 1 }],
    host(now),
  );
  now += 5000;
  s.agentReport(
    h,
    [{ id: 'web-1', service: 'web', state: 'backoff', healthy: false, restarts: 2 }],
    host(now),
  );
  assert.equal(s.query('host_up', { host: 'h-1' })[0]?.value, 1);
  assert.equal(s.query('instance_healthy', { service: 'web' })[0]?.value, 0);
  assert.equal(s.query('instance_restarts', { instance: 'web-1' })[0]?.value, 2);
  assert.deepEqual(
    s.query('node_filesystem_avail_ratio', { mountpoint: '/' }).map((x) => x.labels),
    [{ host: 'h-1', hostname: 'alpha', mountpoint: '/', device: '/dev/vda' }],
  );
  const hist = s.range('node_memory_available_ratio', { host: 'h-1' }, 0);
  assert.equal(hist.length, 1);
  assert.equal(hist[0]?.points.length, 2);
  now += 16_000;
  assert.equal(s.query('host_up', { host: 'h-1' })[0]?.value, 0, 'silent for longer than hostDownAfter');
  assert.equal(s.query('host_report_age_seconds')[0]?.value, 16);
});

test('signals: service counts from proxy reports survive a proxy restart and sum over proxies', () => {
  let now = 0;
  const s = new Signals({ now: () => now });
  s.proxyReport('p1', [{ name: 'web', requests: 100, failed: 0 }]);
  s.proxyReport('p2', [{ name: 'web', requests: 50, failed: 0 }]);
  now = 60_000;
  s.proxyReport('p1', [{ name: 'web', requests: 700, failed: 6 }]);
  s.proxyReport('p2', [{ name: 'web', requests: 50, failed: 0 }]);
  now = 120_000;
  // p2 restarted: 30 requests since, 3 failed.
  s.proxyReport('p2', [{ name: 'web', requests: 30, failed: 3 }]);
  const c = s.serviceCounts('web', 60_000);
  assert.deepEqual(c, { requests: 30, failed: 3, coveredMs: 60_000 });
  const all = s.serviceCounts('web', 3_600_000);
  assert.equal(all?.requests, 630);
  assert.equal(all?.failed, 9);
  assert.equal(s.query('service_error_ratio', { service: 'web' })[0]?.value, 9 / 630);
  assert.equal(s.query('service_requests_per_second', { service: 'web' })[0]?.value, 0.5);
});

test('signals: sources add their samples to every query', () => {
  const s = new Signals({ now: () => 5 });
  s.addSource('checks', (now) => [{ signal: 'check_up', labels: { check: 'api' }, value: 0, at: now }]);
  assert.deepEqual(s.query('check_up'), [{ signal: 'check_up', labels: { check: 'api' }, value: 0, at: 5 }]);
});

test('latency: histogram quantiles (hand-computed) over a window, summed over proxies', () => {
  const le = [0.01, 0.1, 1];
  // 10 answers: 5 under 10 ms, 4 in (10 ms, 100 ms], 1 in (100 ms, 1 s].
  assert.equal(histogramQuantile(le, [5, 4, 1, 0], 0.5), 0.01);
  // rank 9 of 10: 4th of the 4 in the second bucket → its upper bound.
  assert.ok(Math.abs((histogramQuantile(le, [5, 4, 1, 0], 0.9) ?? 0) - 0.1) < 1e-12);
  // rank 7: 2nd of 4 in (0.01, 0.1] → 0.01 + 0.09 × 2/4.
  assert.ok(Math.abs((histogramQuantile(le, [5, 4, 1, 0], 0.7) ?? 0) - 0.055) < 1e-12);
  assert.equal(histogramQuantile(le, [0, 0, 0, 3], 0.5), 1, '+Inf answers give the highest bound');
  assert.equal(histogramQuantile(le, [0, 0, 0, 0], 0.5), undefined);

  let now = 0;
  const s = new Signals({ now: () => now });
  const rep = (proxy: string, counts: number[]) =>
    s.proxyReport(proxy, [
      {
        name: 'web',
        requests: counts.reduce((a, b) => a + b, 0),
        failed: 0,
        latency: { le, counts, sumSeconds: 0, count: 0 },
      },
    ]);
  rep('p1', [100, 0, 0, 0]);
  rep('p2', [0, 0, 0, 0]);
  now = 600_000;
  // In the last 5 minutes: p1 adds 10 fast answers, p2 adds 10 slow ones (0.1–1 s).
  rep('p1', [110, 0, 0, 0]);
  rep('p2', [0, 0, 10, 0]);
  assert.ok(Math.abs((s.serviceLatencyQuantile('web', 0.5, 300_000) ?? 0) - 0.01) < 1e-12);
  assert.ok(
    Math.abs((s.serviceLatencyQuantile('web', 0.99, 300_000) ?? 0) - (0.1 + 0.9 * (9.8 / 10))) < 1e-9,
  );
  assert.ok(s.query('service_latency_p99_seconds', { service: 'web' }).length === 1);
});

test('signals: history keeps one point per step per series, the latest value last', () => {
  let now = 0;
  const s = new Signals({ now: () => now, historyStepMs: 30_000, historyMs: 3_600_000 });
  for (let i = 0; i <= 24; i++) {
    now = i * 5000;
    s.record('x', { a: '1' }, i, now);
  }
  const pts = s.range('x', { a: '1' }, 0)[0]?.points ?? [];
  assert.deepEqual(
    pts.map((p) => p.at),
    [0, 25_000, 50_000, 75_000, 100_000, 120_000],
  );
  assert.equal(pts[pts.length - 1]?.value, 24);
});

test('signals: request rate, 5xx share and p99 per release from the proxies per-instance counters', (t) => {
  let now = 0;
  const s = new Signals({ now: () => now });
  const h = { id: 'h-1', name: 'alpha', zone: 'a' };
  const inst = (id: string, release: string) => ({
    id,
    service: 'web',
    state: 'running',
    healthy: true,
    restarts: 0,
    release,
  });
  s.agentReport(h, [inst('w1', 'v1'), inst('w2', 'v1'), inst('w3', 'v2')]);
  // Bucket i holds answers ≤ LATENCY_BOUNDS_MS[i] ms; 14 buckets (13 bounds + Inf).
  const lat = (bucket: number, n: number) => Array.from({ length: 14 }, (_, i) => (i === bucket ? n : 0));
  const rep = (proxy: string, rows: [string, number, number, number[]][]) =>
    s.proxyReport(
      proxy,
      [],
      rows.map(([id, requests, failed, latency]) => ({
        id,
        up: true,
        inflight: 0,
        drained: false,
        requests,
        failed,
        latency,
      })),
    );
  rep('p1', [
    ['w1', 10, 0, lat(3, 10)],
    ['w2', 5, 0, lat(3, 5)],
    ['w3', 7, 7, lat(9, 7)],
    ['unknown', 99, 99, lat(0, 99)],
  ]);
  rep('p2', [['w3', 50, 5, lat(9, 50)]]);
  now = 60_000;
  // In this minute: v1 gets 60 + 60 answers (3 of them 5xx) in (5, 10] ms; v2 gets 30 answers through
  // p1, 10 of them 5xx, in (500, 1000] ms; p2 restarted (its counters went down): its 20 answers since,
  // 10 of them 5xx, in (1, 2.5] s, all count.
  rep('p1', [
    ['w1', 70, 3, lat(3, 70)],
    ['w2', 65, 0, lat(3, 65)],
    ['w3', 37, 17, lat(9, 37)],
  ]);
  rep('p2', [['w3', 20, 10, lat(10, 20)]]);
  const v = (signal: string, release: string) => s.query(signal, { service: 'web', release })[0]?.value;
  // v1: 120 answers in 60 s = 2/s; 3 5xx of 120 = 2.5 %; all in (5, 10] ms → p99 = 5 + 5 × 0.99 ms.
  assert.equal(v('service_release_requests_per_second', 'v1'), 2);
  assert.equal(v('service_release_error_ratio', 'v1'), 0.025);
  assert.ok(Math.abs((v('service_release_latency_p99_seconds', 'v1') ?? 0) - 0.00995) < 1e-12);
  // v2: 30 + 20 = 50 answers = 50/60 per second; 10 + 10 5xx = 40 %. 30 in (0.5, 1] s and 20 in
  // (1, 2.5] s: rank 49.5 of 50 is the 19.5th of 20 in the last bucket → 1 + 1.5 × 19.5/20 s.
  assert.ok(Math.abs((v('service_release_requests_per_second', 'v2') ?? 0) - 50 / 60) < 1e-12);
  assert.equal(v('service_release_error_ratio', 'v2'), 0.4);
  assert.ok(
    Math.abs((v('service_release_latency_p99_seconds', 'v2') ?? 0) - (1 + 1.5 * (19.5 / 20))) < 1e-12,
  );
  assert.deepEqual(
    s.releaseKeys(),
    [
      { service: 'web', release: 'v1' },
      { service: 'web', release: 'v2' },
    ],
    'an instance no agent reported is not counted',
  );
  assert.deepEqual(s.releaseCounts('web', 'v2', 60_000), { requests: 50, failed: 20, coveredMs: 60_000 });
  // No service counters were reported: the per-release signals do not invent service-wide ones.
  assert.equal(s.query('service_requests_per_second').length, 0);

  const text = controllerMetricsText(s);
  assert.match(text, /^nines_service_release_requests_total\{service="web",release="v1"\} 120$/m);
  assert.match(text, /^nines_service_release_failed_requests_total\{service="web",release="v2"\} 20$/m);
  assert.match(text, /^nines_service_release_error_ratio\{service="web",release="v2"\} 0\.4$/m);
  assert.match(text, /^nines_service_release_latency_p99_seconds\{service="web",release="v1"\} /m);
  // A release that served nothing for the whole history is dropped.
  now += 7 * 3_600_000;
  assert.equal(s.query('service_release_requests_per_second').length, 0);
  assert.deepEqual(s.releaseKeys(), []);
  if (spawnSync('sh', ['-c', 'command -v promtool']).status !== 0) {
    t.skip('promtool not found: apt-get install prometheus');
    return;
  }
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(`${check.stdout}${check.stderr}`.trim(), '');
});
