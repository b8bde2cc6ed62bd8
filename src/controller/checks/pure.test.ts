import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serviceSchema } from '../../core/config.js';
import { evaluateQuorum, type LocationResult, quorumOf } from './quorum.js';
import { availabilityFor, modeMaintenanceSpans, type UptimeRow } from './reports.js';
import { serviceState } from './service.js';
import { computeUptime, errorBudgetLeft, mergeSpans } from './uptime.js';

const r = (
  location: string,
  ok: boolean,
  at = 1000,
  message = ok ? 'status 200' : 'ECONNREFUSED',
): LocationResult => ({
  location,
  ok,
  at,
  message,
  latencyMs: 5,
});

test('quorum: a dependency failing from 1 of 3 locations is degraded, from 2 of 3 down', () => {
  const o = { now: 2000, staleAfterMs: 10_000 };
  assert.equal(evaluateQuorum([r('a', true), r('b', true), r('c', true)], o).state, 'up');
  const one = evaluateQuorum([r('a', false), r('b', true), r('c', true)], o);
  assert.equal(one.state, 'degraded');
  assert.equal(one.quorum, 2);
  assert.equal(one.message, 'failing from 1 of 3 locations (quorum 2): a: ECONNREFUSED');
  const two = evaluateQuorum([r('a', false), r('b', true), r('c', false)], o);
  assert.equal(two.state, 'down');
  assert.deepEqual(
    two.failing.map((x) => x.location),
    ['a', 'c'],
  );
  assert.equal(evaluateQuorum([r('a', false), r('b', false), r('c', false)], o).state, 'down');
});

test('quorum: configured k, clamped to the locations that count; stale results do not vote', () => {
  assert.equal(quorumOf(undefined, 1), 1);
  assert.equal(quorumOf(undefined, 2), 2);
  assert.equal(quorumOf(undefined, 4), 3);
  assert.equal(quorumOf(3, 2), 2);
  assert.equal(quorumOf(1, 5), 1);
  assert.equal(quorumOf(undefined, 0), 0);
  const o = { now: 100_000, staleAfterMs: 10_000, quorum: 1 };
  // k = 1: any failing location makes it down.
  assert.equal(evaluateQuorum([r('a', false, 95_000), r('b', true, 95_000)], o).state, 'down');
  // The failing location went silent: its old failure no longer counts.
  const v = evaluateQuorum([r('a', false, 10_000), r('b', true, 95_000)], o);
  assert.equal(v.state, 'up');
  assert.deepEqual(v.stale, ['a']);
  assert.equal(evaluateQuorum([r('a', true, 1)], o).state, 'unknown');
  assert.equal(evaluateQuorum([], o).message, 'no location has reported yet');
});

test('uptime: hand-computed availability, maintenance excluded and shown, incidents with cause', () => {
  const H = 3_600_000;
  // 0..10 h: up from 0, down 2h..3h (cause x), degraded 5h..6h, unknown 8h..9h, maintenance 2.5h..3.5h.
  const rep = computeUptime(
    { state: 'up', cause: 'up from 3 locations' },
    [
      { at: 2 * H, to: 'down', cause: 'x' },
      { at: 3 * H, to: 'up', cause: 'ok' },
      { at: 5 * H, to: 'degraded', cause: 'one' },
      { at: 6 * H, to: 'up', cause: 'ok' },
      { at: 8 * H, to: 'unknown', cause: 'silent' },
      { at: 9 * H, to: 'up', cause: 'ok' },
    ],
    0,
    10 * H,
    [{ start: 2.5 * H, end: 3.5 * H }],
  );
  assert.equal(rep.downMs, 0.5 * H);
  assert.equal(rep.degradedMs, 1 * H);
  assert.equal(rep.unknownMs, 1 * H);
  assert.equal(rep.maintenanceMs, 1 * H);
  assert.equal(rep.upMs, 10 * H - 0.5 * H - 1 * H - 1 * H - 1 * H);
  assert.equal(rep.availability, (7.5 * H) / (8 * H));
  assert.deepEqual(rep.incidents, [{ start: 2 * H, end: 3 * H, durationMs: H, cause: 'x' }]);
  assert.deepEqual(rep.maintenance, [{ start: 2.5 * H, end: 3.5 * H }]);
  // A 90 % objective over 8 h measured allows 48 min down; 30 min spent leaves 1 - 30/48.
  assert.ok(Math.abs((errorBudgetLeft(rep, 0.9) ?? 0) - (1 - 0.5 / 0.8)) < 1e-9);
  // Down at the start of the window and still down at its end: one ongoing incident.
  const ongoing = computeUptime({ state: 'down', cause: 'dns' }, [], 0, H);
  assert.deepEqual(ongoing.incidents, [{ start: 0, end: null, durationMs: H, cause: 'dns' }]);
  assert.equal(ongoing.availability, 0);
  assert.equal(computeUptime(undefined, [], 0, H).availability, null);
  assert.deepEqual(
    mergeSpans(
      [
        { start: 5, end: 9 },
        { start: 0, end: 6 },
        { start: 20, end: 30 },
      ],
      1,
      25,
    ),
    [
      { start: 1, end: 9 },
      { start: 20, end: 25 },
    ],
  );
});

test('reports: maintenance spans from service mode events', () => {
  const ev = (id: number, at: number, mode: string) => ({
    id,
    at,
    kind: 'service.mode',
    subject: 'web',
    message: `service web is ${mode} (set by admin (admin))`,
    data: null,
  });
  // Newest first, as the event log lists them.
  const spans = modeMaintenanceSpans(
    [ev(4, 900, 'maintenance'), ev(3, 500, 'live'), ev(2, 300, 'read-only'), ev(1, 100, 'maintenance')],
    1000,
  );
  assert.deepEqual(spans, [
    { start: 100, end: 300 },
    { start: 900, end: 1000 },
  ]);
});

test('availability: seed 004 — three components at 99.9 % in series ≈ 99.7 %', () => {
  const row = (
    kind: 'service' | 'check',
    name: string,
    availability: number,
    service?: string,
  ): UptimeRow => ({
    kind,
    name,
    window: '30d',
    objective: 0.999,
    errorBudgetLeft: null,
    from: 0,
    to: 1,
    upMs: 0,
    degradedMs: 0,
    downMs: 0,
    unknownMs: 0,
    maintenanceMs: 0,
    availability,
    incidents: [],
    maintenance: [],
    ...(service ? { service } : {}),
  });
  const a = availabilityFor(
    { name: 'web', instances: 1 },
    [
      row('service', 'web', 0.999),
      row('check', 'db', 0.999, 'web'),
      row('check', 'payments', 0.999, 'web'),
      row('check', 'other', 0.5),
    ],
    0.999,
    '30d',
  );
  assert.equal(a.components.length, 3);
  assert.ok(Math.abs((a.predicted ?? 0) - 0.997002999) < 1e-9);
  assert.equal(a.meetsObjective, false);
  assert.ok(Math.abs(a.requiredPerComponent - 0.999 ** (1 / 3)) < 1e-12);
  // Two instances that together measured 99.99 % are each 99 %; two of them in parallel give 99.99 % again.
  const b = availabilityFor({ name: 'api', instances: 2 }, [row('service', 'api', 0.9999)], 0.999, '30d');
  assert.ok(Math.abs((b.components[0]?.measured ?? 0) - 0.99) < 1e-9);
  assert.ok(Math.abs((b.predicted ?? 0) - 0.9999) < 1e-9);
  assert.equal(b.instancesNeeded, 2);
});

test('service state: healthy routed instances against the desired count', () => {
  const svc = { spec: serviceSchema.parse({ command: 'x', instances: 3 }), currentRelease: 'v1' };
  const inst = (healthy: boolean) => ({
    desired: 'running' as const,
    route: 'ready' as const,
    observed: { id: 'i', state: 'running' as const, healthy, restarts: 0 },
  });
  assert.equal(serviceState(svc, [inst(true), inst(true), inst(true)]).state, 'up');
  assert.equal(serviceState(svc, [inst(true), inst(false), inst(true)]).message, '2 of 3 instances healthy');
  assert.equal(serviceState(svc, [inst(true), inst(false), inst(true)]).state, 'degraded');
  assert.equal(serviceState(svc, [inst(false)]).state, 'down');
  assert.equal(serviceState({ ...svc, currentRelease: null }, []).state, 'unknown');
  // A worker is never routed: its running, up instances are its healthy ones.
  const worker = { ...svc, spec: serviceSchema.parse({ command: 'x', instances: 2, kind: 'worker' }) };
  const unrouted = { ...inst(true), route: 'none' as const };
  assert.equal(serviceState(worker, [unrouted, unrouted]).state, 'up');
  assert.equal(serviceState(svc, [unrouted]).state, 'down');
});

test('quorum: consecutiveFailures N counts a location failing only after N failures in a row', () => {
  const f = (location: string, failures: number): LocationResult => ({ ...r(location, false), failures });
  const o = { now: 2000, staleAfterMs: 10_000 };
  // Default 1: the last result decides (as before; a failed result without a streak counts as 1).
  assert.equal(evaluateQuorum([r('a', false), r('b', false), r('c', true)], o).state, 'down');
  assert.equal(evaluateQuorum([f('a', 1), r('b', true), r('c', true)], o).state, 'degraded');
  const three = { ...o, consecutiveFailures: 3 };
  const early = evaluateQuorum([f('a', 2), f('b', 2), r('c', true)], three);
  assert.equal(early.state, 'up');
  assert.deepEqual(
    early.passing.map((x) => x.location),
    ['a', 'b', 'c'],
  );
  assert.equal(evaluateQuorum([f('a', 3), f('b', 2), r('c', true)], three).state, 'degraded');
  const down = evaluateQuorum([f('a', 3), f('b', 7), r('c', true)], three);
  assert.equal(down.state, 'down');
  assert.equal(down.message, 'failing from 2 of 3 locations (quorum 2): a: ECONNREFUSED; b: ECONNREFUSED');
});
