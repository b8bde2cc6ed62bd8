import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serviceRates } from './rates.js';
import { Signals } from './signals.js';

const LE = [0.01, 0.1, 1];

test('serviceRates: requests per second, 5xx share and p99 per interval from cumulative points', () => {
  const points = [
    { at: 0, requests: 0, failed: 0, latency: [0, 0, 0, 0] },
    { at: 5000, requests: 500, failed: 0, latency: [500, 0, 0, 0] },
    { at: 10_000, requests: 1500, failed: 100, latency: [500, 900, 100, 0] },
  ];
  const r = serviceRates(LE, points, 0, 5000);
  assert.equal(r.length, 2);
  assert.deepEqual(
    r.map((p) => [p.at, p.requestsPerSecond, p.errorRatio]),
    [
      [5000, 100, 0],
      [10_000, 200, 0.1],
    ],
  );
  // First interval: every answer under 10 ms; second: 100 of 1000 between 0.1 and 1 s.
  assert.ok((r[0]?.p99Seconds ?? 1) <= 0.01);
  assert.ok((r[1]?.p99Seconds ?? 0) > 0.1 && (r[1]?.p99Seconds ?? 2) <= 1);
});

test('serviceRates: intervals of at least stepMs, the live tail always closes one, sinceMs cuts old ones', () => {
  const points = [0, 5000, 10_000, 15_000, 17_000].map((at) => ({ at, requests: at / 10, failed: 0 }));
  const r = serviceRates(undefined, points, 0, 10_000);
  assert.deepEqual(
    r.map((p) => p.at),
    [10_000, 17_000],
  );
  assert.equal(r[1]?.requestsPerSecond, 100);
  assert.equal(r[0]?.p99Seconds, null);
  assert.deepEqual(
    serviceRates(undefined, points, 12_000, 5000).map((p) => p.at),
    [15_000, 17_000],
  );
  // No answers in an interval: no 5xx share (not 0 %, which would read as "all good").
  const idle = serviceRates(
    undefined,
    [
      { at: 0, requests: 5, failed: 0 },
      { at: 5000, requests: 5, failed: 0 },
    ],
    0,
    1,
  );
  assert.equal(idle[0]?.errorRatio, null);
  assert.equal(idle[0]?.requestsPerSecond, 0);
});

test('Signals.serviceHistory feeds serviceRates from proxy reports', () => {
  let now = 1_000_000;
  const s = new Signals({ now: () => now });
  s.proxyReport('p1', [{ name: 'web', requests: 0, failed: 0 }]);
  now += 5000;
  s.proxyReport('p1', [{ name: 'web', requests: 50, failed: 5 }]);
  const h = s.serviceHistory('web');
  const r = serviceRates(h.le, h.points, 0, 1000);
  assert.equal(r.length, 1);
  assert.equal(r[0]?.requestsPerSecond, 10);
  assert.equal(r[0]?.errorRatio, 0.1);
  assert.deepEqual(s.serviceHistory('nope').points, []);
});

test('Signals keeps a point about every 5 s while proxies report every second', () => {
  let now = 1_000_000;
  const s = new Signals({ now: () => now });
  for (let i = 0; i <= 20; i++) {
    s.proxyReport('p1', [{ name: 'web', requests: i * 10, failed: 0 }]);
    now += 1000;
  }
  const pts = s.serviceHistory('web').points;
  // 0 s (the zero), then points 5 s apart, the last one live (20 s).
  assert.deepEqual(
    pts.map((p) => (p.at - 1_000_000) / 1000),
    [0, 5, 10, 15, 20],
  );
  // A 10 s window now reaches back 10 s, not to the start.
  assert.deepEqual(s.serviceCounts('web', 10_000), { requests: 100, failed: 0, coveredMs: 10_000 });
});
