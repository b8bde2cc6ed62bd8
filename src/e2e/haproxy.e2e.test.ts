import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { StatusView } from '../controller/status.js';
import { parseShowStat } from '../haproxy/plan.js';
import { haproxySkipReason, type RunningHaproxy, startHaproxy } from '../haproxy/testkit.js';
import {
  cleanup,
  cli,
  describeLoad,
  fixture,
  type Proc,
  serviceYaml,
  sleep,
  spawnCli,
  startUp,
  tempDir,
  type Up,
  underLoad,
} from './harness.js';

/**
 * Issue 8, HAProxy adapter: a team keeps its HAProxy in front; `nines haproxy-adapter` drives it
 * through the Runtime API from the controller's snapshots, and a rolling deploy of an app that exits
 * the instant it gets SIGTERM drops exactly zero of the requests that go through HAProxy.
 */
describe('rolling deploy through a real HAProxy driven by the adapter', { skip: haproxySkipReason() }, () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  let ha: RunningHaproxy | undefined;
  let adapter: Proc | undefined;
  after(async () => {
    await adapter?.stop(5000);
    await ha?.stop();
    cleanup(root, up);
  });

  test('v1 → v2 of 3 abrupt instances under load: 0 failed, HAProxy ends with exactly the v2 servers', async () => {
    // Answers take 200 ms, so requests are in flight at every moment: a drain that is not real shows up.
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('abrupt'), env: { RESPONSE_DELAY_MS: '200' } }),
    });
    ha = await startHaproxy(root);
    adapter = await spawnCli([
      '--data-dir',
      join(root, 'adapter'),
      'haproxy-adapter',
      '--controller',
      up.info.apiUrl,
      '--token-file',
      join(dataDir, 'node-token'),
      '--socket',
      ha.socket,
      '--backend',
      'web=be_web',
      '--id',
      'e2e-haproxy',
      '--log-level',
      'debug',
    ]);
    const haUrl = `http://127.0.0.1:${ha.port}/`;
    // The adapter adds the three v1 instances.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await fetch(haUrl).catch(() => undefined);
      if (res?.status === 200 && (await res.text()).startsWith('v1')) break;
      if (Date.now() > deadline) throw new Error(`HAProxy never served v1:\n${adapter.output()}`);
      await sleep(100);
    }
    const rel = await cli(dataDir, 'release', 'web', fixture('abrupt'), '--version', 'v2');
    assert.equal(rel.code, 0, rel.stderr);

    const { value: dep, load } = await underLoad(haUrl, () => cli(dataDir, 'deploy', 'web', 'v2'), {
      minRequests: 2500,
      rate: 250,
      connections: 96,
    });
    assert.equal(dep.code, 0, `deploy failed:\n${dep.stdout}\n${dep.stderr}\n${adapter.output()}`);
    assert.ok(load.sent >= 2500, `only ${load.sent} requests sent`);
    assert.equal(load.failed, 0, `failed requests through HAProxy: ${describeLoad(load)}`);
    assert.ok((load.classes.v1 ?? 0) > 0 && (load.classes.v2 ?? 0) > 0, describeLoad(load));
    // The drain went through HAProxy: every old instance drained (not timed out).
    assert.equal(dep.stdout.split('instance.drained').length - 1, 3, dep.stdout);
    assert.doesNotMatch(dep.stdout, /drain-timeout/);

    const status = await up.client.get<StatusView>('/v1/status');
    const ids = status.instances
      .filter((i) => i.service === 'web')
      .map((i) => `nines-${i.id}`)
      .sort();
    await sleep(500);
    const servers = parseShowStat(await ha.runtime.command('show stat')).servers.filter(
      (s) => s.backend === 'be_web',
    );
    assert.deepEqual(servers.map((s) => s.name).sort(), ids, 'old servers deleted, new ones added');
    assert.ok(
      servers.every((s) => /^no check|^UP/.test(s.status)),
      JSON.stringify(servers),
    );
  });
});
