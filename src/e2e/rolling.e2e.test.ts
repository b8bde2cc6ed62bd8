import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { StatusView } from '../controller/status.js';
import type { DeployRecord } from '../controller/store/types.js';
import {
  cleanup,
  cli,
  describeLoad,
  fixture,
  serviceYaml,
  startUp,
  tempDir,
  type Up,
  underLoad,
} from './harness.js';

/**
 * Issue 2, tests 1 and 2: a rolling deploy under real HTTP load through the real proxy at real app
 * processes drops exactly zero requests — also for an app that exits at once on SIGTERM, which PM2's
 * reload cannot make safe (MEASUREMENTS: 33–40 failed per reload) — and a release whose health check
 * never passes fails the deploy without a single failed request.
 */

for (const app of ['graceful', 'abrupt'] as const) {
  describe(`rolling deploy v1 → v2 of 3 instances, ${app} app`, () => {
    const root = tempDir();
    const dataDir = join(root, 'data');
    let up: Up | undefined;
    after(() => cleanup(root, up));

    test('zero failed requests out of at least 5,000, and the answers switch from v1 to v2', async () => {
      up = await startUp({ dataDir, config: serviceYaml({ source: fixture(app) }) });
      const rel = await cli(dataDir, 'release', 'web', fixture(app), '--version', 'v2');
      assert.equal(rel.code, 0, rel.stderr);

      const { value: dep, load } = await underLoad(
        `${up.info.proxyUrl}/`,
        () => cli(dataDir, 'deploy', 'web', 'v2'),
        {
          minRequests: 5000,
        },
      );
      assert.equal(dep.code, 0, `deploy failed:\n${dep.stdout}\n${dep.stderr}`);
      assert.match(
        dep.stdout,
        /^done: web v1 → v2 in [\d.]+ s · 0 of [\d,]+ requests failed \(seen by the proxies\)/m,
      );
      assert.ok(load.sent >= 5000, `only ${load.sent} requests sent`);
      assert.equal(load.failed, 0, `failed requests: ${describeLoad(load)}`);
      assert.equal(load.ok, load.sent);
      assert.ok((load.classes.v1 ?? 0) > 0 && (load.classes.v2 ?? 0) > 0, describeLoad(load));
      const v1 = load.timeline.find((t) => t.cls === 'v1');
      const v2 = load.timeline.find((t) => t.cls === 'v2');
      assert.ok(v1 && v2 && v2.last > v1.last, 'v2 answers after the last v1 answer');

      const status = await up.client.get<StatusView>('/v1/status');
      const web = status.instances.filter((i) => i.service === 'web');
      assert.equal(web.length, 3);
      assert.ok(web.every((i) => i.version === 'v2' && i.healthy && i.route === 'ready'));
      assert.equal(status.services[0]?.currentRelease, 'v2');
      // The deploy's own record: what the proxy saw while it ran (a subset of the load's requests).
      const { deploys } = await up.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
      assert.equal(deploys[0]?.failedRequests, 0);
      assert.ok(
        (deploys[0]?.requests ?? 0) > 100 && (deploys[0]?.requests ?? 0) <= load.sent,
        JSON.stringify(deploys[0]),
      );
      const inst = await cli(dataDir, 'instances');
      assert.match(inst.stdout, /^3 instance\(s\), 1 service version\(s\): web v2$/m, inst.stdout);
      // The deploy shows each step, instance by instance.
      for (const step of [
        'instance.starting',
        'instance.healthy',
        'instance.routed',
        'instance.draining',
        'instance.drained',
        'instance.stopping',
        'instance.stopped',
      ]) {
        assert.equal(dep.stdout.split(step).length - 1, 3, `three ${step} lines in:\n${dep.stdout}`);
      }
    });
  });
}

describe('a release whose health check never passes', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('fails the deploy naming the health check, v1 keeps serving, zero failed requests', async () => {
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('graceful'), healthyDeadline: '3s' }),
    });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('unhealthy'), '--version', 'v2')).code, 0);
    const { value: dep, load } = await underLoad(`${up.info.proxyUrl}/`, () =>
      cli(dataDir, 'deploy', 'web', 'v2'),
    );
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /^failed: .*did not pass its health check \(GET \/healthz/m);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.deepEqual(Object.keys(load.classes), ['v1']);

    const { deploys } = await up.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
    assert.equal(deploys[0]?.state, 'failed');
    assert.equal(deploys[0]?.failedRequests, 0, 'the proxy saw no failure while the bad release was tried');
    assert.match(deploys[0]?.reason ?? '', /health check/);
    const status = await up.client.get<StatusView>('/v1/status');
    assert.equal(status.services[0]?.currentRelease, 'v1');
    assert.equal(status.services[0]?.lockedBy, null, 'the lock is released');
    const web = status.instances.filter((i) => i.service === 'web');
    assert.equal(web.length, 3);
    assert.ok(web.every((i) => i.version === 'v1' && i.route === 'ready'));

    // The same service deploys again once the lock is free: a rollback has nothing to go back to.
    const rb = await cli(dataDir, 'rollback', 'web');
    assert.equal(rb.code, 2, rb.stderr);
    assert.match(rb.stderr, /NINES_E_NO_ROLLBACK_TARGET/);
  });
});
