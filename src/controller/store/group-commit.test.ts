import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NinesError } from '../../core/errors.js';
import { GroupCommit } from './group-commit.js';
import { openSqliteStore } from './sqlite.js';
import type { HostRecord, Store } from './types.js';

const host = (id: string): HostRecord => ({
  id,
  name: id,
  zone: 'z',
  labels: {},
  address: '127.0.0.1',
  registeredAt: 1,
  lastSeenAt: 1,
  key: null,
  revokedAt: null,
});

describe('group commit', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nines-gc-'));
    store = await openSqliteStore({ file: join(dir, 'store.db') });
    for (let i = 0; i < 50; i++) await store.upsertHost(host(`h${i}`));
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits concurrent writes in few transactions, each caller after its commit', async () => {
    const gc = new GroupCommit(store);
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        await gc.run((tx) => tx.touchHost(`h${i}`, 1000 + i));
        // Resolved means committed: a read outside the batch sees it.
        assert.equal((await store.getHost(`h${i}`))?.lastSeenAt, 1000 + i);
      }),
    );
    assert.equal(gc.stats.writes, 50);
    assert.ok(gc.stats.transactions <= 3, `${gc.stats.transactions} transactions for 50 writes`);
  });

  it('a failing write fails alone; the others of its batch are committed', async () => {
    const gc = new GroupCommit(store);
    const results = await Promise.allSettled([
      gc.run((tx) => tx.touchHost('h1', 2001)),
      gc.run((tx) => tx.touchHost('h2', 2002)),
      gc.run((tx) => tx.touchHost('nope', 2003)),
      gc.run((tx) => tx.touchHost('h3', 2004)),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
    );
    const err = (results[2] as PromiseRejectedResult).reason;
    assert.ok(err instanceof NinesError && err.code === 'NINES_E_HOST_NOT_FOUND');
    assert.equal((await store.getHost('h2'))?.lastSeenAt, 2002);
    assert.equal((await store.getHost('h3'))?.lastSeenAt, 2004);
  });

  it('a failing prepare (the fence) refuses every write and changes nothing', async () => {
    const gc = new GroupCommit(store, async () => {
      throw new NinesError('NINES_E_FENCED', 'not the leader');
    });
    const results = await Promise.allSettled([
      gc.run((tx) => tx.touchHost('h4', 3001)),
      gc.run((tx) => tx.touchHost('h5', 3002)),
    ]);
    assert.ok(results.every((r) => r.status === 'rejected'));
    assert.notEqual((await store.getHost('h4'))?.lastSeenAt, 3001);
    assert.notEqual((await store.getHost('h5'))?.lastSeenAt, 3002);
  });
});
