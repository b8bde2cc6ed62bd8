import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { isNinesError } from '../core/errors.js';
import { Leadership, needsLeader } from './leadership.js';
import { openPostgresStore } from './store/postgres.js';
import { openSqliteStore } from './store/sqlite.js';
import type { Store } from './store/types.js';

const logger = pino({ level: 'silent' });
const PG = process.env.NINES_TEST_PG_URL;

function leader(store: Store, id: string, leaseTimeoutMs = 600) {
  return new Leadership({ store, id, url: () => `http://${id}.test`, logger, leaseTimeoutMs });
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The same checks on SQLite (one process) and, when a server is available, PostgreSQL. */
function suite(name: string, open: () => Promise<Store>, skip?: string) {
  describe(`leadership on ${name}`, { skip }, () => {
    const stores: Store[] = [];
    const leaders: Leadership[] = [];
    after(async () => {
      for (const l of leaders) await l.stop();
      for (const s of stores) await s.close();
    });
    const make = async (id: string, ms?: number) => {
      const store = stores[0] ?? (await open());
      if (!stores.includes(store)) stores.push(store);
      const l = leader(store, id, ms);
      leaders.push(l);
      return { l, store };
    };

    it('one leader; it runs the registered parts; a takeover bumps the token and fences the old one', async () => {
      const { l: a, store } = await make('a');
      const { l: b } = await make('b');
      const runs: string[] = [];
      for (const [n, l] of [
        ['a', a],
        ['b', b],
      ] as const) {
        l.onLeadership(
          (t) => void runs.push(`${n}+${t.token}`),
          () => void runs.push(`${n}-`),
        );
      }
      await a.start();
      await b.start();
      assert.equal(a.isLeader, true);
      assert.equal(b.isLeader, false);
      const t1 = a.token;
      assert.ok(t1 >= 1);
      assert.deepEqual(runs, [`a+${t1}`]);
      assert.equal(b.status().leader?.url, 'http://a.test');

      // a's writes pass the fence; b (a follower) cannot write through its fenced store.
      const fa = a.fence(store);
      await fa.appendEvent({ at: 1, kind: 'k', subject: 's', message: 'from a', data: null });
      await assert.rejects(
        b.fence(store).appendEvent({ at: 1, kind: 'k', subject: 's', message: 'from b', data: null }),
        (e) => isNinesError(e) && e.code === 'NINES_E_FENCED',
      );

      // a stalls: it stops renewing (simulated by stopping its loop without releasing the lease)…
      (a as unknown as { running: boolean }).running = false;
      clearTimeout((a as unknown as { timer: NodeJS.Timeout }).timer);
      const stalledAt = Date.now();
      await until('b to take over', () => b.isLeader, 3000);
      const took = Date.now() - stalledAt;
      assert.ok(took <= 600 + 400, `takeover took ${took} ms`);
      assert.ok(b.token > t1, 'the new token is larger');
      // …and when it comes back, its late write is refused, and it has stepped down (watchdog).
      await assert.rejects(
        fa.appendEvent({ at: 2, kind: 'k', subject: 's', message: 'late', data: null }),
        (e) => isNinesError(e) && e.code === 'NINES_E_FENCED',
      );
      assert.equal(a.isLeader, false);
      assert.ok(a.status().fencedWrites >= 1);
      assert.ok(runs.includes('a-'));
      assert.ok(runs.includes(`b+${b.token}`));
      const events = await store.listEvents({ kind: 'k' });
      assert.deepEqual(
        events.map((e) => e.message),
        ['from a'],
      );
    });

    it('a clean stop hands over at once; a restart with the same id takes its lease back at once', async () => {
      for (const l of leaders.splice(0)) await l.stop();
      const { l: c, store } = await make('c', 60_000);
      const { l: d } = await make('d', 60_000);
      await c.start();
      await d.start();
      assert.equal(c.isLeader, true);
      assert.equal(d.isLeader, false);
      const before = c.token;
      const t0 = Date.now();
      await c.stop();
      await until('d to take over', () => d.isLeader, 3000);
      assert.ok(Date.now() - t0 < 2000, 'no wait for the 60 s lease: it was released');
      assert.equal(d.token, before + 1);
      // d's process dies without releasing (no stop); a new process with d's id takes over at once.
      (d as unknown as { running: boolean }).running = false;
      clearTimeout((d as unknown as { timer: NodeJS.Timeout }).timer);
      const d2 = leader(store, 'd', 60_000);
      leaders.push(d2);
      await d2.start();
      assert.equal(d2.isLeader, true);
      assert.equal(d2.token, before + 2);
    });
  });
}

suite('SQLite', () => openSqliteStore({ file: ':memory:' }));

const schema = `ha_${randomBytes(4).toString('hex')}`;
suite(
  'PostgreSQL',
  () => openPostgresStore({ connectionString: PG as string, schema }),
  PG ? undefined : 'PostgreSQL not available: set NINES_TEST_PG_URL (scripts/ci-postgres.sh starts one)',
);

describe('needsLeader', () => {
  it('writes, the node protocol and live views need the leader; store reads do not', () => {
    assert.equal(needsLeader('POST', '/v1/services/a/deploys'), true);
    assert.equal(needsLeader('GET', '/v1/agent/desired?hostId=h'), true);
    assert.equal(needsLeader('GET', '/v1/proxy/snapshot'), true);
    assert.equal(needsLeader('GET', '/v1/status'), true);
    assert.equal(needsLeader('GET', '/v1/stream'), true);
    assert.equal(needsLeader('GET', '/v1/services/a/logs?tail=5'), true);
    assert.equal(needsLeader('GET', '/v1/services'), false);
    assert.equal(needsLeader('GET', '/v1/deploys/d-1/events'), false);
    assert.equal(needsLeader('GET', '/v1/deploys/d-1/events?after=3&wait=0'), false);
    assert.equal(needsLeader('GET', '/v1/deploys/d-1/events?after=3&wait=20'), true);
    assert.equal(needsLeader('GET', '/v1/leader'), false);
    assert.equal(needsLeader('GET', '/healthz'), false);
    assert.equal(needsLeader('GET', '/v1/services/a/releases/v1/artifact'), false);
  });
});
