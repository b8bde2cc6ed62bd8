import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { serviceSchema } from '../core/config.js';
import { ArtifactStore } from './artifacts.js';
import { DesiredReplies } from './desired-replies.js';
import { Fleet } from './fleet.js';
import { Hub } from './hub.js';
import { Secrets } from './secrets/index.js';
import { openSqliteStore } from './store/sqlite.js';
import { host as hostFixture, release as releaseFixture } from './store/store-suite.js';
import type { ReleaseRecord, Store } from './store/types.js';

const logger = pino({ level: 'silent' });

/**
 * The kept replies must never be staler than the store: each input of a host's desired state —
 * instances placed, their desired state, instances removed, variables and secrets, the fencing
 * token — changes the next reply, and replies to others than the host itself are not kept.
 */
describe('desired-state replies', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-desired-'));
  let store: Store;
  let fleet: Fleet;
  let secrets: Secrets;
  let replies: DesiredReplies;
  let release: ReleaseRecord;
  let clock = 1_000_000;
  const lead = { token: 7 };
  const hostId = 'h-1';
  const reply = async () => JSON.parse(await replies.reply(hostId, hostId));
  const replyTo = async (signedBy: string | undefined) => JSON.parse(await replies.reply(hostId, signedBy));

  before(async () => {
    store = await openSqliteStore({ file: ':memory:' });
    const hub = new Hub();
    fleet = new Fleet({ store, hub, logger });
    secrets = new Secrets({ store, hub, logger, dataDir: dir });
    await secrets.init();
    const spec = serviceSchema.parse({ command: 'node server.js', instances: 1, env: { A: '1' } });
    await store.upsertService('api', spec);
    release = await store.insertRelease({ ...releaseFixture('api', 'v1'), spec });
    const now = Date.now();
    await store.upsertHost(
      hostFixture(hostId, 'host-1', { zone: 'a', registeredAt: now, lastSeenAt: now, key: 'cd'.repeat(32) }),
    );
    replies = new DesiredReplies({
      fleet,
      artifacts: new ArtifactStore({ dir: join(dir, 'artifacts') }),
      secrets,
      leadership: lead,
      now: () => clock,
    });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('kept per generation: the same text again while nothing changed', async () => {
    const a = await replies.reply(hostId, hostId);
    assert.equal(await replies.reply(hostId, hostId), a);
    assert.equal(replies.size, 1);
    assert.deepEqual(JSON.parse(a).instances, []);
  });

  it('an instance placed on the host is in the next reply', async () => {
    const before = await reply();
    const rec = await fleet.createInstance(release, null);
    const after = await reply();
    assert.ok(after.generation > before.generation);
    assert.deepEqual(
      after.instances.map((i: { id: string }) => i.id),
      [rec.id],
    );
    assert.equal(after.instances[0].desired, 'running');
    assert.equal(after.instances[0].env.A, '1');
  });

  it('a changed desired state, a variable, a secret, their removal: each in the next reply', async () => {
    const [rec] = await store.listInstances({ hostId });
    assert.ok(rec);
    await fleet.setDesired(rec, 'stopped');
    assert.equal((await reply()).instances[0].desired, 'stopped');
    await secrets.set({ service: 'api', name: 'LOG_LEVEL', kind: 'var', value: 'debug', by: 't' });
    assert.equal((await reply()).instances[0].env.LOG_LEVEL, 'debug');
    await secrets.set({ service: 'api', name: 'DB_PASSWORD', kind: 'secret', value: 'pw1', by: 't' });
    assert.deepEqual((await reply()).instances[0].secrets, { DB_PASSWORD: 'pw1' });
    await secrets.set({ service: 'api', name: 'DB_PASSWORD', kind: 'secret', value: 'pw2', by: 't' });
    assert.deepEqual((await reply()).instances[0].secrets, { DB_PASSWORD: 'pw2' });
    await secrets.remove('api', undefined, 'DB_PASSWORD', 't');
    assert.equal((await reply()).instances[0].secrets, undefined);
    await secrets.remove('api', undefined, 'LOG_LEVEL', 't');
    assert.equal((await reply()).instances[0].env.LOG_LEVEL, undefined);
  });

  it('a new fencing token is in the next reply', async () => {
    assert.equal((await reply()).fencingToken, 7);
    lead.token = 8;
    assert.equal((await reply()).fencingToken, 8);
  });

  it('secrets only to the host itself, and what others get is not kept for the host', async () => {
    await secrets.set({ service: 'api', name: 'S', kind: 'secret', value: 'x', by: 't' });
    assert.deepEqual((await reply()).instances[0].secrets, { S: 'x' });
    assert.equal((await replyTo('h-2')).instances[0].secrets, undefined);
    assert.equal((await replyTo(undefined)).instances[0].secrets, undefined);
    assert.deepEqual((await reply()).instances[0].secrets, { S: 'x' });
  });

  it('a removed instance is gone from the next reply; an entry expires after maxAgeMs', async () => {
    const [rec] = await store.listInstances({ hostId });
    assert.ok(rec);
    await fleet.removeInstance(rec);
    assert.deepEqual((await reply()).instances, []);
    // A write that forgot to bump the generation is seen once the entry expires (belt and braces).
    const rec2 = await fleet.createInstance(release, null);
    const gen = await fleet.hostGeneration(hostId);
    assert.equal((await reply()).instances[0].desired, 'running');
    await store.updateInstance(rec2.id, { desired: 'stopped' }); // no bump, on purpose
    assert.equal((await reply()).generation, gen);
    assert.equal((await reply()).instances[0].desired, 'running', 'kept within maxAgeMs');
    clock += 30_001;
    assert.equal((await reply()).instances[0].desired, 'stopped');
  });
});

describe('routes set together', () => {
  it('share one transaction and one routing version; each is written', async () => {
    const store = await openSqliteStore({ file: ':memory:' });
    try {
      const fleet = new Fleet({ store, hub: new Hub(), logger });
      const spec = serviceSchema.parse({ command: 'node server.js', instances: 3 });
      await store.upsertService('api', spec);
      const release = await store.insertRelease({ ...releaseFixture('api', 'v1'), spec });
      const now = Date.now();
      await store.upsertHost(hostFixture('h-1', 'host-1', { zone: 'a', registeredAt: now, lastSeenAt: now }));
      const recs = await Promise.all([1, 2, 3].map(() => fleet.createInstance(release, null)));
      const before = await fleet.routingVersion();
      const versions = await Promise.all(recs.map((r) => fleet.setRoute(r, 'ready')));
      assert.deepEqual(versions, [before + 1, before + 1, before + 1]);
      assert.deepEqual(
        (await store.listInstances()).map((i) => i.route),
        ['ready', 'ready', 'ready'],
      );
      // One alone still gets its own version.
      assert.equal(await fleet.setRoute(recs[0] as (typeof recs)[number], 'draining'), before + 2);
      assert.equal((await store.getInstance(recs[0]?.id ?? ''))?.route, 'draining');
    } finally {
      await store.close();
    }
  });
});
