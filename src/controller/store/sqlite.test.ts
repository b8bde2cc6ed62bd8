import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { NinesError } from '../../core/errors.js';
import { KyselyStore } from './kysely-store.js';
import { migrations } from './migrations.js';
import { openSqliteDatabase, openSqliteKyselyStore, openSqliteStore } from './sqlite.js';

const ALL_MIGRATIONS = Object.keys(migrations).sort();

import { runStoreSuite, spec1 } from './store-suite.js';

const tmp = mkdtempSync(join(tmpdir(), 'nines-store-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

runStoreSuite('sqlite :memory:', () => openSqliteStore({ file: ':memory:' }));
runStoreSuite('sqlite file', () => openSqliteStore({ file: join(tmp, `suite-${++n}`, 'nines.db') }));

describe('sqlite store', () => {
  it('creates the parent directory and sets WAL, synchronous=FULL, foreign keys, busy timeout', async () => {
    const file = join(tmp, 'pragmas', 'a', 'b', 'nines.db');
    const store = await openSqliteStore({ file });
    await store.upsertService('web', spec1);
    await store.close();
    const db = openSqliteDatabase(file);
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('synchronous', { simple: true }), 2);
      assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
      assert.equal(db.pragma('busy_timeout', { simple: true }), 5000);
      // Foreign keys are enforced by the schema, not only checked by the store.
      assert.throws(
        () =>
          db
            .prepare(
              "INSERT INTO releases (service, version, sha256, size, spec, stable, created_by, created_at, seq) VALUES ('nope', 'v1', 'x', 1, '{}', 0, 'a', 1, 999)",
            )
            .run(),
        /FOREIGN KEY/,
      );
    } finally {
      db.close();
    }
  });

  it('keeps data across close and reopen; migrate on reopen applies nothing', async () => {
    const file = join(tmp, 'reopen', 'nines.db');
    const first = await openSqliteKyselyStore({ file });
    assert.deepEqual(await first.migrateReport(), [], 'open already migrated');
    await first.upsertService('web', spec1);
    assert.equal(await first.nextCounter('routing'), 1);
    await first.close();
    const second = await openSqliteKyselyStore({ file });
    assert.deepEqual(await second.migrateReport(), []);
    assert.equal((await second.getService('web'))?.name, 'web');
    assert.equal(await second.nextCounter('routing'), 2);
    await second.close();
  });

  it('the first open of a new file applies every migration, once', async () => {
    const db = openSqliteDatabase(':memory:');
    const { Kysely, SqliteDialect } = await import('kysely');
    const store = new KyselyStore(new Kysely({ dialect: new SqliteDialect({ database: db }) }));
    assert.deepEqual(await store.migrateReport(), ALL_MIGRATIONS);
    assert.deepEqual(await store.migrateReport(), []);
    await store.close();
  });

  it('migrate and close are refused on a transaction store', async () => {
    const store = await openSqliteStore({ file: ':memory:' });
    await store.transaction(async (tx) => {
      await assert.rejects(tx.migrate(), /inside a transaction/);
      await assert.rejects(tx.close(), /on a transaction/);
    });
    await store.close();
  });

  it('revokeToken (beyond the Store interface) sets revokedAt once', async () => {
    const store = await openSqliteKyselyStore({ file: ':memory:' });
    await store.insertToken({
      id: 't1',
      hash: 'h',
      role: 'admin',
      name: 'n',
      createdAt: 1,
      revokedAt: null,
      expiresAt: null,
    });
    assert.equal(await store.revokeToken('t1', 5), true);
    assert.equal(await store.revokeToken('t1', 6), false);
    assert.equal(await store.revokeToken('nope', 6), false);
    assert.equal((await store.findTokenByHash('h'))?.revokedAt, 5);
    await store.close();
  });

  it('survives kill -9: every committed row is there, the open transaction is not, migrate is a no-op', async () => {
    const dir = join(tmp, 'crash');
    const file = join(dir, 'data', 'nines.db');
    const script = join(mkdtempSync(join(tmp, 'crash-script-')), 'writer.mjs');
    const batches = 25;
    writeFileSync(
      script,
      `
import { openSqliteStore } from ${JSON.stringify(new URL('./sqlite.js', import.meta.url).href)};
const spec = ${JSON.stringify(spec1)};
const store = await openSqliteStore({ file: process.argv[2] });
setInterval(() => {}, 60_000);
for (let i = 1; i <= ${batches}; i++) {
  await store.transaction(async (tx) => {
    await tx.upsertService('svc-' + i, spec);
    await tx.insertRelease({ service: 'svc-' + i, version: 'v1', sha256: 'a'.repeat(64), size: i, spec, createdBy: 'crash', createdAt: 1700000000000 + i });
    await tx.insertDeploy({ id: 'd-' + i, service: 'svc-' + i, fromVersion: null, toVersion: 'v1', strategy: 'rolling', kind: 'initial', state: 'running', reason: null, createdBy: 'crash', createdAt: 1700000000000 + i, startedAt: null, finishedAt: null });
    await tx.appendDeployEvent({ deployId: 'd-' + i, at: 1700000000000 + i, type: 'start', message: 'batch ' + i, data: { i } });
    await tx.nextCounter('batches');
  });
  process.stdout.write('committed ' + i + '\\n');
}
process.stdout.write('ready\\n');
await store.transaction(async (tx) => {
  await tx.upsertService('uncommitted', spec);
  await tx.insertRelease({ service: 'svc-1', version: 'v2', sha256: 'b'.repeat(64), size: 1, spec, createdBy: 'crash', createdAt: 1 });
  await tx.nextCounter('batches');
  process.stdout.write('in-tx\\n');
  await new Promise(() => {});
});
`,
    );
    const child = spawn(process.execPath, [script, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
      child.on('exit', (code, signal) => res({ code, signal })),
    );
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(
        () => rej(new Error(`child never got ready; stdout=${out} stderr=${err}`)),
        20_000,
      );
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('in-tx\n')) {
          clearTimeout(timer);
          res();
        }
      });
      child.on('exit', () => {
        clearTimeout(timer);
        rej(new Error(`child exited early; stdout=${out} stderr=${err}`));
      });
    });
    assert.ok(out.includes('ready\n'));
    child.kill('SIGKILL');
    assert.deepEqual(await exited, { code: null, signal: 'SIGKILL' });

    // Look at the file as the crash left it (opening it replays the WAL).
    const raw = new Database(file);
    const migrationsBefore = raw.prepare('SELECT name, timestamp FROM kysely_migration ORDER BY name').all();
    const schemaBefore = raw.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all();
    assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok');
    raw.close();
    assert.deepEqual(
      migrationsBefore.map((m) => (m as { name: string }).name),
      ALL_MIGRATIONS,
    );

    const store = await openSqliteKyselyStore({ file });
    try {
      assert.deepEqual(await store.migrateReport(), [], 'migrate on the reopened store is a no-op');
      const services = await store.listServices();
      assert.equal(services.length, batches);
      assert.equal(await store.getService('uncommitted'), undefined);
      for (let i = 1; i <= batches; i++) {
        const svc = await store.getService(`svc-${i}`);
        assert.deepEqual(svc?.spec, spec1);
        const rels = await store.listReleases(`svc-${i}`);
        assert.deepEqual(
          rels.map((r) => [r.version, r.size]),
          [['v1', i]],
        );
        const d = await store.getDeploy(`d-${i}`);
        assert.equal(d?.state, 'running');
        const evs = await store.listDeployEvents(`d-${i}`);
        assert.deepEqual(
          evs.map((e) => [e.seq, e.message, e.data]),
          [[1, `batch ${i}`, { i }]],
        );
      }
      assert.equal(await store.getCounter('batches'), batches);
      assert.equal((await store.listActiveDeploys()).length, batches);
      // Store-wide release seq continues after the crash.
      await store.upsertService('after', spec1);
      const next = await store.insertRelease({
        service: 'after',
        version: 'v1',
        sha256: 'c'.repeat(64),
        size: 1,
        spec: spec1,
        createdBy: 'test',
        createdAt: 1,
      });
      assert.ok(next.seq > Math.max(...(await store.listReleases('svc-25')).map((r) => r.seq)));
    } finally {
      await store.close();
    }
    const raw2 = new Database(file, { readonly: true });
    assert.deepEqual(
      raw2.prepare('SELECT name, timestamp FROM kysely_migration ORDER BY name').all(),
      migrationsBefore,
    );
    assert.deepEqual(
      raw2.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all(),
      schemaBefore,
    );
    raw2.close();
  });
});

describe('sqlite store misuse', () => {
  it('using the outer store inside its own transaction() fails at once instead of deadlocking', async () => {
    const store = await openSqliteStore({ file: ':memory:' });
    await store.upsertService('web', spec1);
    await assert.rejects(
      store.transaction(async (tx) => {
        await tx.upsertService('api', spec1);
        await store.listServices();
      }),
      (err) => err instanceof NinesError && /use the tx store/.test(err.message),
    );
    await assert.rejects(
      store.transaction(() => store.transaction(async () => 1)),
      /use the tx store/,
    );
    assert.deepEqual(
      (await store.listServices()).map((s) => s.name),
      ['web'],
      'rolled back',
    );
    // Work scheduled from inside a transaction but run after it ended is fine.
    let later: Promise<number> | undefined;
    await store.transaction(async (tx) => {
      await tx.nextCounter('c');
      later = new Promise((res, rej) => setTimeout(() => store.nextCounter('c').then(res, rej), 5));
    });
    assert.equal(await later, 2);
    await store.close();
  });
});
