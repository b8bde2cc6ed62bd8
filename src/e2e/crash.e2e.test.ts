import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import type { StatusView } from '../controller/status.js';
import type { DeployRecord, ReleaseRecord } from '../controller/store/types.js';
import {
  cleanup,
  cli,
  describeLoad,
  fixture,
  serviceYaml,
  sleep,
  startUp,
  tempDir,
  type Up,
  underLoad,
} from './harness.js';

/** Issue 2, tests 3 and 4 (plus rollback): crashes of an instance and of the whole platform. */

describe('kill -9 of one instance under load', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('zero failed GETs, and the instance is replaced', async () => {
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful') }) });
    const before = await up.client.get<StatusView>('/v1/status');
    const victim = before.instances[0];
    assert.ok(victim?.pid, 'instance has a pid');
    const { load } = await underLoad(
      `${up.info.proxyUrl}/`,
      async () => {
        process.kill(victim.pid!, 'SIGKILL');
        // Replaced: the agent restarts it and its health check passes again.
        for (let i = 0; i < 100; i++) {
          await sleep(100);
          const s = await up!.client.get<StatusView>('/v1/status');
          const v = s.instances.find((x) => x.id === victim.id);
          if (v && v.pid !== victim.pid && v.healthy && v.proxyUp) return v;
        }
        throw new Error('instance was not replaced within 10 s');
      },
      { tailMs: 1500, minRequests: 3000 },
    );
    assert.equal(load.failed, 0, describeLoad(load));
    const after = await up.client.get<StatusView>('/v1/status');
    const v = after.instances.find((x) => x.id === victim.id);
    assert.ok(v && v.restarts >= 1 && v.pid !== victim.pid, JSON.stringify(v));
  });
});

describe('kill -9 of the whole nines up process, then a restart', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let first: Up | undefined;
  let second: Up | undefined;
  after(() => cleanup(root, first, second));

  test('services, releases and deploy history are intact and the app answers again', async () => {
    const config = serviceYaml({ source: fixture('graceful') });
    first = await startUp({ dataDir, config });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v2')).code, 0);
    assert.equal((await cli(dataDir, 'deploy', 'web', 'v2')).code, 0);
    const deploysBefore = await first.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
    const pidsBefore = (await first.client.get<StatusView>('/v1/status')).instances.map((i) => i.pid).sort();

    await first.kill9();
    second = await startUp({ dataDir, config });
    const { releases } = await second.client.get<{ releases: ReleaseRecord[] }>('/v1/services/web/releases');
    assert.deepEqual(
      releases.map((r) => r.version),
      ['v2', 'v1'],
    );
    const deploysAfter = await second.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
    assert.deepEqual(deploysAfter.deploys, deploysBefore.deploys);
    assert.equal(deploysAfter.deploys[0]?.state, 'succeeded');

    let body = '';
    for (let i = 0; i < 50 && body !== 'v2'; i++) {
      const res = await request(`${second.info.proxyUrl}/`).catch(() => undefined);
      body = res ? (await res.body.text()).trim() : '';
      if (body !== 'v2') await sleep(200);
    }
    assert.equal(body, 'v2');
    // The agent adopted the instances that outlived it instead of starting new ones.
    const s = await second.client.get<StatusView>('/v1/status');
    assert.equal(s.instances.length, 3);
    assert.deepEqual(s.instances.map((i) => i.pid).sort(), pidsBefore);

    // Rollback goes to the last fully healthy release before the current one.
    const rb = await cli(dataDir, 'rollback', 'web');
    assert.equal(rb.code, 0, rb.stdout + rb.stderr);
    assert.match(rb.stdout, /^done: web v2 → v1/m);
  });
});

describe('slow requests in flight during a rolling deploy of an app that exits at once on SIGTERM', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  // Every answer takes 2 s and the app dies the instant it gets SIGTERM, so only nines' drain (stop
  // routing, wait for in-flight requests, then signal) can let the old instance's requests finish. A
  // retry would not hide a cut: it would be answered by the new release, and the body says which.
  test('complete on their old instance before it is signalled', async () => {
    const config = serviceYaml({
      source: fixture('abrupt'),
      instances: 1,
      drainTimeout: '10s',
      env: { RESPONSE_DELAY_MS: '2000' },
    });
    up = await startUp({ dataDir, config });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('abrupt'), '--version', 'v2')).code, 0);
    const inflight = Array.from({ length: 5 }, () =>
      request(`${up!.info.proxyUrl}/`).then(async (r) => ({
        status: r.statusCode,
        body: (await r.body.text()).trim(),
      })),
    );
    await sleep(300);
    const { value: dep, load } = await underLoad(
      `${up.info.proxyUrl}/`,
      () => cli(dataDir, 'deploy', 'web', 'v2'),
      {
        leadMs: 0,
        rate: 10,
      },
    );
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    for (const r of await Promise.all(inflight)) assert.deepEqual(r, { status: 200, body: 'v1' });
    assert.equal(load.failed, 0, describeLoad(load));
  });
});
