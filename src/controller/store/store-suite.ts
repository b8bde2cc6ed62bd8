import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type ServiceSpec, serviceSchema } from '../../core/config.js';
import { type ErrorCode, NinesError } from '../../core/errors.js';
import type { ObservedInstance } from '../../core/protocol.js';
import type { DeployRecord, HostRecord, InstanceRecord, Store, TokenRecord } from './types.js';

/**
 * The one test suite every Store implementation must pass (SQLite now, PostgreSQL later).
 * `open()` must return a fresh, empty, migrated store each time; the suite closes it.
 */
export function runStoreSuite(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('migrate', () => {
      it('is idempotent', async () => {
        await store.migrate();
        await store.migrate();
        assert.deepEqual(await store.listServices(), []);
      });
    });

    describe('services', () => {
      it('a service starts live; its mode and options round-trip and survive a spec update', async () => {
        assert.equal((await store.upsertService('web', spec1)).mode, 'live');
        assert.equal((await store.getService('web'))?.modeOptions, null);
        await store.setServiceMode('web', 'read-only', { retryAfterSeconds: 12, message: 'migrating' });
        await store.upsertService('web', spec2);
        const s = await store.getService('web');
        assert.equal(s?.mode, 'read-only');
        assert.deepEqual(s?.modeOptions, { retryAfterSeconds: 12, message: 'migrating' });
        await store.setServiceMode('web', 'live', null);
        assert.equal((await store.getService('web'))?.modeOptions, null);
        await rejectsWith(store.setServiceMode('nope', 'live', null), 'NINES_E_SERVICE_NOT_FOUND');
      });

      it('upsert creates, then updates only the spec', async () => {
        const a = await store.upsertService('web', spec1);
        assert.equal(a.name, 'web');
        assert.deepEqual(a.spec, spec1);
        assert.equal(a.currentRelease, null);
        assert.equal(a.lockedBy, null);
        assert.equal(typeof a.createdAt, 'number');
        assert.ok(a.updatedAt >= a.createdAt);

        await store.insertRelease(release('web', 'v1'));
        await store.setCurrentRelease('web', 'v1');
        assert.deepEqual(await store.acquireDeployLock('web', 'd1'), { ok: true });
        await sleep(3);
        const b = await store.upsertService('web', spec2);
        assert.deepEqual(b.spec, spec2);
        assert.equal(b.createdAt, a.createdAt);
        assert.ok(b.updatedAt > a.updatedAt);
        assert.equal(b.currentRelease, 'v1', 'upsert keeps the current release');
        assert.equal(b.lockedBy, 'd1', 'upsert keeps the lock');
        assert.deepEqual(await store.getService('web'), b);
      });

      it('get of an unknown service is undefined; list is sorted by name', async () => {
        assert.equal(await store.getService('nope'), undefined);
        await store.upsertService('zeta', spec1);
        await store.upsertService('alpha', spec2);
        await store.upsertService('mid', spec1);
        assert.deepEqual(
          (await store.listServices()).map((s) => s.name),
          ['alpha', 'mid', 'zeta'],
        );
      });

      it('round-trips the spec exactly (defaults, percentages, env, durations)', async () => {
        await store.upsertService('web', spec2);
        const got = await store.getService('web');
        assert.deepEqual(got?.spec, spec2);
        assert.deepEqual(serviceSchema.parse(got?.spec), spec2, 'the stored spec is still a valid spec');
      });

      it('setCurrentRelease sets and clears; unknown service or release is an error', async () => {
        await store.upsertService('web', spec1);
        await store.insertRelease(release('web', 'v1'));
        await store.setCurrentRelease('web', 'v1');
        assert.equal((await store.getService('web'))?.currentRelease, 'v1');
        await store.setCurrentRelease('web', null);
        assert.equal((await store.getService('web'))?.currentRelease, null);
        await rejectsWith(store.setCurrentRelease('web', 'v9'), 'NINES_E_RELEASE_NOT_FOUND');
        await rejectsWith(store.setCurrentRelease('nope', 'v1'), 'NINES_E_SERVICE_NOT_FOUND');
        await rejectsWith(store.setCurrentRelease('nope', null), 'NINES_E_SERVICE_NOT_FOUND');
      });
    });

    describe('deploy lock', () => {
      it('is taken when free, re-entrant for its holder, refused to others', async () => {
        await store.upsertService('web', spec1);
        assert.deepEqual(await store.acquireDeployLock('web', 'd1'), { ok: true });
        assert.deepEqual(await store.acquireDeployLock('web', 'd1'), { ok: true });
        assert.deepEqual(await store.acquireDeployLock('web', 'd2'), { ok: false, heldBy: 'd1' });
        assert.equal((await store.getService('web'))?.lockedBy, 'd1');
      });

      it('is released only by its holder', async () => {
        await store.upsertService('web', spec1);
        await store.acquireDeployLock('web', 'd1');
        await store.releaseDeployLock('web', 'd2');
        assert.equal((await store.getService('web'))?.lockedBy, 'd1');
        await store.releaseDeployLock('web', 'd1');
        assert.equal((await store.getService('web'))?.lockedBy, null);
        assert.deepEqual(await store.acquireDeployLock('web', 'd2'), { ok: true });
        await store.releaseDeployLock('web', 'd2');
        await store.releaseDeployLock('web', 'd2');
        assert.equal((await store.getService('web'))?.lockedBy, null);
      });

      it('is per service', async () => {
        await store.upsertService('a', spec1);
        await store.upsertService('b', spec1);
        assert.deepEqual(await store.acquireDeployLock('a', 'd1'), { ok: true });
        assert.deepEqual(await store.acquireDeployLock('b', 'd2'), { ok: true });
      });

      it('goes to exactly one of many concurrent contenders', async () => {
        await store.upsertService('web', spec1);
        const ids = Array.from({ length: 10 }, (_, i) => `d${i}`);
        const results = await Promise.all(ids.map((id) => store.acquireDeployLock('web', id)));
        const winners = ids.filter((_, i) => results[i]?.ok);
        assert.equal(winners.length, 1);
        for (const r of results) if (!r.ok) assert.equal(r.heldBy, winners[0]);
        assert.equal((await store.getService('web'))?.lockedBy, winners[0]);
      });

      it('of an unknown service is an error', async () => {
        await rejectsWith(store.acquireDeployLock('nope', 'd1'), 'NINES_E_SERVICE_NOT_FOUND');
      });
    });

    describe('releases', () => {
      it('insert assigns a store-wide monotonic seq and stable=false', async () => {
        await store.upsertService('a', spec1);
        await store.upsertService('b', spec1);
        const r1 = await store.insertRelease(release('a', 'v1'));
        const r2 = await store.insertRelease(release('b', 'v1'));
        const r3 = await store.insertRelease(release('a', 'v2'));
        assert.equal(r1.stable, false);
        assert.ok(r1.seq >= 1);
        assert.ok(r2.seq > r1.seq && r3.seq > r2.seq);
        assert.deepEqual(await store.getRelease('a', 'v1'), r1);
        assert.deepEqual(await store.getRelease('b', 'v1'), r2);
      });

      it('round-trips every field, including sizes above 2^32 and the captured spec', async () => {
        await store.upsertService('web', spec1);
        const input = { ...release('web', '2024.1.0-rc.1+abc'), size: 6_000_000_000, spec: spec2 };
        const r = await store.insertRelease(input);
        assert.deepEqual(r, { ...input, stable: false, seq: r.seq });
        assert.deepEqual(await store.getRelease('web', '2024.1.0-rc.1+abc'), r);
      });

      it('lists newest first, per service', async () => {
        await store.upsertService('a', spec1);
        await store.upsertService('b', spec1);
        // createdAt deliberately out of order: seq decides.
        await store.insertRelease({ ...release('a', 'v1'), createdAt: T0 + 30 });
        await store.insertRelease(release('b', 'x'));
        await store.insertRelease({ ...release('a', 'v2'), createdAt: T0 + 20 });
        await store.insertRelease({ ...release('a', 'v3'), createdAt: T0 + 10 });
        assert.deepEqual(
          (await store.listReleases('a')).map((r) => r.version),
          ['v3', 'v2', 'v1'],
        );
        assert.deepEqual(
          (await store.listReleases('b')).map((r) => r.version),
          ['x'],
        );
        assert.deepEqual(await store.listReleases('nope'), []);
      });

      it('an existing (service, version) is NINES_E_RELEASE_EXISTS and changes nothing', async () => {
        await store.upsertService('web', spec1);
        const r1 = await store.insertRelease(release('web', 'v1'));
        const err = await rejectsWith(
          store.insertRelease({ ...release('web', 'v1'), sha256: 'f'.repeat(64) }),
          'NINES_E_RELEASE_EXISTS',
        );
        assert.equal(err.status, 409);
        assert.deepEqual(await store.listReleases('web'), [r1]);
        // The same version of another service is fine.
        await store.upsertService('api', spec1);
        await store.insertRelease(release('api', 'v1'));
      });

      it('of an unknown service is NINES_E_SERVICE_NOT_FOUND', async () => {
        await rejectsWith(store.insertRelease(release('nope', 'v1')), 'NINES_E_SERVICE_NOT_FOUND');
      });

      it('markReleaseStable flips stable; unknown release is an error', async () => {
        await store.upsertService('web', spec1);
        await store.insertRelease(release('web', 'v1'));
        await store.insertRelease(release('web', 'v2'));
        await store.markReleaseStable('web', 'v1');
        assert.equal((await store.getRelease('web', 'v1'))?.stable, true);
        assert.equal((await store.getRelease('web', 'v2'))?.stable, false);
        await store.markReleaseStable('web', 'v1');
        assert.equal((await store.getRelease('web', 'v1'))?.stable, true);
        await rejectsWith(store.markReleaseStable('web', 'v9'), 'NINES_E_RELEASE_NOT_FOUND');
        assert.equal(await store.getRelease('web', 'v9'), undefined);
      });

      it('seq keeps growing under concurrent inserts', async () => {
        await store.upsertService('web', spec1);
        const rs = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store.insertRelease(release('web', `v${i}`))),
        );
        const seqs = rs.map((r) => r.seq).sort((x, y) => x - y);
        assert.equal(new Set(seqs).size, 10);
        assert.deepEqual(
          (await store.listReleases('web')).map((r) => r.seq),
          [...seqs].reverse(),
        );
      });
    });

    describe('deploys', () => {
      beforeEach(async () => {
        await store.upsertService('web', spec1);
        await store.upsertService('api', spec1);
      });

      it('insert/get round-trips every field', async () => {
        const d = deploy('d1', 'web', { fromVersion: null, reason: null, startedAt: null, finishedAt: null });
        await store.insertDeploy(d);
        assert.deepEqual(await store.getDeploy('d1'), d);
        const d2 = deploy('d2', 'web', {
          fromVersion: 'v1',
          kind: 'rollback',
          state: 'reverted',
          reason: 'instance i-3 never became healthy',
          startedAt: T0 + 1,
          finishedAt: T0 + 2,
        });
        await store.insertDeploy(d2);
        assert.deepEqual(await store.getDeploy('d2'), d2);
        assert.equal(await store.getDeploy('nope'), undefined);
      });

      it('of an unknown service is NINES_E_SERVICE_NOT_FOUND; a duplicate id is refused', async () => {
        await rejectsWith(store.insertDeploy(deploy('d1', 'nope')), 'NINES_E_SERVICE_NOT_FOUND');
        await store.insertDeploy(deploy('d1', 'web'));
        await assert.rejects(store.insertDeploy(deploy('d1', 'web')));
        assert.equal((await store.listDeploys()).length, 1);
      });

      it('update patches only the given fields', async () => {
        await store.insertDeploy(deploy('d1', 'web'));
        await store.updateDeploy('d1', { state: 'running', startedAt: T0 + 5 });
        let got = await store.getDeploy('d1');
        assert.equal(got?.state, 'running');
        assert.equal(got?.startedAt, T0 + 5);
        assert.equal(got?.finishedAt, null);
        assert.equal(got?.reason, null);
        await store.updateDeploy('d1', { state: 'failed', reason: 'boom', finishedAt: T0 + 9 });
        got = await store.getDeploy('d1');
        assert.deepEqual(
          { state: got?.state, reason: got?.reason, startedAt: got?.startedAt, finishedAt: got?.finishedAt },
          { state: 'failed', reason: 'boom', startedAt: T0 + 5, finishedAt: T0 + 9 },
        );
        await store.updateDeploy('d1', { reason: null });
        assert.equal((await store.getDeploy('d1'))?.reason, null);
        await store.updateDeploy('d1', {});
        await rejectsWith(store.updateDeploy('nope', { state: 'running' }), 'NINES_E_DEPLOY_NOT_FOUND');
        await rejectsWith(store.updateDeploy('nope', {}), 'NINES_E_DEPLOY_NOT_FOUND');
      });

      it('list is newest first (createdAt desc, then id), filters by service, honours limit', async () => {
        await store.insertDeploy(deploy('d-a', 'web', { createdAt: T0 + 10 }));
        await store.insertDeploy(deploy('d-b', 'api', { createdAt: T0 + 30 }));
        await store.insertDeploy(deploy('d-c', 'web', { createdAt: T0 + 20 }));
        await store.insertDeploy(deploy('d-d', 'web', { createdAt: T0 + 20 }));
        const all = (await store.listDeploys()).map((d) => d.id);
        assert.deepEqual(all, ['d-b', 'd-d', 'd-c', 'd-a']);
        assert.deepEqual(
          (await store.listDeploys('web')).map((d) => d.id),
          ['d-d', 'd-c', 'd-a'],
        );
        assert.deepEqual(
          (await store.listDeploys('web', 2)).map((d) => d.id),
          ['d-d', 'd-c'],
        );
        assert.deepEqual(
          (await store.listDeploys(undefined, 1)).map((d) => d.id),
          ['d-b'],
        );
        assert.deepEqual(await store.listDeploys('nope'), []);
      });

      it('listActiveDeploys returns pending, running and paused ones only', async () => {
        await store.insertDeploy(deploy('p', 'web', { state: 'pending', createdAt: T0 + 1 }));
        await store.insertDeploy(deploy('r', 'api', { state: 'running', createdAt: T0 + 2 }));
        await store.insertDeploy(deploy('z', 'api', { state: 'paused', createdAt: T0 + 3 }));
        await store.insertDeploy(deploy('s', 'web', { state: 'succeeded' }));
        await store.insertDeploy(deploy('f', 'web', { state: 'failed' }));
        await store.insertDeploy(deploy('v', 'web', { state: 'reverted' }));
        assert.deepEqual((await store.listActiveDeploys()).map((d) => d.id).sort(), ['p', 'r', 'z']);
        await store.updateDeploy('r', { state: 'succeeded' });
        await store.updateDeploy('z', { state: 'failed' });
        assert.deepEqual(
          (await store.listActiveDeploys()).map((d) => d.id),
          ['p'],
        );
      });
    });

    describe('deploy events', () => {
      beforeEach(async () => {
        await store.upsertService('web', spec1);
        await store.insertDeploy(deploy('d1', 'web'));
        await store.insertDeploy(deploy('d2', 'web'));
      });

      it('append assigns 1, 2, 3 … per deploy and round-trips data', async () => {
        const e1 = await store.appendDeployEvent({
          deployId: 'd1',
          at: T0,
          type: 'start',
          message: 'go',
          data: null,
        });
        const e2 = await store.appendDeployEvent({
          deployId: 'd1',
          at: T0 + 1,
          type: 'instance',
          message: 'i-1 healthy',
          data: { instance: 'i-1', nested: { ok: true, n: [1, 2] }, s: 'ünïcødé' },
        });
        const f1 = await store.appendDeployEvent({
          deployId: 'd2',
          at: T0 + 2,
          type: 'start',
          message: '',
          data: {},
        });
        const e3 = await store.appendDeployEvent({
          deployId: 'd1',
          at: T0 + 3,
          type: 'done',
          message: 'ok',
          data: null,
        });
        assert.deepEqual([e1.seq, e2.seq, e3.seq, f1.seq], [1, 2, 3, 1]);
        assert.deepEqual(await store.listDeployEvents('d1'), [e1, e2, e3]);
        assert.deepEqual(await store.listDeployEvents('d2'), [f1]);
        assert.deepEqual(await store.listDeployEvents('d1', 1), [e2, e3]);
        assert.deepEqual(await store.listDeployEvents('d1', 3), []);
        assert.deepEqual(await store.listDeployEvents('d1', 0), [e1, e2, e3]);
        assert.deepEqual(await store.listDeployEvents('nope'), []);
      });

      it('concurrent appends get distinct consecutive seqs', async () => {
        const es = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            store.appendDeployEvent({ deployId: 'd1', at: T0 + i, type: 't', message: `m${i}`, data: { i } }),
          ),
        );
        assert.deepEqual(
          es.map((e) => e.seq).sort((a, b) => a - b),
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        assert.deepEqual(
          (await store.listDeployEvents('d1')).map((e) => e.seq),
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
      });

      it('for an unknown deploy is NINES_E_DEPLOY_NOT_FOUND', async () => {
        await rejectsWith(
          store.appendDeployEvent({ deployId: 'nope', at: T0, type: 't', message: 'm', data: null }),
          'NINES_E_DEPLOY_NOT_FOUND',
        );
      });
    });

    describe('instances', () => {
      beforeEach(async () => {
        await store.upsertService('web', spec1);
        await store.upsertService('api', spec1);
      });

      it('insert/get round-trips every field, observed null or full', async () => {
        const a = instance('i-1', 'web', 'h1');
        await store.insertInstance(a);
        assert.deepEqual(await store.getInstance('i-1'), a);
        const b = {
          ...instance('i-2', 'web', 'h2'),
          observed: observed('i-2'),
          deployId: 'd1',
          route: 'ready' as const,
        };
        await store.insertInstance(b);
        assert.deepEqual(await store.getInstance('i-2'), b);
        assert.equal(await store.getInstance('nope'), undefined);
      });

      it('of an unknown service is NINES_E_SERVICE_NOT_FOUND', async () => {
        await rejectsWith(store.insertInstance(instance('i-1', 'nope', 'h1')), 'NINES_E_SERVICE_NOT_FOUND');
        assert.deepEqual(await store.listInstances(), []);
      });

      it('update patches only the given fields and bumps updatedAt; a missing instance is ignored', async () => {
        await store.insertInstance(instance('i-1', 'web', 'h1'));
        const obs = observed('i-1');
        await store.updateInstance('i-1', { observed: obs, route: 'ready' });
        let got = await store.getInstance('i-1');
        assert.deepEqual(got?.observed, obs);
        assert.equal(got?.route, 'ready');
        assert.equal(got?.desired, 'running');
        assert.ok((got?.updatedAt ?? 0) > T0);
        assert.equal(got?.createdAt, T0);
        await store.updateInstance('i-1', { desired: 'stopped', route: 'draining', deployId: 'd9' });
        got = await store.getInstance('i-1');
        assert.deepEqual(
          { desired: got?.desired, route: got?.route, deployId: got?.deployId, observed: got?.observed },
          { desired: 'stopped', route: 'draining', deployId: 'd9', observed: obs },
        );
        await store.updateInstance('i-1', { observed: null, deployId: null });
        got = await store.getInstance('i-1');
        assert.equal(got?.observed, null);
        assert.equal(got?.deployId, null);
        await store.updateInstance('nope', { route: 'ready' });
        assert.equal(await store.getInstance('nope'), undefined);
      });

      it('list filters by service and host', async () => {
        await store.insertInstance({ ...instance('i-1', 'web', 'h1'), createdAt: T0 + 1 });
        await store.insertInstance({ ...instance('i-2', 'web', 'h2'), createdAt: T0 + 2 });
        await store.insertInstance({ ...instance('i-3', 'api', 'h1'), createdAt: T0 + 3 });
        const ids = async (f?: { service?: string; hostId?: string }) =>
          (await store.listInstances(f)).map((i) => i.id).sort();
        assert.deepEqual(await ids(), ['i-1', 'i-2', 'i-3']);
        assert.deepEqual(await ids({}), ['i-1', 'i-2', 'i-3']);
        assert.deepEqual(await ids({ service: 'web' }), ['i-1', 'i-2']);
        assert.deepEqual(await ids({ hostId: 'h1' }), ['i-1', 'i-3']);
        assert.deepEqual(await ids({ service: 'web', hostId: 'h1' }), ['i-1']);
        assert.deepEqual(await ids({ service: 'nope' }), []);
      });

      it('delete removes; deleting a missing instance is a no-op', async () => {
        await store.insertInstance(instance('i-1', 'web', 'h1'));
        await store.insertInstance(instance('i-2', 'web', 'h1'));
        await store.deleteInstance('i-1');
        await store.deleteInstance('i-1');
        assert.equal(await store.getInstance('i-1'), undefined);
        assert.deepEqual(
          (await store.listInstances()).map((i) => i.id),
          ['i-2'],
        );
      });
    });

    describe('hosts', () => {
      it('upsert/get/list round-trip labels; upsert replaces; touch updates lastSeenAt', async () => {
        const h1 = host('h1', 'node-b', {
          zone: 'eu-1a',
          labels: { disk: 'ssd', 'gpu.count': '2', empty: '' },
        });
        const h2 = host('h2', 'node-a', { labels: {} });
        await store.upsertHost(h1);
        await store.upsertHost(h2);
        assert.deepEqual(await store.getHost('h1'), h1);
        assert.deepEqual(await store.getHost('h2'), h2);
        assert.deepEqual(
          (await store.listHosts()).map((h) => h.id),
          ['h2', 'h1'],
        );
        const h1b = {
          ...h1,
          address: '10.0.0.9',
          labels: { disk: 'hdd' },
          zone: 'eu-1b',
          lastSeenAt: T0 + 50,
        };
        await store.upsertHost(h1b);
        assert.deepEqual(await store.getHost('h1'), h1b);
        await store.touchHost('h1', T0 + 99);
        assert.equal((await store.getHost('h1'))?.lastSeenAt, T0 + 99);
        assert.equal((await store.getHost('h1'))?.registeredAt, h1.registeredAt);
        assert.equal(await store.getHost('nope'), undefined);
        await rejectsWith(store.touchHost('nope', T0), 'NINES_E_HOST_NOT_FOUND');
      });

      it('a host key round-trips; revokeHost sets revokedAt once', async () => {
        const h = host('hk', 'keyed', { key: 'ab'.repeat(32) });
        await store.upsertHost(h);
        assert.deepEqual(await store.getHost('hk'), h);
        assert.equal(await store.revokeHost('hk', T0 + 5), true);
        assert.equal(await store.revokeHost('hk', T0 + 6), false);
        assert.equal(await store.revokeHost('nope', T0 + 6), false);
        assert.equal((await store.getHost('hk'))?.revokedAt, T0 + 5);
        assert.equal((await store.getHost('hk'))?.key, 'ab'.repeat(32));
      });
    });

    describe('events', () => {
      it('append assigns increasing ids; list is newest first with filters and limit', async () => {
        const a = await store.appendEvent({
          at: T0,
          kind: 'deploy',
          subject: 'web',
          message: 'a',
          data: null,
        });
        const b = await store.appendEvent({
          at: T0 + 1,
          kind: 'host',
          subject: 'h1',
          message: 'b',
          data: { zone: 'z1', list: [1, 'x', null], deep: { k: false } },
        });
        const c = await store.appendEvent({
          at: T0 + 2,
          kind: 'deploy',
          subject: 'api',
          message: 'c',
          data: {},
        });
        const d = await store.appendEvent({
          at: T0 + 3,
          kind: 'deploy',
          subject: 'web',
          message: 'd',
          data: null,
        });
        assert.ok(a.id < b.id && b.id < c.id && c.id < d.id);
        assert.deepEqual(await store.listEvents(), [d, c, b, a]);
        assert.deepEqual(await store.listEvents({}), [d, c, b, a]);
        assert.deepEqual(await store.listEvents({ limit: 2 }), [d, c]);
        assert.deepEqual(await store.listEvents({ kind: 'deploy' }), [d, c, a]);
        assert.deepEqual(await store.listEvents({ subject: 'web' }), [d, a]);
        assert.deepEqual(await store.listEvents({ kind: 'deploy', subject: 'web', limit: 1 }), [d]);
        assert.deepEqual(await store.listEvents({ kind: 'nope' }), []);
      });
    });

    describe('tokens', () => {
      it('insert, find by hash, list; revokedAt round-trips; a duplicate hash is refused', async () => {
        const t1 = token('t1', 'a'.repeat(64), 'admin', { createdAt: T0 + 1 });
        const t2 = token('t2', 'b'.repeat(64), 'node', { createdAt: T0 + 2, revokedAt: T0 + 3 });
        const t3 = token('t3', 'c'.repeat(64), 'read', { createdAt: T0 + 3 });
        await store.insertToken(t1);
        await store.insertToken(t2);
        await store.insertToken(t3);
        assert.deepEqual(await store.findTokenByHash('a'.repeat(64)), t1);
        assert.deepEqual(await store.findTokenByHash('b'.repeat(64)), t2);
        assert.equal(await store.findTokenByHash('d'.repeat(64)), undefined);
        assert.deepEqual(await store.listTokens(), [t1, t2, t3]);
        await assert.rejects(store.insertToken(token('t4', 'a'.repeat(64), 'read')));
        assert.equal((await store.listTokens()).length, 3);
      });

      it('join tokens expire and are revoked through the interface', async () => {
        const j = token('tj', 'e'.repeat(64), 'join', { expiresAt: T0 + 3_600_000 });
        await store.insertToken(j);
        assert.deepEqual(await store.findTokenByHash('e'.repeat(64)), j);
        assert.equal(await store.revokeToken('tj', T0 + 9), true);
        assert.equal(await store.revokeToken('tj', T0 + 10), false);
        assert.equal((await store.findTokenByHash('e'.repeat(64)))?.revokedAt, T0 + 9);
      });
    });

    describe('drills', () => {
      it('keeps drill results, newest first, filtered by service', async () => {
        const d = (id: string, service: string, at: number) => ({
          id,
          service,
          scenario: 'instance-kill',
          outcome: 'passed' as const,
          createdBy: 'admin',
          startedAt: T0 + at,
          finishedAt: T0 + at + 5000,
          result: { sent: 100, failed: 0, nested: { p99: 1.5 } },
        });
        await store.insertDrill(d('dr-1', 'web', 0));
        await store.insertDrill(d('dr-2', 'web', 10));
        await store.insertDrill(d('dr-3', 'api', 20));
        assert.deepEqual(await store.getDrill('dr-2'), d('dr-2', 'web', 10));
        assert.equal(await store.getDrill('nope'), undefined);
        assert.deepEqual(
          (await store.listDrills({ service: 'web' })).map((x) => x.id),
          ['dr-2', 'dr-1'],
        );
        assert.deepEqual(
          (await store.listDrills({ limit: 2 })).map((x) => x.id),
          ['dr-3', 'dr-2'],
        );
      });
    });

    describe('slo counts', () => {
      const M = 60_000;
      const H = 3_600_000;
      const D = 86_400_000;
      const day0 = Date.UTC(2026, 11, 1); // a UTC midnight

      it('add sums into minute buckets (in one batch and across batches); sum counts starts in [from, to)', async () => {
        const slo = store.sloCounts();
        await slo.add([
          { service: 'web', release: '', at: day0, total: 100, bad: 2 },
          { service: 'web', release: '', at: day0, total: 50, bad: 1 },
          { service: 'web', release: 'v1', at: day0, total: 60, bad: 0 },
          { service: 'web', release: '', at: day0 + M, total: 10, bad: 10 },
          { service: 'api', release: '', at: day0, total: 7, bad: 0 },
          { service: 'web', release: '', at: day0 + 2 * M, total: 0, bad: 0 },
        ]);
        await slo.add([{ service: 'web', release: '', at: day0 + M, total: 5_000_000_000, bad: 3 }]);
        assert.deepEqual(await slo.sum({ service: 'web', from: day0, to: day0 + M }), { total: 150, bad: 3 });
        assert.deepEqual(await slo.sum({ service: 'web', from: day0, to: day0 + 2 * M }), {
          total: 5_000_000_160,
          bad: 16,
        });
        assert.deepEqual(await slo.sum({ service: 'web', release: 'v1', from: 0, to: day0 + D }), {
          total: 60,
          bad: 0,
        });
        assert.deepEqual(await slo.sum({ service: 'nope', from: 0, to: day0 + D }), { total: 0, bad: 0 });
        assert.deepEqual(
          (await slo.list({ service: 'web' })).map((r) => [r.release, r.at - day0, r.total, r.bad]),
          [
            ['', 0, 150, 3],
            ['', M, 5_000_000_010, 13],
            ['v1', 0, 60, 0],
          ],
          'a zero row is not stored',
        );
        assert.deepEqual(await slo.keys(day0), [
          { service: 'api', release: '' },
          { service: 'web', release: '' },
          { service: 'web', release: 'v1' },
        ]);
        assert.deepEqual(await slo.keys(day0 + M), [{ service: 'web', release: '' }]);
      });

      it('add is one transaction: inside a rolled-back store transaction it leaves nothing', async () => {
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.sloCounts().add([{ service: 'web', release: '', at: day0, total: 1, bad: 0 }]);
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.deepEqual(await store.sloCounts().list({}), []);
      });

      it('compact rolls minutes into hours and hours into days, keeps the sums, deletes past retention', async () => {
        const slo = store.sloCounts();
        const rows = [];
        // Day 0 and day 1: 1 request per minute for the first two hours, every 10th minute a 5xx.
        for (const d of [0, 1])
          for (let m = 0; m < 120; m++)
            rows.push({
              service: 'web',
              release: '',
              at: day0 + d * D + m * M,
              total: 1,
              bad: m % 10 === 0 ? 1 : 0,
            });
        // Day 2: the last 30 minutes stay minutes.
        for (let m = 0; m < 30; m++)
          rows.push({ service: 'web', release: 'v2', at: day0 + 2 * D + m * M, total: 2, bad: 0 });
        await slo.add(rows);
        const before = await slo.sum({ service: 'web', from: day0, to: day0 + 3 * D });
        assert.deepEqual(before, { total: 240, bad: 24 });

        // Day 0 old enough for a day row, day 1 for hour rows, day 2 still minutes.
        const r = await slo.compact({ hoursBefore: day0 + 2 * D, daysBefore: day0 + D, deleteBefore: 0 });
        assert.equal(r.deleted, 0);
        assert.equal(r.merged, 119 + 118);
        const web = await slo.list({ service: 'web', release: '' });
        assert.deepEqual(
          web.map((x) => [x.at - day0, x.total, x.bad]),
          [
            [0, 120, 12],
            [D, 60, 6],
            [D + H, 60, 6],
          ],
        );
        assert.equal((await slo.list({ release: 'v2' })).length, 30, 'recent minutes stay minutes');
        assert.deepEqual(await slo.sum({ service: 'web', from: day0, to: day0 + 3 * D }), before);
        // Idempotent: nothing left to merge.
        assert.deepEqual(
          await slo.compact({ hoursBefore: day0 + 2 * D, daysBefore: day0 + D, deleteBefore: 0 }),
          {
            merged: 0,
            deleted: 0,
          },
        );
        // Later minutes of a compacted hour fold into its row.
        await slo.add([{ service: 'web', release: '', at: day0 + D + 5 * M, total: 4, bad: 4 }]);
        await slo.compact({ hoursBefore: day0 + 2 * D, daysBefore: day0 + D, deleteBefore: 0 });
        assert.deepEqual(
          (await slo.list({ service: 'web', release: '', from: day0 + D, to: day0 + D + 1 }))[0],
          {
            service: 'web',
            release: '',
            at: day0 + D,
            total: 64,
            bad: 10,
          },
        );
        // Retention: everything starting before day 1 goes.
        const del = await slo.compact({
          hoursBefore: day0 + 2 * D,
          daysBefore: day0 + D,
          deleteBefore: day0 + D,
        });
        assert.equal(del.deleted, 1);
        assert.deepEqual(await slo.sum({ service: 'web', from: 0, to: day0 + D }), { total: 0, bad: 0 });
      });
    });

    describe('counters', () => {
      it('start at 1, increment by 1, are independent, and getCounter is 0 for unknown', async () => {
        assert.equal(await store.getCounter('routing'), 0);
        assert.equal(await store.nextCounter('routing'), 1);
        assert.equal(await store.nextCounter('routing'), 2);
        assert.equal(await store.nextCounter('gen:h1'), 1);
        assert.equal(await store.nextCounter('routing'), 3);
        assert.equal(await store.getCounter('routing'), 3);
        assert.equal(await store.getCounter('gen:h1'), 1);
        assert.equal(await store.getCounter('gen:h2'), 0);
        const many = await store.getCounters(['routing', 'gen:h1', 'gen:h2']);
        assert.deepEqual(
          [...many],
          [
            ['routing', 3],
            ['gen:h1', 1],
            ['gen:h2', 0],
          ],
        );
        // More names than one statement takes.
        const names = Array.from({ length: 1200 }, (_, i) => `gen:x${i}`);
        await store.nextCounter('gen:x1199');
        const big = await store.getCounters(names);
        assert.equal(big.size, 1200);
        assert.equal(big.get('gen:x1199'), 1);
        assert.equal(big.get('gen:x0'), 0);
      });

      it('concurrent increments each get a distinct value', async () => {
        const vs = await Promise.all(Array.from({ length: 25 }, () => store.nextCounter('c')));
        assert.deepEqual(
          vs.sort((a, b) => a - b),
          Array.from({ length: 25 }, (_, i) => i + 1),
        );
        assert.equal(await store.getCounter('c'), 25);
      });
    });

    describe('transactions', () => {
      it('commit: everything done in fn is visible afterwards, and fn’s value is returned', async () => {
        const out = await store.transaction(async (tx) => {
          await tx.upsertService('web', spec1);
          const r = await tx.insertRelease(release('web', 'v1'));
          await tx.insertDeploy(deploy('d1', 'web'));
          await tx.appendDeployEvent({ deployId: 'd1', at: T0, type: 'start', message: 'm', data: null });
          // Reads inside see the transaction's own writes.
          assert.equal((await tx.getService('web'))?.name, 'web');
          assert.equal((await tx.listReleases('web')).length, 1);
          return r.seq;
        });
        assert.equal(typeof out, 'number');
        assert.equal((await store.getRelease('web', 'v1'))?.seq, out);
        assert.equal((await store.listDeployEvents('d1')).length, 1);
      });

      it('a throw inside rolls back everything done in it', async () => {
        await store.upsertService('web', spec1);
        await store.insertRelease(release('web', 'v0'));
        const counterBefore = await store.getCounter('routing');
        const boom = new Error('boom');
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.upsertService('web', spec2);
            await tx.upsertService('api', spec1);
            await tx.insertRelease(release('web', 'v1'));
            await tx.setCurrentRelease('web', 'v1');
            assert.deepEqual(await tx.acquireDeployLock('web', 'd1'), { ok: true });
            await tx.markReleaseStable('web', 'v0');
            await tx.insertDeploy(deploy('d1', 'web'));
            await tx.appendDeployEvent({ deployId: 'd1', at: T0, type: 'start', message: 'm', data: null });
            await tx.insertInstance(instance('i-1', 'web', 'h1'));
            await tx.upsertHost(host('h1', 'node-1'));
            await tx.appendEvent({ at: T0, kind: 'k', subject: 's', message: 'm', data: null });
            await tx.insertToken(token('t1', 'a'.repeat(64), 'admin'));
            await tx.nextCounter('routing');
            throw boom;
          }),
          (err) => err === boom,
        );
        const web = await store.getService('web');
        assert.deepEqual(web?.spec, spec1);
        assert.equal(web?.currentRelease, null);
        assert.equal(web?.lockedBy, null);
        assert.equal(await store.getService('api'), undefined);
        assert.deepEqual(
          (await store.listReleases('web')).map((r) => [r.version, r.stable]),
          [['v0', false]],
        );
        assert.deepEqual(await store.listDeploys(), []);
        assert.deepEqual(await store.listDeployEvents('d1'), []);
        assert.deepEqual(await store.listInstances(), []);
        assert.deepEqual(await store.listHosts(), []);
        assert.deepEqual(await store.listEvents(), []);
        assert.deepEqual(await store.listTokens(), []);
        assert.equal(await store.getCounter('routing'), counterBefore);
        // And the store still works normally afterwards.
        assert.equal((await store.insertRelease(release('web', 'v1'))).version, 'v1');
      });

      it('a store error inside fn aborts the transaction when fn lets it propagate', async () => {
        await store.upsertService('web', spec1);
        await store.insertRelease(release('web', 'v1'));
        await rejectsWith(
          store.transaction(async (tx) => {
            await tx.insertDeploy(deploy('d1', 'web'));
            await tx.insertRelease(release('web', 'v1'));
          }),
          'NINES_E_RELEASE_EXISTS',
        );
        assert.equal(await store.getDeploy('d1'), undefined);
      });

      it('a NinesError caught inside fn does not spoil the transaction', async () => {
        await store.upsertService('web', spec1);
        await store.insertRelease(release('web', 'v1'));
        await store.transaction(async (tx) => {
          await rejectsWith(tx.insertRelease(release('web', 'v1')), 'NINES_E_RELEASE_EXISTS');
          await rejectsWith(tx.updateDeploy('nope', { state: 'running' }), 'NINES_E_DEPLOY_NOT_FOUND');
          await tx.insertRelease(release('web', 'v2'));
        });
        assert.deepEqual(
          (await store.listReleases('web')).map((r) => r.version),
          ['v2', 'v1'],
        );
      });

      it('nested transaction() on the tx store runs in the same transaction', async () => {
        await store.upsertService('web', spec1);
        const v = await store.transaction(async (tx) => {
          const inner = await tx.transaction(async (tx2) => {
            await tx2.insertRelease(release('web', 'v1'));
            return 7;
          });
          assert.equal((await tx.getRelease('web', 'v1'))?.version, 'v1', 'outer sees inner writes');
          return inner;
        });
        assert.equal(v, 7);
        assert.equal((await store.getRelease('web', 'v1'))?.version, 'v1');

        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.insertRelease(release('web', 'v2'));
            await tx.transaction(async (tx2) => {
              await tx2.insertRelease(release('web', 'v3'));
              throw new Error('inner');
            });
          }),
          /inner/,
        );
        assert.deepEqual(
          (await store.listReleases('web')).map((r) => r.version),
          ['v1'],
          'a throw in the nested call rolls back the whole transaction',
        );
      });

      it('the lock taken in a committed transaction is held afterwards', async () => {
        await store.upsertService('web', spec1);
        await store.transaction(async (tx) => {
          assert.deepEqual(await tx.acquireDeployLock('web', 'd1'), { ok: true });
          await tx.insertDeploy(deploy('d1', 'web'));
        });
        assert.deepEqual(await store.acquireDeployLock('web', 'd2'), { ok: false, heldBy: 'd1' });
      });

      it('sequential transactions each commit independently', async () => {
        await store.upsertService('web', spec1);
        for (let i = 0; i < 5; i++) {
          await store.transaction(async (tx) => {
            await tx.insertRelease(release('web', `v${i}`));
            await tx.nextCounter('n');
          });
        }
        assert.equal((await store.listReleases('web')).length, 5);
        assert.equal(await store.getCounter('n'), 5);
      });
    });
  });
}

// ---- fixtures ---------------------------------------------------------------------------------------

/** Above 2^32 so that int truncation would show. */
export const T0 = 1_700_000_000_000;

export const spec1: ServiceSpec = serviceSchema.parse({ command: 'node server.js' });
export const spec2: ServiceSpec = serviceSchema.parse({
  source: './apps/web',
  command: 'exec ./bin/web --port "$PORT"',
  instances: 4,
  env: { NODE_ENV: 'production', QUOTE: 'a "b" \'c\' \\ ü' },
  health: { path: '/ready', interval: '500ms', rise: 3 },
  route: { hosts: ['example.com', 'www.example.com'], pathPrefix: '/app' },
  drainTimeout: '30s',
  rolling: { maxSurge: '25%', maxUnavailable: 1 },
});

export function release(service: string, version: string) {
  return {
    service,
    version,
    sha256: 'e'.repeat(64),
    size: 1234,
    spec: spec1,
    createdBy: 'alice',
    createdAt: T0,
  };
}

export function deploy(id: string, service: string, over: Partial<DeployRecord> = {}): DeployRecord {
  return {
    id,
    service,
    fromVersion: 'v1',
    toVersion: 'v2',
    strategy: 'rolling',
    kind: 'deploy',
    state: 'pending',
    reason: null,
    createdBy: 'alice',
    createdAt: T0,
    startedAt: null,
    finishedAt: null,
    requests: null,
    failedRequests: null,
    ...over,
  };
}

export function instance(id: string, service: string, hostId: string): InstanceRecord {
  return {
    id,
    service,
    releaseVersion: 'v1',
    hostId,
    desired: 'running',
    route: 'none',
    deployId: null,
    observed: null,
    createdAt: T0,
    updatedAt: T0,
  };
}

export function observed(id: string): ObservedInstance {
  return {
    id,
    state: 'running',
    healthy: true,
    pid: 4242,
    port: 31001,
    restarts: 2,
    exitCode: null,
    signal: 'SIGKILL',
    message: 'restarted after crash',
    startedAt: T0 + 7,
  };
}

export function host(id: string, name: string, over: Partial<HostRecord> = {}): HostRecord {
  return {
    id,
    name,
    zone: 'z1',
    labels: { role: 'app' },
    address: '10.0.0.1',
    registeredAt: T0,
    lastSeenAt: T0,
    key: null,
    revokedAt: null,
    ...over,
  };
}

export function token(
  id: string,
  hash: string,
  role: TokenRecord['role'],
  over: Partial<TokenRecord> = {},
): TokenRecord {
  return { id, hash, role, name: `${id}-name`, createdAt: T0, revokedAt: null, expiresAt: null, ...over };
}

/** Asserts that `p` rejects with a NinesError of `code` and returns it. */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<NinesError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof NinesError, `expected NinesError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
