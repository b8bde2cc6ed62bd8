import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clampDesired, type HealInstance, isNoop, planHeal, rescheduleDelayMs } from './heal.js';

const inst = (id: string, o: Partial<HealInstance> = {}): HealInstance => ({
  id,
  releaseVersion: 'v2',
  hostId: 'h1',
  desired: 'running',
  route: 'ready',
  state: 'running',
  healthy: true,
  createdAt: Number(id.replace(/\D/g, '')) || 0,
  ...o,
});
const up = new Set(['h1', 'h2']);

test('a service at its count needs nothing', () => {
  const p = planHeal({ desired: 2, currentRelease: 'v2', hostsUp: up, instances: [inst('i1'), inst('i2')] });
  assert.ok(isNoop(p));
});

test('instances on a down host or failed are forgotten and replaced', () => {
  const p = planHeal({
    desired: 3,
    currentRelease: 'v2',
    hostsUp: up,
    instances: [inst('i1'), inst('i2', { hostId: 'h9' }), inst('i3', { state: 'failed', healthy: false })],
  });
  assert.deepEqual(
    p.forget.map((f) => f.id),
    ['i2', 'i3'],
  );
  assert.match(p.forget[0]?.reason ?? '', /host h9 is down/);
  assert.equal(p.start, 2);
  assert.deepEqual(p.stop, []);
});

test('a crashed instance its agent is restarting is not replaced', () => {
  const p = planHeal({
    desired: 2,
    currentRelease: 'v2',
    hostsUp: up,
    instances: [inst('i1'), inst('i2', { state: 'backoff', healthy: false })],
  });
  assert.ok(isNoop(p));
});

test('scaling up starts the difference; stopped instances do not count', () => {
  const p = planHeal({
    desired: 4,
    currentRelease: 'v2',
    hostsUp: up,
    instances: [inst('i1'), inst('i2', { desired: 'stopped' })],
  });
  assert.equal(p.start, 3);
});

test('scaling down stops the least useful first: other release, unhealthy, unrouted, newest', () => {
  const p = planHeal({
    desired: 2,
    currentRelease: 'v2',
    hostsUp: up,
    instances: [
      inst('i1'),
      inst('i2'),
      inst('i3', { releaseVersion: 'v1' }),
      inst('i4', { healthy: false }),
      inst('i5'),
    ],
  });
  assert.deepEqual(p.stop, ['i3', 'i4', 'i5']);
  assert.equal(p.start, 0);
});

test('instances on a draining host move: replaced first, not counted as surplus', () => {
  const p = planHeal({
    desired: 2,
    currentRelease: 'v2',
    hostsUp: up,
    moving: new Set(['h1']),
    instances: [inst('i1', { hostId: 'h1' }), inst('i2', { hostId: 'h2' })],
  });
  assert.deepEqual(p.move, ['i1']);
  assert.equal(p.start, 0);
  assert.deepEqual(p.stop, []);
  assert.ok(!isNoop(p));
});

test('a surplus is taken from draining hosts first and then need not move', () => {
  const p = planHeal({
    desired: 1,
    currentRelease: 'v2',
    hostsUp: up,
    moving: new Set(['h1']),
    instances: [inst('i1', { hostId: 'h1' }), inst('i2', { hostId: 'h2' })],
  });
  assert.deepEqual(p.stop, ['i1']);
  assert.deepEqual(p.move, []);
});

test('failed instances are marked for rescheduling; the delay doubles from the second', () => {
  const p = planHeal({
    desired: 1,
    currentRelease: 'v2',
    hostsUp: up,
    instances: [inst('i1', { state: 'failed', healthy: false })],
  });
  assert.equal(p.forget[0]?.failed, true);
  assert.deepEqual([1, 2, 3, 4, 10].map(rescheduleDelayMs), [0, 1000, 2000, 4000, 60_000]);
});

test('the instance count is kept within min/max', () => {
  assert.equal(clampDesired(3, undefined), 3);
  assert.equal(clampDesired(1, { min: 2, max: 5 }), 2);
  assert.equal(clampDesired(9, { min: 2, max: 5 }), 5);
});
