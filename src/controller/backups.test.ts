import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { readBackup } from '../core/backup-file.js';
import { ArtifactStore } from './artifacts.js';
import { BackupScheduler } from './backups.js';
import { Leadership } from './leadership.js';
import { openSqliteStore } from './store/sqlite.js';

describe('scheduled backups', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-sched-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('run on the leader only, every interval, keeping the newest n', async () => {
    const logger = pino({ level: 'silent' });
    const store = await openSqliteStore({ file: ':memory:' });
    const leadership = new Leadership({
      store,
      id: 'c-1',
      url: () => 'http://c1',
      logger,
      leaseTimeoutMs: 5000,
    });
    const key = Buffer.from('b'.repeat(32));
    new BackupScheduler({
      store,
      artifacts: new ArtifactStore({ dir: join(dir, 'artifacts') }),
      leadership,
      logger,
      schedule: { dir: join(dir, 'out'), key, intervalMs: 1000, keep: 2, artifacts: false },
    });
    await new Promise((r) => setTimeout(r, 1200));
    assert.deepEqual(readdirSync(dir).includes('out'), false, 'a follower writes nothing');
    await leadership.start();
    // Backup names have second resolution: 3 intervals give 3 names, of which 2 are kept. Waits for the
    // third rather than a fixed time: a loaded machine may run the timer late.
    for (let t = Date.now(); (await store.listEvents({ kind: 'backup.written' })).length < 3; ) {
      assert.ok(Date.now() - t < 30_000, 'three backups within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    await leadership.stop();
    const names = readdirSync(join(dir, 'out')).filter((n) => n.startsWith('nines-backup-'));
    assert.equal(names.length, 2, names.join(', '));
    const { state } = await readBackup(join(dir, 'out', names.sort()[1] as string), key);
    assert.ok(state.tables.services && state.tables.leader_lease);
    assert.equal((await store.listEvents({ kind: 'backup.written' })).length >= 3, true);
    await store.close();
  });
});
