import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planCanary } from '../../core/strategies.js';
import { resumeIndex } from './canary.js';

const actions = planCanary(
  [{ setWeight: 20 }, { pause: {} }, { setWeight: 50 }, { analysis: {} }],
  4,
  10_000,
);
const step = (index: number) => ({ type: 'canary.step', data: { index } });

test('a canary resumed after a restart goes on after the last step done, at the weight it set', () => {
  // scale 1 → 20 % → pause → scale 2 → 50 % → analysis → promote
  assert.deepEqual(
    actions.map((a) => a.kind),
    ['scale', 'weight', 'pause', 'scale', 'weight', 'analysis', 'promote'],
  );
  assert.deepEqual(resumeIndex([], actions), { index: -1, weight: 0 });
  assert.deepEqual(resumeIndex([step(0), step(1)], actions), { index: 1, weight: 20 });
  // Killed in the pause: the pause is not done, so it holds again (or a promote that came goes past it).
  assert.deepEqual(resumeIndex([step(0), step(1), { type: 'deploy.paused', data: null }], actions), {
    index: 1,
    weight: 20,
  });
  assert.deepEqual(resumeIndex([step(0), step(1), step(2), step(3), step(4)], actions), {
    index: 4,
    weight: 50,
  });
  // Events of other kinds or out of range do not count.
  assert.deepEqual(resumeIndex([{ type: 'canary.weight', data: { index: 5 } }, step(99)], actions), {
    index: -1,
    weight: 0,
  });
});
