import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Client } from '../cli/client.js';
import type { StatusView } from '../controller/status.js';
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
 * `nines proxy --workers 2`: two processes share the listener, both follow the controller, and a
 * SIGHUP hands over to a fresh set of workers without refusing a connection — under load, 0 failed.
 */

describe('nines proxy --workers 2', () => {
  const root = tempDir();
  const ctlDir = join(root, 'controller');
  const procs: Proc[] = [];
  after(async () => {
    for (const p of procs.reverse()) await p.stop();
    cleanup(root);
  });

  test('both workers route and report; SIGHUP hands over with zero failed requests', async () => {
    const controller = await spawnCli(['--data-dir', ctlDir, 'controller', '--port', '0']);
    procs.push(controller);
    const url = controller.ready;
    const tokenFile = join(ctlDir, 'node-token');
    procs.push(
      await spawnCli([
        '--data-dir',
        join(root, 'agent'),
        'agent',
        '--controller',
        url,
        '--token-file',
        tokenFile,
      ]),
    );
    const port = await freePort();
    const proxy = await spawnCli([
      '--data-dir',
      join(root, 'proxy'),
      'proxy',
      '--controller',
      url,
      '--token-file',
      tokenFile,
      '--port',
      String(port),
      '--workers',
      '2',
    ]);
    procs.push(proxy);
    const client = new Client({ url, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
    await client.put('/v1/services/web', {
      command: 'node server.js',
      instances: 2,
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
    });
    assert.equal((await cli(ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v1')).code, 0);
    const d = await cli(ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    for (let i = 0; i < 50; i++) {
      if ((await client.get<StatusView>('/v1/status')).proxies.length === 2) break;
      await sleep(100);
    }
    const s = await client.get<StatusView>('/v1/status');
    assert.equal(s.proxies.length, 2, `two workers report: ${JSON.stringify(s.proxies)}`);

    const { load } = await underLoad(`http://127.0.0.1:${port}/`, async () => {
      proxy.proc.kill('SIGHUP');
      await sleep(3000);
    });
    assert.ok(load.sent > 1000);
    assert.equal(load.failed, 0, describeLoad(load));
  });
});
