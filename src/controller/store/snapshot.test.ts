import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import {
  latestBackup,
  pruneBackups,
  readBackup,
  restoreArtifacts,
  writeBackup,
} from '../../core/backup-file.js';
import { isNinesError } from '../../core/errors.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import { deploy, host, instance, release, spec1, token } from './store-suite.js';
import type { Store } from './types.js';

const PG = process.env.NINES_TEST_PG_URL;

async function fill(store: Store): Promise<void> {
  await store.upsertService('web', spec1);
  await store.insertRelease(release('web', 'v1'));
  await store.insertDeploy(deploy('d-1', 'web'));
  await store.appendDeployEvent({
    deployId: 'd-1',
    at: 1,
    type: 'deploy.created',
    message: 'm',
    data: { a: 1 },
  });
  await store.upsertHost(host('h-1', 'box'));
  await store.insertInstance(instance('i-1', 'web', 'h-1'));
  await store.insertToken(token('t-1', 'f'.repeat(64), 'admin'));
  await store.appendEvent({ at: 5, kind: 'k', subject: 's', message: 'hello', data: null });
  await store.nextCounter('routing');
  await store.tryAcquireLease({
    name: 'controller',
    holder: 'c-a',
    url: 'http://a',
    ttlMs: 10_000,
    now: Date.now(),
  });
}

function suite(name: string, open: () => Promise<Store>, skip?: string) {
  describe(`store snapshots on ${name}`, { skip }, () => {
    const stores: Store[] = [];
    after(async () => {
      for (const s of stores) await s.close();
    });
    const fresh = async () => {
      const s = await open();
      stores.push(s);
      return s;
    };

    it('export has every table of the database; import into a fresh store gives the same state', async () => {
      const a = await fresh();
      await fill(a);
      const snap = await a.exportSnapshot();
      for (const t of [
        'services',
        'releases',
        'deploys',
        'deploy_events',
        'instances',
        'hosts',
        'events',
        'tokens',
        'counters',
        'leader_lease',
      ]) {
        assert.ok(snap.tables[t], `table ${t} is in the snapshot`);
      }
      assert.ok(!snap.tables.kysely_migration, 'bookkeeping tables are not');
      assert.ok(snap.migrations.includes('0009_leader_lease'));
      const b = await fresh();
      const t0 = Date.now();
      const counts = await b.importSnapshot(snap);
      assert.equal(counts.services, 1);
      assert.deepEqual(await b.listServices(), await a.listServices());
      assert.deepEqual(await b.listReleases('web'), await a.listReleases('web'));
      assert.deepEqual(await b.listDeployEvents('d-1'), await a.listDeployEvents('d-1'));
      assert.deepEqual(await b.listInstances(), await a.listInstances());
      assert.deepEqual(await b.listHosts(), await a.listHosts());
      assert.deepEqual(await b.listTokens(), await a.listTokens());
      // Versions handed out after a restore exceed any handed out before it; the old leader is fenced.
      assert.ok((await b.getCounter('routing')) >= t0);
      const lease = await b.getLease('controller');
      assert.ok(lease && lease.token >= t0 && lease.holder === '' && lease.expiresAt === 0);
      // A store that is not empty is refused unless told to replace it, and nothing changes.
      await assert.rejects(b.importSnapshot(snap), (e) => isNinesError(e) && e.code === 'NINES_E_VALIDATION');
      await b.importSnapshot(snap, { replace: true });
      assert.equal((await b.listServices()).length, 1);
    });

    it('refuses a snapshot from a newer nines', async () => {
      const a = await fresh();
      const snap = await a.exportSnapshot();
      snap.migrations.push('9999_future');
      await assert.rejects(
        a.importSnapshot(snap),
        (e) => isNinesError(e) && e.code === 'NINES_E_BACKUP_INVALID',
      );
    });
  });
}

suite('SQLite', () => openSqliteStore({ file: ':memory:' }));
const schemas: string[] = [];
suite(
  'PostgreSQL',
  async () => {
    const schema = `snap_${randomBytes(4).toString('hex')}`;
    schemas.push(schema);
    return openPostgresStore({ connectionString: PG as string, schema });
  },
  PG ? undefined : 'PostgreSQL not available: set NINES_TEST_PG_URL (scripts/ci-postgres.sh starts one)',
);
after(async () => {
  if (!PG || schemas.length === 0) return;
  const db = new pg.Client({ connectionString: PG });
  await db.connect();
  for (const s of schemas) await db.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await db.end();
});

describe('backup files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-backup-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const key = Buffer.from('k'.repeat(32));

  it('round-trips state and artifacts; a wrong key or a changed byte is refused', async () => {
    const a = await openSqliteStore({ file: ':memory:' });
    await fill(a);
    const state = await a.exportSnapshot();
    await a.close();
    const art = Buffer.from('pretend tar.gz bytes');
    const sha = 'a'.repeat(64);
    const path = await writeBackup(join(dir, 'out'), key, state, [
      { service: 'web', version: 'v1', sha256: sha, open: async () => Readable.from([art]) },
    ]);
    assert.equal(await latestBackup(join(dir, 'out')), path);
    const { manifest, state: back } = await readBackup(path, key);
    assert.deepEqual(back, state);
    assert.equal(manifest.tables.services, 1);
    assert.ok(!readFileSync(join(path, 'state.enc')).includes(Buffer.from('node server.js')), 'encrypted');
    const n = await restoreArtifacts(path, key, manifest, join(dir, 'restored'));
    assert.equal(n, 1);
    assert.deepEqual(readFileSync(join(dir, 'restored', 'web', 'v1.tgz')), art);

    await assert.rejects(
      readBackup(path, Buffer.from('x'.repeat(32))),
      (e) => isNinesError(e) && e.code === 'NINES_E_BACKUP_INVALID',
    );
    const f = join(path, 'state.enc');
    const bytes = readFileSync(f);
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] ?? 0) ^ 1;
    writeFileSync(f, bytes);
    await assert.rejects(
      readBackup(path, key),
      (e) => isNinesError(e) && e.code === 'NINES_E_BACKUP_INVALID',
    );
  });

  it('retention keeps the newest n', async () => {
    const out = join(dir, 'prune');
    for (const ts of ['20260101T000000Z', '20260102T000000Z', '20260103T000000Z']) {
      mkdirSync(join(out, `nines-backup-${ts}`), { recursive: true });
    }
    const removed = await pruneBackups(out, 2);
    assert.deepEqual(removed, ['nines-backup-20260101T000000Z']);
    assert.deepEqual(readdirSync(out).sort(), [
      'nines-backup-20260102T000000Z',
      'nines-backup-20260103T000000Z',
    ]);
  });
});
