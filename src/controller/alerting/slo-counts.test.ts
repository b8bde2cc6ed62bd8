import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, test } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { alertingConfigSchema } from '../../core/alerting-config.js';
import { availabilityFor, uptimeReport } from '../checks/reports.js';
import { Controller } from '../controller.js';
import { Hub } from '../hub.js';
import type { KyselyStore } from '../store/kysely-store.js';
import { openPostgresKyselyStore } from '../store/postgres.js';
import { openSqliteKyselyStore } from '../store/sqlite.js';
import { host, instance, release, spec1 } from '../store/store-suite.js';
import { burnRate, DEFAULT_BURN_WINDOWS, errorBudgetRemaining, evaluateBurnRates } from './burnrate.js';
import { AlertRuntime } from './runtime.js';
import { RequestSignals } from './sources.js';
import { AlertStore } from './store.js';
import { DAY, HOUR, MINUTE, SECOND } from './types.js';

/**
 * SLO request counts kept in the store: burn rates and error budgets computed from them, the same after
 * the store is closed and opened again (a restarted controller, a new leader), on SQLite always and on
 * PostgreSQL when NINES_TEST_PG_URL names a server.
 */

const T0 = Date.parse('2026-12-01T10:00:30Z');
const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} ≈ ${b}`);

interface Backend {
  name: string;
  /** A fresh store; `reopen` opens the same data again after the first is closed. */
  open(): Promise<{ store: KyselyStore; reopen: () => Promise<KyselyStore>; drop: () => Promise<void> }>;
}

const tmp = mkdtempSync(join(tmpdir(), 'nines-slo-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;

const sqlite: Backend = {
  name: 'sqlite file',
  async open() {
    const file = join(tmp, `slo-${++seq}`, 'nines.db');
    return {
      store: await openSqliteKyselyStore({ file }),
      reopen: () => openSqliteKyselyStore({ file }),
      drop: async () => {},
    };
  },
};

const pgUrl = process.env.NINES_TEST_PG_URL;
async function pgProbe(connectionString: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.end().catch(() => {});
  }
}
const pgUnavailable = pgUrl ? await pgProbe(pgUrl) : 'NINES_TEST_PG_URL is not set';
if (pgUrl !== undefined && pgUnavailable !== undefined && process.env.CI) {
  test('SLO counts on PostgreSQL', () => {
    throw new Error(`NINES_TEST_PG_URL is set in CI but the server does not answer: ${pgUnavailable}`);
  });
}

const postgres: Backend = {
  name: 'postgres',
  async open() {
    const url = pgUrl ?? '';
    const schema = `nines_slo${process.pid}_${randomBytes(3).toString('hex')}_${++seq}`;
    return {
      store: await openPostgresKyselyStore({ connectionString: url, schema }),
      reopen: () => openPostgresKyselyStore({ connectionString: url, schema }),
      drop: async () => {
        const admin = new pg.Client({ connectionString: url });
        await admin.connect();
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await admin.end();
      },
    };
  },
};

for (const backend of [sqlite, postgres]) {
  const skip =
    backend === postgres && pgUnavailable !== undefined
      ? `PostgreSQL not available: ${pgUnavailable}`
      : false;

  describe(`SLO counts in the store (${backend.name})`, { skip }, () => {
    it('hand-computed burn rates and error budget from stored minutes, identical after the store is reopened', async () => {
      const { store, reopen, drop } = await backend.open();
      try {
        const a = new RequestSignals(store, undefined, { flushMs: 10 * SECOND });
        const now = T0;
        const minute = Math.floor(now / MINUTE);
        // The last hour: 1,000 answers a minute, 20 of them 5xx (2 %). The 5 hours before: 1,000 a
        // minute, 1 of them 5xx (0.1 %). Nothing earlier.
        for (let i = 0; i < 60; i++) a.add('web', minute - i, 1000, 20);
        for (let i = 60; i < 360; i++) a.add('web', minute - i, 1000, 1);
        // Another release and another service must not leak into web's service-wide windows.
        for (let i = 0; i < 60; i++) a.add('web', minute - i, 400, 400, 'v2');
        a.add('api', minute, 1000, 1000);
        assert.equal(await a.flush(now), 60 + 300 + 60 + 1);

        const expect = async (r: RequestSignals) => {
          // 1 h: 60,000 answers, 1,200 bad → 2 % / 0.1 % = burn 20.
          const h1 = await r.countsOver('web', HOUR, now);
          assert.deepEqual(h1, { good: 58_800, total: 60_000 });
          close(burnRate(0.999, h1), 20);
          // 5 min: 5,000 answers, 100 bad → 20.
          assert.deepEqual(await r.countsOver('web', 5 * MINUTE, now), { good: 4_900, total: 5_000 });
          // 6 h: 360,000 answers, 1,200 + 300 = 1,500 bad → 0.4167 % → burn 4.1667 (< 6: page-6h quiet).
          const h6 = await r.countsOver('web', 6 * HOUR, now);
          assert.deepEqual(h6, { good: 358_500, total: 360_000 });
          close(burnRate(0.999, h6), 1500 / 360_000 / 0.001);
          // 3 d = 6 h here (nothing older): burn 4.17 ≥ 1 and 6 h ≥ 1 → the ticket fires.
          const live = new Map<number, { good: number; total: number }>();
          for (const w of DEFAULT_BURN_WINDOWS)
            for (const ms of [w.longMs, w.shortMs]) live.set(ms, await r.countsOver('web', ms, now));
          const got = evaluateBurnRates(0.999, (ms) => live.get(ms) ?? { good: 0, total: 0 });
          assert.deepEqual(
            got.map((b) => [b.window.name, b.firing]),
            [
              ['page-1h', true],
              ['page-6h', false],
              ['ticket-3d', true],
            ],
          );
          // Error budget over the 30-day period: 360,000 answers allow 360 bad; 1,500 were → 1 − 1500/360.
          close(errorBudgetRemaining(0.999, await r.countsOver('web', 30 * DAY, now)), 1 - 1500 / 360);
          // The release's own window.
          assert.deepEqual(await r.countsOver('web', HOUR, now, 'v2'), { good: 0, total: 24_000 });
          return got.map((b) => [b.longBurn, b.shortBurn]);
        };
        const before = await expect(a);
        await store.close();

        const again = await reopen();
        try {
          const b = new RequestSignals(again);
          const after = await expect(b);
          assert.deepEqual(after, before, 'the same burn rates after a restart');
        } finally {
          await again.close();
        }
      } finally {
        await drop();
      }
    });

    it('a firing SLO page stays firing (same value) for a controller started on the same store', async () => {
      const { store, reopen, drop } = await backend.open();
      const config = alertingConfigSchema.parse({
        channels: {
          hook: { kind: 'webhook', url: 'http://127.0.0.1:9/hook', secret: 'whsec-0123456789abcdef' },
        },
        slos: { web: { objective: '99.9%', page: ['hook'] } },
      });
      const runtime = (s: KyselyStore, requests: RequestSignals, now: number) =>
        new AlertRuntime({
          alerts: new AlertStore(s.kysely),
          store: s,
          sources: [],
          requests,
          controllerId: 'c1',
          ackSecret: () => 'ack',
          baseUrl: () => 'http://nines.test',
          logger: pino({ level: 'silent' }),
          now: () => now,
          // The receiver does not exist: deliveries fail fast and are not the point here.
          retryDeps: { sleep: async () => {}, now: () => now, random: () => 0 },
          maxDeliveries: 1,
        });
      try {
        await new AlertStore(store.kysely).putConfig(config, 'test', T0);
        const req = new RequestSignals(store, undefined, { flushMs: 10 * SECOND });
        const minute = Math.floor(T0 / MINUTE);
        for (let i = 0; i < 60; i++) req.add('web', minute - i, 1000, 20);
        const rt = runtime(store, req, T0);
        await rt.tick();
        await rt.settle();
        const page = async (s: KyselyStore) =>
          (await new AlertStore(s.kysely).listAlerts()).find((x) => x.labels.window === 'page-1h');
        assert.equal((await page(store))?.state, 'firing');
        close((await page(store))?.lastValue ?? 0, 20);
        await req.flush(T0 + SECOND);
        await store.close();

        const again = await reopen();
        try {
          // Without the stored counts this tick would see no traffic (burn 0) and resolve the page.
          const rt2 = runtime(again, new RequestSignals(again), T0 + 20 * SECOND);
          await rt2.tick();
          await rt2.settle();
          const p = await page(again);
          assert.equal(p?.state, 'firing');
          close(p?.lastValue ?? 0, 20);
        } finally {
          await again.close();
        }
      } finally {
        await drop();
      }
    });

    it('samples the proxies: per-service and per-release increases, proxy restarts, batched writes', async () => {
      const { store, drop } = await backend.open();
      try {
        await store.upsertHost(host('h1', 'vm1'));
        await store.upsertService('web', spec1);
        await store.insertRelease(release('web', 'v1'));
        await store.insertRelease(release('web', 'v2'));
        await store.insertInstance({ ...instance('i1', 'web', 'h1'), releaseVersion: 'v1' });
        await store.insertInstance({ ...instance('i2', 'web', 'h1'), releaseVersion: 'v2' });
        let clock = T0;
        const hub = new Hub({ now: () => clock });
        const req = new RequestSignals(store, hub, { flushMs: 10 * SECOND });
        const report = (proxy: string, svc: [number, number], i1: [number, number], i2: [number, number]) =>
          hub.proxyReport(
            proxy,
            1,
            [
              { id: 'i1', up: true, inflight: 0, drained: false, requests: i1[0], failed: i1[1] },
              { id: 'i2', up: true, inflight: 0, drained: false, requests: i2[0], failed: i2[1] },
            ],
            [{ name: 'web', requests: svc[0], failed: svc[1] }],
          );
        report('p1', [500, 5], [300, 0], [200, 5]); // first sight: a baseline, not counted
        await req.sample(clock);
        clock += SECOND;
        report('p1', [600, 8], [360, 0], [240, 3]); // +100/+3; i2's 5xx went down (forgotten): from zero
        report('p2', [50, 0], [30, 0], [20, 0]); // baseline
        await req.sample(clock);
        clock += SECOND;
        report('p2', [80, 10], [30, 0], [30, 10]); // +30/+10 (i2 +10/+10, but the proxy's own 5xx too)
        await req.sample(clock);
        assert.deepEqual(await store.sloCounts().list({}), [], 'nothing written before flushMs');
        const total = await req.countsOver('web', 5 * MINUTE, clock);
        assert.deepEqual(total, { good: 130 - 13, total: 130 });
        clock += 10 * SECOND;
        await req.sample(clock);
        const rows = await store.sloCounts().list({});
        assert.deepEqual(
          rows.map((r) => [r.release, r.total, r.bad]),
          [
            ['', 130, 13],
            ['v1', 60, 0],
            ['v2', 240 + 10, 3 + 10],
          ],
          'one batch; a counter that went down counts from zero again',
        );
        assert.deepEqual(await req.countsOver('web', 5 * MINUTE, clock), total, 'stored = what was pending');
      } finally {
        await store.close();
        await drop();
      }
    });

    it('uptime report: answers, 5xx and error budget per service over the window, maintenance left out, same after reopening', async () => {
      const { store, reopen, drop } = await backend.open();
      try {
        await store.upsertService('web', spec1);
        const now = T0;
        const req = new RequestSignals(store);
        const minute = Math.floor(now / MINUTE);
        // 2 hours: 100 answers a minute, 1 bad (1 %); then a maintenance hour with 50 % errors.
        for (let i = 0; i < 120; i++) req.add('web', minute - i, 100, 1);
        for (let i = 120; i < 180; i++) req.add('web', minute - i, 100, 50);
        await req.flush(now);
        const mStart = (minute - 179) * MINUTE;
        const maintenance = [
          {
            id: 'm1',
            matchers: [{ name: 'service', op: '=' as const, value: 'web' }],
            schedule: { kind: 'once' as const, startsAt: mStart, endsAt: mStart + HOUR },
          },
        ];
        const figures = async (s: KyselyStore) => {
          const rows = await uptimeReport(
            { store: s, now: () => now, maintenanceWindows: () => maintenance },
            '24h',
            0.99,
          );
          return rows.find((r) => r.kind === 'service' && r.name === 'web')?.requests;
        };
        // 12,000 answers, 120 bad: availability 99 %; a 99 % objective allows 120 bad → budget 0.
        const want = { total: 12_000, failed: 120, availability: 0.99, errorBudgetLeft: 0 };
        const got = await figures(store);
        assert.equal(got?.total, want.total);
        assert.equal(got?.failed, want.failed);
        close(got?.availability ?? 0, want.availability);
        close(got?.errorBudgetLeft ?? 1, want.errorBudgetLeft);
        const rows = await uptimeReport({ store, now: () => now }, '24h', 0.999);
        const all = rows.find((r) => r.name === 'web')?.requests;
        // Without the maintenance window: 18,000 answers, 3,120 bad; 0.999 allows 18 → 1 − 3120/18.
        assert.deepEqual([all?.total, all?.failed], [18_000, 3_120]);
        close(all?.errorBudgetLeft ?? 0, 1 - 3120 / 18);
        const availability = availabilityFor({ name: 'web', instances: 2 }, rows, 0.999, '24h');
        close(availability.measuredByRequests ?? 0, 1 - 3120 / 18_000);
        await store.close();
        const again = await reopen();
        try {
          assert.deepEqual(await figures(again), got);
        } finally {
          await again.close();
        }
      } finally {
        await drop();
      }
    });

    it('sliding cached window sums stay equal to fresh sums from the store, minute after minute', async () => {
      const { store, drop } = await backend.open();
      try {
        const live = new RequestSignals(store, undefined, { flushMs: 3 * MINUTE });
        let now = Date.parse('2026-12-01T09:00:10Z');
        let x = 7;
        const rnd = () => {
          x = (x * 1103515245 + 12345) % 2 ** 31;
          return x;
        };
        const windows = [5 * MINUTE, 30 * MINUTE, HOUR, 6 * HOUR, 3 * DAY, 30 * DAY];
        for (let step = 0; step < 150; step++) {
          now += 20 * SECOND;
          const total = rnd() % 50;
          live.record('web', '', now, total, total === 0 ? 0 : rnd() % (total + 1));
          if (step % 7 === 0) await live.flush(now);
          if (step === 90) await live.compact(now + 4 * DAY); // rows move into hours: sums start over
          for (const w of windows) await live.countsOver('web', w, now);
        }
        await live.flush(now);
        const fresh = new RequestSignals(store);
        for (const w of windows)
          assert.deepEqual(
            await live.countsOver('web', w, now),
            await fresh.countsOver('web', w, now),
            `window ${w}`,
          );
      } finally {
        await store.close();
        await drop();
      }
    });

    it('compaction keeps 30-day and 90-day sums while rows shrink to hours and days', async () => {
      const { store, drop } = await backend.open();
      try {
        const now = Date.parse('2026-12-01T00:00:30Z');
        const keep = { keepMinutesMs: 3 * DAY + HOUR, keepHoursMs: 31 * DAY, keepDaysMs: 92 * DAY };
        const req = new RequestSignals(store, undefined, { flushMs: 10 * SECOND, ...keep });
        // The rollup policy as a model: where a point's count ends up (undefined: deleted).
        const hourEnd = now - keep.keepMinutesMs - ((now - keep.keepMinutesMs) % HOUR);
        const dayEnd = now - keep.keepHoursMs - ((now - keep.keepHoursMs) % DAY);
        const bucketOf = (t: number): number | undefined =>
          t < now - keep.keepDaysMs
            ? undefined
            : t < dayEnd
              ? t - (t % DAY)
              : t < hourEnd
                ? t - (t % HOUR)
                : t;
        // One request per 10 minutes for 100 days, every 100th a 5xx.
        const points: { at: number; bad: number }[] = [];
        for (let m = 0; m < 100 * 1440; m += 10) {
          const minute = Math.floor(now / MINUTE) - m;
          const isBad = m % 1000 === 0 ? 1 : 0;
          req.add('web', minute, 1, isBad);
          points.push({ at: minute * MINUTE, bad: isBad });
        }
        await req.flush(now);
        const r = await req.compact(now);
        assert.ok(r.deleted > 0, 'past 92 days is deleted');
        assert.ok(r.merged > 0);
        const buckets = new Set(points.map((p) => bucketOf(p.at)).filter((b) => b !== undefined));
        const rows = await store.sloCounts().list({ service: 'web' });
        assert.equal(rows.length, buckets.size, 'one row per minute / hour / day bucket');
        assert.ok(rows.length < 1200, `${rows.length} rows for 14,400 stored minutes`);
        // A window counts the buckets that start inside it: exact to the minute for the last 3 days, to
        // the hour up to 31 days, to the day beyond.
        const expected = (windowMs: number) => {
          const to = now - (now % MINUTE) + MINUTE;
          const from = to - windowMs;
          let total = 0;
          let bad = 0;
          for (const p of points) {
            const b = bucketOf(p.at);
            if (b === undefined || b < from || b >= to) continue;
            total++;
            bad += p.bad;
          }
          return { good: total - bad, total };
        };
        for (const w of [5 * MINUTE, HOUR, 6 * HOUR, 3 * DAY, 30 * DAY, 90 * DAY])
          assert.deepEqual(await req.countsOver('web', w, now), expected(w), `window ${w / MINUTE} min`);
        // The 3-day window is still minutes: exactly every point of the last 3 days.
        assert.equal((await req.countsOver('web', 3 * DAY, now)).total, (3 * 1440) / 10);
        const c90 = await req.countsOver('web', 90 * DAY, now);
        assert.ok(c90.total > 89 * 144 && c90.total <= 90 * 144, `${c90.total}`);
        // Compaction changes no sum: the same numbers again.
        await req.compact(now + MINUTE);
        assert.deepEqual(await req.countsOver('web', 30 * DAY, now), expected(30 * DAY));
      } finally {
        await store.close();
        await drop();
      }
    });
  });
}

describe('SLO counts across a controller restart (real controller, SQLite file)', () => {
  it('the leader samples the proxy reports, writes them when it steps down, and a restarted controller reads the same burn rate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nines-slo-ctl-'));
    const file = join(dir, 'nines.db');
    const start = async () => {
      const store = await openSqliteKyselyStore({ file });
      const controller = new Controller({
        store,
        dataDir: dir,
        logger: pino({ level: 'silent' }),
        host: '127.0.0.1',
        port: 0,
        alertIntervalMs: 50,
      });
      const { node } = await controller.bootstrapTokens();
      await controller.start();
      return { store, controller, node };
    };
    const report = async (c: Controller, token: string, requests: number, failed: number) => {
      const res = await fetch(`${c.url}/v1/proxy/report`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          proxyId: 'px-1',
          appliedVersion: 0,
          instances: [],
          services: [{ name: 'web', requests, failed }],
        }),
      });
      assert.equal(res.status, 204);
    };
    const counted = async (c: Controller, total: number) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const got = await c.requests.countsOver('web', HOUR, Date.now());
        if (got.total === total || Date.now() > deadline) return got;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      const a = await start();
      try {
        await report(a.controller, a.node, 500, 0); // the proxy's first report: a baseline
        await new Promise((r) => setTimeout(r, 300)); // a few alert ticks see it
        await report(a.controller, a.node, 1500, 20); // +1,000 answers, 20 of them 5xx
        assert.deepEqual(await counted(a.controller, 1000), { good: 980, total: 1000 });
        assert.deepEqual(await a.store.sloCounts().list({}), [], 'not written yet: batches every 10 s');
      } finally {
        await a.controller.close(); // steps down: what is pending is written
        await a.store.close();
      }
      const b = await start();
      try {
        const got = await b.controller.requests.countsOver('web', HOUR, Date.now());
        assert.deepEqual(got, { good: 980, total: 1000 });
        close(burnRate(0.999, got), 20);
      } finally {
        await b.controller.close();
        await b.store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
