import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import pg from 'pg';
import { openPostgresStore } from '../store/postgres.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/types.js';

/** The check store (migration 0005_checks) on SQLite, and on PostgreSQL when NINES_TEST_PG_URL is set. */

async function contract(store: Store): Promise<void> {
  const cs = store.checks();
  const spec = {
    type: 'tcp',
    host: 'db',
    port: 5432,
    interval: 30_000,
    timeout: 5_000,
    dependency: false,
    public: true,
  } as const;
  assert.equal((await cs.upsertCheck('db', spec)).created, true);
  assert.equal((await cs.upsertCheck('db', { ...spec, port: 5433 })).created, false);
  assert.equal((await cs.getCheck('db'))?.spec.type, 'tcp');
  assert.deepEqual(
    (await cs.listChecks()).map((c) => c.name),
    ['db'],
  );

  const st = (state: 'up' | 'down' | 'degraded', since: number) => ({
    subject: 'db',
    state,
    since,
    message: state,
    failing: state === 'up' ? 0 : 2,
    locations: 3,
    updatedAt: since,
  });
  assert.equal((await cs.saveState(st('up', 1000), 'first'))?.from, 'unknown');
  assert.equal(
    await cs.saveState({ ...st('up', 1000), message: 'still up' }, 'same'),
    undefined,
    'no transition without a change',
  );
  const t = await cs.saveState(st('down', 2000), 'ECONNREFUSED from 2 of 3');
  assert.deepEqual([t?.from, t?.to, t?.at, t?.cause], ['up', 'down', 2000, 'ECONNREFUSED from 2 of 3']);
  await cs.saveState(st('up', 3000), 'back');
  assert.deepEqual(
    (await cs.listTransitions({ subject: 'db' })).map((x) => `${x.from}>${x.to}@${x.at}`),
    ['unknown>up@1000', 'up>down@2000', 'down>up@3000'],
  );
  assert.equal((await cs.stateAt('db', 2500))?.to, 'down');
  assert.equal(await cs.stateAt('db', 500), undefined);
  assert.equal((await cs.listStates())[0]?.state, 'up');

  // Rollups add up per minute; the max stays the max.
  await cs.addMinutes([
    { subject: 'db', minute: 60_000, ok: 3, failed: 1, latencySumMs: 40, latencyMaxMs: 20 },
  ]);
  await cs.addMinutes([
    { subject: 'db', minute: 60_000, ok: 2, failed: 0, latencySumMs: 10, latencyMaxMs: 7 },
  ]);
  await cs.addMinutes([
    { subject: 'db', minute: 120_000, ok: 1, failed: 0, latencySumMs: 50, latencyMaxMs: 50 },
  ]);
  assert.deepEqual(await cs.listMinutes('db', 0), [
    { subject: 'db', minute: 60_000, ok: 5, failed: 1, latencySumMs: 50, latencyMaxMs: 20 },
    { subject: 'db', minute: 120_000, ok: 1, failed: 0, latencySumMs: 50, latencyMaxMs: 50 },
  ]);
  // Compaction: minutes → one row per hour (sums, max of maxima); running it again changes nothing.
  const H = 3_600_000;
  await cs.addMinutes([
    { subject: 'db', minute: H + 60_000, ok: 1, failed: 1, latencySumMs: 5, latencyMaxMs: 5 },
    { subject: 'db', minute: H + 120_000, ok: 2, failed: 0, latencySumMs: 6, latencyMaxMs: 4 },
    { subject: 'db', minute: 2 * H, ok: 9, failed: 9, latencySumMs: 9, latencyMaxMs: 9 },
  ]);
  assert.equal(
    await cs.compact(0, 2 * H, H),
    2,
    'two hours of 2 rows each become 1 row each; 2 h is outside',
  );
  assert.equal(await cs.compact(0, 2 * H, H), 0);
  assert.deepEqual(await cs.listMinutes('db', 0), [
    { subject: 'db', minute: 0, ok: 6, failed: 1, latencySumMs: 100, latencyMaxMs: 50 },
    { subject: 'db', minute: H, ok: 3, failed: 1, latencySumMs: 11, latencyMaxMs: 5 },
    { subject: 'db', minute: 2 * H, ok: 9, failed: 9, latencySumMs: 9, latencyMaxMs: 9 },
  ]);
  assert.deepEqual(await cs.prune(H, 2000), { minutes: 1, transitions: 1 });
  assert.equal((await cs.listMinutes('db', 0)).length, 2);

  assert.equal(await cs.deleteCheck('db'), true);
  assert.equal(await cs.deleteCheck('db'), false);
  assert.deepEqual(await cs.listStates(), []);
}

test('check store on SQLite', async () => {
  const store = await openSqliteStore({ file: ':memory:' });
  try {
    await contract(store);
  } finally {
    await store.close();
  }
});

test('check store on PostgreSQL', async (t) => {
  const url = process.env.NINES_TEST_PG_URL;
  if (!url) {
    t.skip('PostgreSQL not available: set NINES_TEST_PG_URL (scripts/ci-postgres.sh starts one)');
    return;
  }
  const schema = `checks_${randomBytes(4).toString('hex')}`;
  const store = await openPostgresStore({ connectionString: url, schema });
  try {
    await contract(store);
  } finally {
    await store.close();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
});
