import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServiceRecord } from '../store/types.js';
import { changedFirst } from './reconciler.js';

const svc = (name: string, updatedAt: number) => ({ name, updatedAt }) as ServiceRecord;

test('services changed since a pass last saw them are healed first, the rest in store order', () => {
  const seen = new Map([
    ['a', 1],
    ['b', 1],
    ['c', 1],
  ]);
  const order = (list: ServiceRecord[]) => changedFirst(list, seen).map((s) => s.name);
  assert.deepEqual(order([svc('a', 1), svc('b', 1), svc('c', 1)]), ['a', 'b', 'c']);
  assert.deepEqual(order([svc('a', 1), svc('b', 1), svc('c', 2)]), ['c', 'a', 'b']);
  // New services count as changed; several changed keep their store order.
  assert.deepEqual(order([svc('a', 1), svc('b', 3), svc('c', 1), svc('d', 1)]), ['b', 'd', 'a', 'c']);
});
