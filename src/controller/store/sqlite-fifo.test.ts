import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openSqliteStore } from './sqlite.js';
import { FifoLock } from './sqlite-fifo.js';

test('the FIFO lock hands over in arrival order, one holder at a time', async () => {
  const lock = new FifoLock();
  const order: number[] = [];
  let holders = 0;
  let maxHolders = 0;
  await Promise.all(
    Array.from({ length: 3000 }, async (_, i) => {
      await lock.lock();
      holders++;
      maxHolders = Math.max(maxHolders, holders);
      order.push(i);
      await Promise.resolve();
      holders--;
      lock.unlock();
    }),
  );
  assert.equal(maxHolders, 1);
  assert.deepEqual(
    order,
    Array.from({ length: 3000 }, (_, i) => i),
  );
  assert.equal(lock.waiting, 0);
  // Free again: the next lock is granted at once.
  await lock.lock();
  lock.unlock();
});

test('the SQLite store on the FIFO driver: many concurrent reads and writes beside a transaction', async () => {
  const store = await openSqliteStore({ file: ':memory:' });
  try {
    const tx = store.transaction(async (t) => {
      for (let i = 0; i < 50; i++) await t.nextCounter('c');
    });
    const outside = Array.from({ length: 500 }, (_, i) =>
      i % 2 ? store.getCounter('c') : store.nextCounter('d'),
    );
    await tx;
    const got = await Promise.all(outside);
    // The transaction held the connection: reads queued behind it see all 50 bumps or none.
    for (const [i, v] of got.entries()) if (i % 2) assert.ok(v === 0 || v === 50, `read ${v}`);
    assert.equal(await store.getCounter('c'), 50);
    assert.equal(await store.getCounter('d'), 250);
  } finally {
    await store.close();
  }
});
