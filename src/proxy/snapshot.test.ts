import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSnapshotCache, writeSnapshotCache } from './snapshot.js';

test('the snapshot cache is written into a folder that does not exist yet, and read back', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'nines-snap-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // `nines proxy --data-dir D` caches in D/proxy/snapshot.json: a fresh D has no proxy/ folder.
  const file = join(root, 'proxy', 'snapshot.json');
  const snapshot = { version: 7, services: [] };
  await writeSnapshotCache(file, JSON.stringify(snapshot));
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const back = await readSnapshotCache(file);
  assert.equal(back?.version, 7);
  assert.deepEqual(back?.services, []);
});
