import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextRollingStep, planRolling, planZoneByZone, planZones, resolveRolling } from './plan.js';

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

test('zone by zone: each zone keeps its count and is finished before the next starts', () => {
  const p = resolveRolling({ maxSurge: 1, maxUnavailable: 0 }, 6);
  const plan = planZoneByZone(
    p,
    new Map([
      ['b', 2],
      ['a', 2],
      ['c', 2],
    ]),
  );
  assert.deepEqual(
    plan.map((z) => z.zone),
    ['a', 'b', 'c'],
  );
  // Replay the plan over the whole service: the service-wide bounds hold at every step, and only the
  // current zone ever has old and new instances at once.
  const old = new Map([
    ['a', 2],
    ['b', 2],
    ['c', 2],
  ]);
  const fresh = new Map([
    ['a', 0],
    ['b', 0],
    ['c', 0],
  ]);
  const sum = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);
  for (const { zone, steps } of plan) {
    for (const s of steps) {
      fresh.set(zone, fresh.get(zone)! + s.start);
      assert.ok(sum(old) + sum(fresh) <= 7, 'never more than desired + maxSurge');
      old.set(zone, old.get(zone)! - s.stop);
      assert.ok(sum(old) + sum(fresh) >= 6, 'never fewer than desired - maxUnavailable');
      const mixed = [...old.keys()].filter((z) => old.get(z)! > 0 && fresh.get(z)! > 0);
      assert.ok(
        mixed.every((z) => z === zone),
        `only ${zone} is mid-roll, not ${mixed}`,
      );
    }
    assert.equal(old.get(zone), 0);
    assert.equal(fresh.get(zone), 2);
  }
});

test('zone by zone with a larger unavailability budget: a zone goes in one batch', () => {
  const p = resolveRolling({ maxSurge: 0, maxUnavailable: 2 }, 4);
  const plan = planZoneByZone(
    p,
    new Map([
      ['a', 2],
      ['b', 2],
    ]),
  );
  assert.deepEqual(plan, [
    {
      zone: 'a',
      steps: [
        { start: 0, stop: 2, done: false },
        { start: 2, stop: 0, done: false },
      ],
    },
    {
      zone: 'b',
      steps: [
        { start: 0, stop: 2, done: false },
        { start: 2, stop: 0, done: false },
      ],
    },
  ]);
});

test('zone targets: a change of desired goes to the emptiest zone (growth) or from the fullest (shrink)', () => {
  const z = (old: number, fresh = 0) => ({ old, fresh });
  // b first (fewest), then the tie goes to the first zone by name.
  assert.deepEqual(
    planZones(
      new Map([
        ['a', z(2)],
        ['b', z(1)],
      ]),
      5,
    ),
    [
      { zone: 'a', target: 3 },
      { zone: 'b', target: 2 },
    ],
  );
  assert.deepEqual(
    planZones(
      new Map([
        ['a', z(3)],
        ['b', z(1)],
      ]),
      2,
    ),
    [
      { zone: 'a', target: 1 },
      { zone: 'b', target: 1 },
    ],
  );
  // Resumed after a restart: the zone that already has new instances is finished first.
  assert.deepEqual(
    planZones(
      new Map([
        ['a', z(2)],
        ['b', z(1, 1)],
      ]),
      4,
    ),
    [
      { zone: 'b', target: 2 },
      { zone: 'a', target: 2 },
    ],
  );
  assert.deepEqual(planZones(new Map(), 3), []);
});
