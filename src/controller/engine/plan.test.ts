import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextRollingStep, planRolling, resolveRolling } from './plan.js';

test('surge 1, unavailable 0: one new instance before each old one goes', () => {
  const p = resolveRolling({ maxSurge: 1, maxUnavailable: 0 }, 3);
  assert.deepEqual(planRolling(p, 3), [
    { start: 1, stop: 0, done: false },
    { start: 0, stop: 1, done: false },
    { start: 1, stop: 0, done: false },
    { start: 0, stop: 1, done: false },
    { start: 1, stop: 0, done: false },
    { start: 0, stop: 1, done: false },
  ]);
});

test('surge 0, unavailable 1: an old instance goes first, capacity never below desired - 1', () => {
  const p = resolveRolling({ maxSurge: 0, maxUnavailable: 1 }, 3);
  const steps = planRolling(p, 3);
  assert.deepEqual(steps[0], { start: 0, stop: 1, done: false });
  let old = 3;
  let fresh = 0;
  for (const s of steps) {
    fresh += s.start;
    assert.ok(old + fresh <= 3, 'never more than desired with surge 0');
    old -= s.stop;
    assert.ok(old + fresh >= 2, 'never fewer than desired - 1 available');
  }
  assert.equal(old, 0);
  assert.equal(fresh, 3);
});

test('percentages: surge rounds up, unavailable rounds down, both zero becomes surge 1', () => {
  assert.deepEqual(resolveRolling({ maxSurge: '25%', maxUnavailable: '25%' }, 3), {
    desired: 3,
    maxSurge: 1,
    maxUnavailable: 0,
  });
  assert.deepEqual(resolveRolling({ maxSurge: '25%', maxUnavailable: 0 }, 8), {
    desired: 8,
    maxSurge: 2,
    maxUnavailable: 0,
  });
  assert.deepEqual(resolveRolling({ maxSurge: '0%', maxUnavailable: '10%' }, 5), {
    desired: 5,
    maxSurge: 1,
    maxUnavailable: 0,
  });
});

test('first deploy: all instances start at once, nothing to stop', () => {
  const p = resolveRolling({ maxSurge: 1, maxUnavailable: 0 }, 3);
  assert.deepEqual(planRolling(p, 0), [{ start: 3, stop: 0, done: false }]);
});

test('scale down within a deploy stops the surplus old instances', () => {
  const p = resolveRolling({ maxSurge: 1, maxUnavailable: 0 }, 1);
  const first = nextRollingStep(p, { oldReady: 3, newReady: 0, newPending: 0 });
  assert.deepEqual(first, { start: 0, stop: 2, done: false });
});

test('surge 25% of 8: batches of two, invariants hold at every step', () => {
  const p = resolveRolling({ maxSurge: '25%', maxUnavailable: 0 }, 8);
  let old = 8;
  let fresh = 0;
  for (const s of planRolling(p, 8)) {
    assert.ok(s.start <= 2 && s.stop <= 2);
    fresh += s.start;
    assert.ok(old + fresh <= 10);
    old -= s.stop;
    assert.ok(old + fresh >= 8);
  }
  assert.equal(fresh, 8);
});
