import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Client } from '../cli/client.js';
import type { StatusView } from '../controller/status.js';
import type { DeployRecord } from '../controller/store/types.js';
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
 * Issue 8, the rebuild drill: the controller's machine is lost (process killed, data directory wiped).
 * A new controller at the same address is restored from the last encrypted backup; the agent and the
 * proxy re-join by themselves, nothing healthy restarts, a deploy works again (from the restored
 * artifacts) — and the proxy, serving from its snapshot all along, fails no request.
 */
describe('rebuild the controller from a backup', () => {
  const root = tempDir('nines-rebuild-');
  const oldDir = join(root, 'controller-old');
  const newDir = join(root, 'controller-new');
  const backups = join(root, 'backups');
  const keyFile = join(root, 'backup.key');
  let port = 0;
  let controller: Proc | undefined;
  let agent: Proc | undefined;
  let proxy: Proc | undefined;
  after(async () => {
    await agent?.stop();
    await proxy?.stop();
    await controller?.stop();
    cleanup(root);
  });

  const startController = async (dir: string) => {
    controller = await spawnCli([
      '--data-dir',
      dir,
      'controller',
      '--port',
      String(port),
      '--log-level',
      'debug',
    ]);
  };
  const adminClient = (dir: string) =>
    new Client({
      url: `http://127.0.0.1:${port}`,
      token: readFileSync(join(dir, 'admin-token'), 'utf8').trim(),
    });

  test('wipe, restore on a new controller, the fleet converges with 0 failed requests', async () => {
    port = await freePort();
    writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    await startController(oldDir);
    const url = `http://127.0.0.1:${port}`;
    const jt = await cli(oldDir, '--json', 'join-token', 'create', '--ttl', '10m');
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
    ]);
    const nodeToken = join(root, 'node-token');
    writeFileSync(nodeToken, readFileSync(join(oldDir, 'node-token')));
    proxy = await spawnCli([
      '--data-dir',
      join(root, 'proxy'),
      'proxy',
      '--controller',
      url,
      '--token-file',
      nodeToken,
      '--port',
      '0',
    ]);
    const old = adminClient(oldDir);
    await old.put('/v1/services/web', {
      command: 'node server.js',
      instances: 3,
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
      drainTimeout: 5000,
      healthyDeadline: 20_000,
    });
    for (const v of ['v1', 'v2']) {
      const r = await cli(oldDir, 'release', 'web', fixture('abrupt'), '--version', v);
      assert.equal(r.code, 0, r.stderr);
    }
    const d = await cli(oldDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    const before = await old.get<StatusView>('/v1/status');
    const pids = (s: StatusView) =>
      s.instances
        .filter((i) => i.service === 'web')
        .map((i) => `${i.id}:${i.pid}`)
        .sort();

    let restoreOut = '';
    let converged = 0;
    let deploy: DeployRecord | undefined;
    const { load } = await underLoad(
      `${proxy.ready}/`,
      async () => {
        const b = await cli(
          oldDir,
          'backup',
          '--out',
          backups,
          '--key-file',
          keyFile,
          '--artifacts',
          '--keep',
          '3',
        );
        assert.equal(b.code, 0, b.stdout + b.stderr);
        // The machine is lost: the controller dies and its data with it.
        await controller!.kill9();
        rmSync(oldDir, { recursive: true, force: true });
        const t0 = Date.now();
        const r = await cli(newDir, 'restore', '--from', backups, '--key-file', keyFile);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        restoreOut = r.stdout;
        await startController(newDir);
        const fresh = adminClient(newDir);
        for (;;) {
          const s = await fresh.get<StatusView>('/v1/status').catch(() => undefined);
          const web = s?.instances.filter((i) => i.service === 'web') ?? [];
          if (web.length === 3 && web.every((i) => i.healthy && i.proxyUp)) break;
          if (Date.now() - t0 > 60_000) throw new Error(`not converged: ${JSON.stringify(s)}`);
          await sleep(200);
        }
        converged = Date.now() - t0;
        assert.deepEqual(pids(await fresh.get<StatusView>('/v1/status')), pids(before), 'nothing restarted');
        // The restored controller deploys again, from the restored artifacts.
        const dep = await cli(newDir, '--json', 'deploy', 'web', 'v2');
        assert.equal(dep.code, 0, dep.stdout + dep.stderr);
        deploy = (await fresh.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys')).deploys[0];
      },
      { rate: 300, tailMs: 1500 },
    );
    console.log(`# rebuild: restored and converged in ${converged} ms; ${restoreOut.trim().split('\n')[0]}`);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.equal(deploy?.state, 'succeeded', JSON.stringify(deploy));
    assert.ok((load.classes.v2 ?? 0) > 0, 'v2 served after the restore');
  });
});
