import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AutoscaleInput, autoscale } from './autoscale.js';

const base: AutoscaleInput = {
  now: 1_000_000,
  current: 4,
  perInstance: 100,
  target: 100,
  min: 2,
  max: 20,
  scaleUpStep: 4,
  stabilizationMs: 300_000,
  history: [],
};

test('on target (within 10 %): hold', () => {
  assert.equal(autoscale({ ...base, perInstance: 108 }).desired, 4);
  assert.equal(autoscale({ ...base, perInstance: 92 }).desired, 4);
});

test('scale up to ceil(current × metric / target), at most scaleUpStep at once, at most max', () => {
  assert.equal(autoscale({ ...base, perInstance: 150 }).desired, 6);
  const big = autoscale({ ...base, perInstance: 400 });
  assert.equal(big.desired, 8, 'wanted 16, step limit 4');
  assert.match(big.reason, /step limit 4; 16 wanted/);
  assert.equal(autoscale({ ...base, current: 18, perInstance: 400 }).desired, 20);
});

test('scale down only to the highest recommendation within the stabilization window', () => {
  // A minute ago the load wanted 8; now it wants 2: hold at the window's max, capped by current.
  const history = [{ at: base.now - 60_000, desired: 8 }];
  const held = autoscale({ ...base, current: 6, perInstance: 30, history });
  assert.equal(held.desired, 6);
  assert.match(held.reason, /stabilization window/);
  // Once that recommendation left the window, scale down (not below min).
  const old = [{ at: base.now - 301_000, desired: 8 }];
  const down = autoscale({ ...base, current: 6, perInstance: 30, history: old });
  assert.equal(down.desired, 2);
  assert.equal(down.history.length, 1, 'pruned');
});

test('within min and max whatever the metric', () => {
  assert.equal(
    autoscale({ ...base, perInstance: 0 }).desired,
    2,
    'idle with nothing else in the window: down to min',
  );
  assert.equal(autoscale({ ...base, current: 1, perInstance: 100 }).desired, 2, 'raised to min');
  assert.equal(autoscale({ ...base, current: 30, perInstance: 100 }).desired, 20, 'lowered to max');
});
