import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '../cli/client.js';
import type { StatusView } from '../controller/status.js';
import type { DeployEventRecord, DeployRecord } from '../controller/store/types.js';
import {
  cleanup,
  cli,
  describeLoad,
  fixture,
  freePort,
  type Proc,
  sleep,
  spawnCli,
  tempDir,
  underLoad,
} from './harness.js';

/**
 * Static stability: the data plane never depends on the control plane being up. Controller, agent and
 * proxy run as three processes; the controller is killed with SIGKILL under load — traffic goes on with
 * zero failed requests and nothing is restarted — and killed again in the middle of a rolling deploy,
 * which resumes when it comes back and completes, still with zero failed requests.
 */

describe('the controller dies; the fleet does not notice', () => {
  const root = tempDir();
  const ctlDir = join(root, 'controller');
  let port = 0;
  let controller: Proc | undefined;
  let agent: Proc | undefined;
  let proxy: Proc | undefined;
  let proxyUrl = '';
  let client: Client;

  const startController = async () => {
    controller = await spawnCli([
      '--data-dir',
      ctlDir,
      'controller',
      '--port',
      String(port),
      '--log-level',
      'debug',
    ]);
  };

  before(async () => {
    port = await freePort();
    await startController();
    const url = `http://127.0.0.1:${port}`;
    const tokenFile = join(ctlDir, 'node-token');
    // The agent joins with a one-time join token and signs everything after that with its own key.
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    assert.equal(jt.code, 0, jt.stderr);
    const joinToken = (JSON.parse(jt.stdout) as { token: string }).token;
    agent = await spawnCli([
      '--data-dir',
      join(root, 'agent'),
      'agent',
      '--controller',
      url,
      '--join-token',
      joinToken,
      '--zone',
      'a',
    ]);
    proxy = await spawnCli([
      '--data-dir',
      join(root, 'proxy'),
      'proxy',
      '--controller',
      url,
      '--token-file',
      tokenFile,
      '--port',
      '0',
    ]);
    proxyUrl = proxy.ready;
    client = new Client({ url, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
    await client.put('/v1/services/web', {
      command: 'node server.js',
      instances: 3,
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
      drainTimeout: 5000,
      healthyDeadline: 15_000,
    });
    for (const v of ['v1', 'v2']) {
      const r = await cli(ctlDir, 'release', 'web', fixture('abrupt'), '--version', v);
      assert.equal(r.code, 0, r.stderr);
    }
    const d = await cli(ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    const hosts = await cli(ctlDir, '--json', 'hosts');
    const list = (JSON.parse(hosts.stdout) as { hosts: Array<{ signed: boolean; up: boolean }> }).hosts;
    assert.ok(list.length === 1 && list[0]?.signed && list[0]?.up, hosts.stdout);
  });
  after(async () => {
    await agent?.stop();
    await proxy?.stop();
    await controller?.stop();
    cleanup(root);
  });

  test('SIGKILL of the controller for 10 s under load: zero failed requests, nothing restarted', async () => {
    const before = await client.get<StatusView>('/v1/status');
    const { load } = await underLoad(
      `${proxyUrl}/`,
      async () => {
        await controller?.kill9();
        await sleep(10_000);
        await startController();
      },
      { tailMs: 3000 },
    );
    assert.equal(load.failed, 0, describeLoad(load));
    const afterStatus = await client.get<StatusView>('/v1/status');
    const pids = (s: StatusView) => s.instances.map((i) => `${i.id}:${i.pid}`).sort();
    assert.deepEqual(pids(afterStatus), pids(before), 'the same instances with the same pids');
    assert.ok(afterStatus.instances.every((i) => i.restarts === 0 && i.healthy && i.route === 'ready'));
  });

  test('a proxy restarted while the controller is down serves from its cached snapshot, 0 failed', async () => {
    const startProxy = () =>
      spawnCli([
        '--data-dir',
        join(root, 'proxy'),
        'proxy',
        '--controller',
        `http://127.0.0.1:${port}`,
        '--token-file',
        join(ctlDir, 'node-token'),
        '--port',
        '0',
      ]);
    await controller?.kill9();
    try {
      await proxy?.stop();
      // A fresh process, with the controller unreachable: all it has is the snapshot it cached on disk.
      proxy = await startProxy();
      proxyUrl = proxy.ready;
      const { load } = await underLoad(`${proxyUrl}/`, () => sleep(3000), { tailMs: 500 });
      assert.ok(load.sent >= 500, describeLoad(load));
      assert.equal(load.failed, 0, describeLoad(load));
      assert.ok(
        readFileSync(join(root, 'proxy', 'logs', 'nines.log'), 'utf8').includes(
          'serving the cached routing snapshot',
        ),
        'the proxy said it serves the cached snapshot',
      );
    } finally {
      await startController();
    }
    // Back in touch: the controller sees the proxy again and the fleet is unchanged.
    const s = await client.get<StatusView>('/v1/status');
    assert.ok(
      s.instances.every((i) => i.healthy && i.route === 'ready'),
      JSON.stringify(s.instances),
    );
  });

  test('SIGKILL of the controller in the middle of a rolling deploy: it resumes and completes', async () => {
    const { deploy } = await client.post<{ deploy: DeployRecord }>('/v1/services/web/deploys', {
      version: 'v2',
    });
    const { value: final, load } = await underLoad(`${proxyUrl}/`, async () => {
      // Kill it once the first new instance takes traffic and an old one is on its way out.
      for (let i = 0; i < 200; i++) {
        const { events } = await client.get<{ events: DeployEventRecord[] }>(
          `/v1/deploys/${deploy.id}/events`,
        );
        if (events.some((e) => e.type === 'instance.draining')) break;
        await sleep(25);
      }
      await controller?.kill9();
      await sleep(2000);
      await startController();
      for (let i = 0; i < 600; i++) {
        const r = await client.get<{ deploy: DeployRecord; events: DeployEventRecord[] }>(
          `/v1/deploys/${deploy.id}`,
        );
        if (r.deploy.state !== 'running' && r.deploy.state !== 'pending') return r;
        await sleep(100);
      }
      throw new Error('the resumed deploy did not finish within 60 s');
    });
    assert.equal(
      final.deploy.state,
      'succeeded',
      JSON.stringify(final.events.map((e) => `${e.type} ${e.message}`)),
    );
    assert.ok(final.events.some((e) => e.type === 'deploy.resumed'));
    assert.equal(load.failed, 0, describeLoad(load));
    const s = await client.get<StatusView>('/v1/status');
    const web = s.instances.filter((i) => i.service === 'web');
    assert.equal(web.length, 3);
    assert.ok(
      web.every((i) => i.version === 'v2' && i.healthy && i.route === 'ready'),
      JSON.stringify(web),
    );
    assert.equal(s.services[0]?.lockedBy, null);
  });
});
