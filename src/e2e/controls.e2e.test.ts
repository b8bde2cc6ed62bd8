import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { StatusView } from '../controller/status.js';
import type { DeployEventRecord, DeployRecord } from '../controller/store/types.js';
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

/**
 * Deploy controls under load: `nines deploy pause` holds a rolling deploy at its next step boundary
 * with both releases serving, `resume` finishes it, and `abort` reverts a deploy mid-way — all with
 * exactly zero failed requests, with an app that exits at once on SIGTERM.
 */
describe('pause, resume and abort a rolling deploy', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  async function events(id: string): Promise<{ deploy: DeployRecord; events: DeployEventRecord[] }> {
    return up!.client.get(`/v1/deploys/${id}`);
  }
  async function waitFor(
    id: string,
    pred: (r: { deploy: DeployRecord; events: DeployEventRecord[] }) => boolean,
  ) {
    for (let i = 0; i < 300; i++) {
      const r = await events(id);
      if (pred(r)) return r;
      await sleep(50);
    }
    throw new Error(
      `deploy ${id} never reached the expected point: ${JSON.stringify((await events(id)).events.map((e) => e.type))}`,
    );
  }

  test('pause holds between steps, resume completes; abort reverts to the old release', async () => {
    // A 600 ms boot makes each step slow enough to act in the middle of a deploy.
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('abrupt'), env: { BOOT_DELAY_MS: '600' } }),
    });
    for (const v of ['v2', 'v3'])
      assert.equal((await cli(dataDir, 'release', 'web', fixture('abrupt'), '--version', v)).code, 0);

    const { load } = await underLoad(`${up.info.proxyUrl}/`, async () => {
      const { deploy } = await up!.client.post<{ deploy: DeployRecord }>('/v1/services/web/deploys', {
        version: 'v2',
      });
      await waitFor(deploy.id, (r) => r.events.some((e) => e.type === 'instance.routed'));
      const p = await cli(dataDir, 'deploy', 'pause', 'web');
      assert.equal(p.code, 0, p.stderr);
      // The step in flight ends; then nothing new starts while paused.
      await sleep(2500);
      const held = await events(deploy.id);
      assert.equal(held.deploy.state, 'paused');
      const pausedAt = held.events.find((e) => e.type === 'deploy.paused')?.seq ?? 0;
      const later = held.events.filter((e) => e.seq > pausedAt);
      assert.ok(!later.some((e) => e.type === 'instance.starting'), JSON.stringify(later.map((e) => e.type)));
      const mid = await up!.client.get<StatusView>('/v1/status');
      assert.ok(new Set(mid.instances.map((i) => i.version)).size === 2, 'both releases serve while paused');
      const again = await cli(dataDir, 'deploy', 'pause', 'web');
      assert.equal(again.code, 2, 'pausing a paused deploy is refused');
      assert.match(again.stderr, /NINES_E_INVALID_TRANSITION/);

      assert.equal((await cli(dataDir, 'deploy', 'resume', 'web')).code, 0);
      const done = await waitFor(
        deploy.id,
        (r) => r.deploy.state === 'succeeded' || r.deploy.state === 'failed',
      );
      assert.equal(done.deploy.state, 'succeeded');

      const { deploy: d3 } = await up!.client.post<{ deploy: DeployRecord }>('/v1/services/web/deploys', {
        version: 'v3',
      });
      await waitFor(d3.id, (r) => r.events.some((e) => e.type === 'instance.routed'));
      assert.equal((await cli(dataDir, 'deploy', 'abort', 'web')).code, 0);
      const aborted = await waitFor(
        d3.id,
        (r) => r.deploy.state === 'failed' || r.deploy.state === 'succeeded',
      );
      assert.equal(aborted.deploy.state, 'failed');
      assert.match(aborted.deploy.reason ?? '', /^aborted by admin/);
      return aborted;
    });
    assert.equal(load.failed, 0, describeLoad(load));
    const s = await up.client.get<StatusView>('/v1/status');
    assert.equal(s.services[0]?.currentRelease, 'v2');
    assert.equal(s.services[0]?.lockedBy, null);
    const web = s.instances.filter((i) => i.service === 'web');
    assert.equal(web.length, 3);
    assert.ok(
      web.every((i) => i.version === 'v2' && i.route === 'ready'),
      JSON.stringify(web),
    );
    const none = await cli(dataDir, 'deploy', 'abort', 'web');
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no deploy of web is in flight/);
  });
});
