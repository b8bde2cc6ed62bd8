import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it, test } from 'node:test';
import pg from 'pg';
import { NinesError } from '../../core/errors.js';
import type { KyselyStore } from './kysely-store.js';
import { migrations } from './migrations.js';
import { openPostgresKyselyStore, openPostgresStore, parseInt8 } from './postgres.js';
import { deploy, rejectsWith, release, runStoreSuite, spec1 } from './store-suite.js';
import type { Store } from './types.js';

const ALL_MIGRATIONS = Object.keys(migrations).sort();

/**
 * The PostgreSQL store against a real server: NINES_TEST_PG_URL names it (scripts/ci-postgres.sh starts
 * one and prints the variable). Every store opened here lives in its own schema, dropped when it closes.
 */

const SKIP = 'PostgreSQL not available: set NINES_TEST_PG_URL (scripts/ci-postgres.sh starts one)';
const url = process.env.NINES_TEST_PG_URL;
const unavailable = url ? await probe(url) : 'NINES_TEST_PG_URL is not set';

/** Undefined when the server answers, else why not. */
async function probe(connectionString: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.end().catch(() => {});
  }
}

if (url !== undefined && unavailable !== undefined && process.env.CI) {
  // CI set up a server on purpose (.ci/run): one that does not answer is a failure, not a skip.
  test('postgres store', () => {
    throw new Error(`NINES_TEST_PG_URL is set in CI but the server does not answer: ${unavailable}`);
  });
} else if (unavailable !== undefined || url === undefined) {
  test('Store contract: postgres', (t) => {
    t.skip(SKIP);
  });
  test('postgres store', (t) => {
    t.skip(`${SKIP} (${unavailable})`);
  });
} else {
  const pgUrl = url;
  const prefix = `nines_t${process.pid}_${randomBytes(3).toString('hex')}_`;
  const made = new Set<string>();
  let n = 0;
  let admin: pg.Pool | undefined;

  const dropSchema = async (schema: string): Promise<void> => {
    admin ??= new pg.Pool({ connectionString: pgUrl, max: 2 });
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    made.delete(schema);
  };
  const newSchema = (): string => {
    const schema = `${prefix}${++n}`;
    made.add(schema);
    return schema;
  };
  /** A store in a fresh schema whose close() also drops the schema. */
  const openFresh = async (): Promise<Store> => {
    const schema = newSchema();
    const store = await openPostgresStore({ connectionString: pgUrl, schema });
    const close = store.close.bind(store);
    store.close = async () => {
      await close();
      await dropSchema(schema);
    };
    return store;
  };

  after(async () => {
    for (const schema of [...made]) await dropSchema(schema);
    await admin?.end();
  });

  runStoreSuite('postgres', openFresh);

  describe('postgres store', () => {
    it('keeps committed data across close and reopen; migrate on reopen applies nothing', async () => {
      const schema = newSchema();
      const first = await openPostgresKyselyStore({ connectionString: pgUrl, schema });
      assert.deepEqual(await first.migrateReport(), [], 'open already migrated');
      await first.transaction(async (tx) => {
        await tx.upsertService('web', spec1);
        await tx.insertRelease({ ...release('web', 'v1'), size: 6_000_000_000 });
      });
      assert.equal(await first.nextCounter('routing'), 1);
      await first.close();

      const second = await openPostgresKyselyStore({ connectionString: pgUrl, schema });
      try {
        assert.deepEqual(await second.migrateReport(), []);
        assert.equal((await second.getService('web'))?.name, 'web');
        assert.equal((await second.getRelease('web', 'v1'))?.size, 6_000_000_000);
        assert.equal(await second.nextCounter('routing'), 2);
      } finally {
        await second.close();
      }
      const raw = new pg.Client({ connectionString: pgUrl });
      await raw.connect();
      try {
        const { rows } = await raw.query(`SELECT name FROM "${schema}".kysely_migration ORDER BY name`);
        assert.deepEqual(
          rows.map((r: { name: string }) => r.name),
          ALL_MIGRATIONS,
          'the first open applied every migration, once, in the store’s own schema',
        );
      } finally {
        await raw.end();
      }
      await dropSchema(schema);
    });

    it('a connection the server ends mid-transaction fails that transaction, not the process', async () => {
      const schema = newSchema();
      const errors: Error[] = [];
      const app = `nines-test-${randomBytes(4).toString('hex')}`;
      const store = await openPostgresKyselyStore({
        connectionString: pgUrl,
        schema,
        applicationName: app,
        onPoolError: (err) => errors.push(err),
      });
      admin ??= new pg.Pool({ connectionString: pgUrl, max: 2 });
      try {
        await store.upsertService('web', spec1);
        // A transaction that waits on JavaScript while the server ends its connection (what a controller
        // stalled past idle_in_transaction_session_timeout meets when it resumes).
        const tx = store.transaction(async (t) => {
          await t.upsertService('api', spec1);
          const { rows } = await admin!.query(
            `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
              WHERE application_name = $1 AND state = 'idle in transaction'`,
            [app],
          );
          assert.equal(rows.length, 1, 'the transaction’s connection was found and ended');
          await new Promise((r) => setTimeout(r, 300));
          await t.upsertService('api2', spec1);
        });
        await assert.rejects(tx);
        assert.ok(errors.length >= 1, 'the error reached onPoolError');
        assert.equal(await store.getService('api'), undefined, 'nothing of the transaction was written');
        assert.equal((await store.getService('web'))?.name, 'web', 'the store still works');
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });

    it('two stores (two controllers) on one schema race without lost or duplicate writes', async () => {
      const schema = newSchema();
      // Controllers starting together on an empty schema: one migrates, the others find it done.
      const [a, b, c] = await Promise.all(
        [1, 2, 3].map(() => openPostgresKyselyStore({ connectionString: pgUrl, schema, poolSize: 5 })),
      );
      assert.ok(a && b && c);
      await c.close();
      const both = [a, b];
      const on = (i: number): KyselyStore => both[i % 2] as KyselyStore;
      try {
        await a.upsertService('web', spec1);
        await a.insertDeploy(deploy('d1', 'web'));

        const ids = Array.from({ length: 12 }, (_, i) => `d${i}`);
        const locks = await Promise.all(ids.map((id, i) => on(i).acquireDeployLock('web', id)));
        const winners = ids.filter((_, i) => locks[i]?.ok);
        assert.equal(winners.length, 1, 'one lock holder');
        for (const l of locks) if (!l.ok) assert.equal(l.heldBy, winners[0]);

        const counts = await Promise.all(Array.from({ length: 40 }, (_, i) => on(i).nextCounter('routing')));
        assert.deepEqual(
          counts.sort((x, y) => x - y),
          Array.from({ length: 40 }, (_, i) => i + 1),
        );

        const events = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            on(i).appendDeployEvent({ deployId: 'd1', at: i, type: 't', message: `m${i}`, data: { i } }),
          ),
        );
        assert.deepEqual(
          events.map((e) => e.seq).sort((x, y) => x - y),
          Array.from({ length: 30 }, (_, i) => i + 1),
        );
        assert.equal((await b.listDeployEvents('d1')).length, 30);

        const attempts = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) =>
            on(i).insertRelease({ ...release('web', 'v1'), createdBy: `c${i}` }),
          ),
        );
        const ok = attempts.filter((r) => r.status === 'fulfilled');
        assert.equal(ok.length, 1, 'exactly one insert of the same version wins');
        for (const r of attempts) {
          if (r.status === 'rejected') {
            assert.ok(r.reason instanceof NinesError, String(r.reason));
            assert.equal(r.reason.code, 'NINES_E_RELEASE_EXISTS');
          }
        }
        assert.equal((await a.listReleases('web')).length, 1);
      } finally {
        await a.close();
        await b.close();
        await dropSchema(schema);
      }
    });

    it('losing a release race inside a transaction leaves the transaction usable', async () => {
      const schema = newSchema();
      const a = await openPostgresKyselyStore({ connectionString: pgUrl, schema });
      const b = await openPostgresKyselyStore({ connectionString: pgUrl, schema });
      try {
        await a.upsertService('web', spec1);
        let inserted!: () => void;
        const firstInserted = new Promise<void>((res) => {
          inserted = res;
        });
        // a inserts v1 and holds its transaction open; b checks (v1 not visible yet), then waits on a's
        // locks, and finds v1 committed when it inserts.
        const first = a.transaction(async (tx) => {
          await tx.insertRelease(release('web', 'v1'));
          inserted();
          await new Promise((res) => setTimeout(res, 200));
          return 'a';
        });
        await firstInserted;
        const second = b.transaction(async (tx) => {
          await rejectsWith(tx.insertRelease(release('web', 'v1')), 'NINES_E_RELEASE_EXISTS');
          await tx.insertRelease(release('web', 'v2'));
          return 'b';
        });
        assert.deepEqual(await Promise.all([first, second]), ['a', 'b']);
        assert.deepEqual(
          (await a.listReleases('web')).map((r) => r.version),
          ['v2', 'v1'],
        );
      } finally {
        await a.close();
        await b.close();
        await dropSchema(schema);
      }
    });

    it('using the outer store inside its own transaction() fails at once', async () => {
      const store = await openFresh();
      try {
        await store.upsertService('web', spec1);
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.upsertService('api', spec1);
            await store.listServices();
          }),
          (err) => err instanceof NinesError && /use the tx store/.test(err.message),
        );
        assert.deepEqual(
          (await store.listServices()).map((s) => s.name),
          ['web'],
          'rolled back',
        );
        await store.transaction(async (tx) => {
          await assert.rejects(tx.migrate(), /inside a transaction/);
          await assert.rejects(tx.close(), /on a transaction/);
        });
      } finally {
        await store.close();
      }
    });

    it('reads int8 as numbers, keeping values beyond 2^53 exact as strings', () => {
      assert.equal(parseInt8('0'), 0);
      assert.equal(parseInt8('1700000000000'), 1_700_000_000_000);
      assert.equal(parseInt8('-42'), -42);
      assert.equal(parseInt8('9007199254740993'), '9007199254740993');
    });

    it('refuses a schema name that would need quoting', async () => {
      await rejectsWith(
        openPostgresStore({ connectionString: pgUrl, schema: 'Bad"; DROP' }),
        'NINES_E_INTERNAL',
      );
    });
  });
}
