import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import pg from 'pg';
import type { KyselyStore } from '../store/kysely-store.js';
import { openPostgresKyselyStore } from '../store/postgres.js';
import { openSqliteKyselyStore } from '../store/sqlite.js';
import type { DeliveryResult } from './channels/types.js';
import { AlertStore } from './store.js';

/** The delivery log's exactly-once claim and the alert/silence rows, on SQLite and (when set) PostgreSQL. */

const pgUrl = process.env.NINES_TEST_PG_URL;

function suite(name: string, open: () => Promise<{ stores: KyselyStore[]; close: () => Promise<void> }>) {
  describe(`alert store: ${name}`, () => {
    const d = { key: 'k1', dedupKey: 'a'.repeat(32), transition: 'firing@1000', channel: 'hook' };
    const ok: DeliveryResult = {
      ok: true,
      channel: 'hook',
      attempts: [{ n: 1, startedAt: 1000, durationMs: 3, status: 200 }],
    };
    const failed: DeliveryResult = {
      ok: false,
      channel: 'hook',
      error: 'gave up',
      attempts: [
        { n: 1, startedAt: 1000, durationMs: 2, status: 503, retryInMs: 500 },
        { n: 2, startedAt: 1500, durationMs: 2, status: 429, retryInMs: 1000 },
      ],
    };

    it('of many controllers claiming one delivery at once, exactly one wins', async () => {
      const { stores, close } = await open();
      try {
        const claims = await Promise.all(
          stores.map((s, i) => new AlertStore(s.kysely).claimDelivery(d, `c${i}`, 1000, 60_000, 3)),
        );
        assert.deepEqual(
          claims.filter((c) => c !== undefined),
          [1],
        );
      } finally {
        await close();
      }
    });

    it('a failed delivery is retried by whoever claims it after its backoff; sent is final; every attempt kept', async () => {
      const { stores, close } = await open();
      try {
        const a = new AlertStore((stores[0] as KyselyStore).kysely);
        assert.equal(await a.claimDelivery(d, 'c1', 1000, 60_000, 3), 1);
        assert.equal(await a.claimDelivery(d, 'c2', 2000, 60_000, 3), undefined, 'held by c1');
        await a.finishDelivery(d.key, 1, 'c1', failed, 2000, 5000);
        assert.equal(await a.claimDelivery(d, 'c2', 3000, 60_000, 3), undefined, 'backoff not over');
        assert.deepEqual(
          (await a.retryableDeliveries(7001, 3)).map((r) => r.key),
          ['k1'],
        );
        assert.equal(await a.claimDelivery(d, 'c2', 7001, 60_000, 3), 2);
        await a.finishDelivery(d.key, 2, 'c2', ok, 7002, 0);
        assert.equal(await a.claimDelivery(d, 'c3', 999_999, 60_000, 3), undefined, 'sent is final');
        const [row] = await a.listDeliveries(d.dedupKey);
        assert.equal(row?.state, 'sent');
        assert.equal(row?.claimedBy, 'c2');
        assert.deepEqual(
          (await a.listAttempts(d.key)).map((x) => [Number(x.delivery), Number(x.n), x.status, x.controller]),
          [
            [1, 1, 503, 'c1'],
            [1, 2, 429, 'c1'],
            [2, 1, 200, 'c2'],
          ],
        );
      } finally {
        await close();
      }
    });

    it('an ack is recorded once, only on a firing alert; silences end', async () => {
      const { stores, close } = await open();
      try {
        const a = new AlertStore((stores[0] as KyselyStore).kysely);
        const base = {
          dedupKey: 'b'.repeat(32),
          ruleId: 'r',
          labels: { alertname: 'r' },
          severity: 'critical' as const,
          summary: 's',
          suppressed: null,
          updatedAt: 1,
        };
        await a.putAlert({ ...base, state: 'pending', activeSince: 1 });
        assert.equal(await a.ackAlert(base.dedupKey, 'x', 2), false);
        await a.putAlert({ ...base, state: 'firing', activeSince: 1, firedAt: 2 });
        const [one, two] = await Promise.all([
          a.ackAlert(base.dedupKey, 'alice', 3),
          a.ackAlert(base.dedupKey, 'bob', 3),
        ]);
        assert.equal(Number(one) + Number(two), 1);
        const got = await a.getAlert(base.dedupKey);
        assert.equal(got?.acknowledged, true);
        assert.ok(got?.acknowledgedBy === 'alice' || got?.acknowledgedBy === 'bob');
        await a.addSilence(
          {
            id: 's',
            matchers: [{ name: 'a', op: '=', value: 'b' }],
            startsAt: 0,
            endsAt: 100,
            createdBy: 't',
          },
          0,
        );
        assert.equal((await a.listSilences(50)).length, 1);
        assert.equal(await a.expireSilence('s', 60), true);
        assert.equal(await a.expireSilence('s', 61), false);
        assert.equal((await a.listSilences(61)).length, 0);
        assert.equal(await a.ackSecret(1), await a.ackSecret(2), 'the ack key is made once');
      } finally {
        await close();
      }
    });
  });
}

suite('sqlite', async () => {
  // One database file, several connections: what several controllers on one host would do.
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'nines-alert-store-'));
  const file = join(dir, 'db.sqlite');
  const stores: KyselyStore[] = [];
  for (let i = 0; i < 4; i++) stores.push(await openSqliteKyselyStore({ file }));
  return {
    stores,
    close: async () => {
      for (const s of stores) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

if (pgUrl)
  suite('postgres', async () => {
    const schema = `nines_alerts_${process.pid}_${randomBytes(3).toString('hex')}`;
    const stores: KyselyStore[] = [];
    for (let i = 0; i < 4; i++)
      stores.push(await openPostgresKyselyStore({ connectionString: pgUrl, schema }));
    return {
      stores,
      close: async () => {
        for (const s of stores) await s.close();
        const admin = new pg.Pool({ connectionString: pgUrl, max: 1 });
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await admin.end();
      },
    };
  });
else
  describe('alert store: postgres', () => {
    it('skipped: PostgreSQL not available (set NINES_TEST_PG_URL; scripts/ci-postgres.sh starts one)', (t) => {
      t.skip('NINES_TEST_PG_URL is not set');
    });
  });
