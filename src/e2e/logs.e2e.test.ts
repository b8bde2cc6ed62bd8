import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { StatusView } from '../controller/status.js';
import { cleanup, cli, cliPath, fixture, serviceYaml, sleep, startUp, tempDir, type Up } from './harness.js';

/**
 * `nines logs` against a real `nines up`: the instances' output travels agent → controller → CLI on
 * demand, each line prefixed with its instance; `--follow` shows what an instance says while it drains.
 */
describe('nines logs', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('tail of every instance, one instance, unknown instance, follow', async () => {
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), instances: 2 }) });
    const s = await up.client.get<StatusView>('/v1/status');
    const ids = s.instances.map((i) => i.id).sort();
    assert.equal(ids.length, 2);

    const all = await cli(dataDir, 'logs', 'web', '--tail', '5');
    assert.equal(all.code, 0, all.stderr);
    for (const id of ids) {
      assert.match(all.stdout, new RegExp(`^\\[${id}\\] .*listening on`, 'm'), all.stdout);
    }
    for (const line of all.stdout.trimEnd().split('\n')) assert.match(line, /^\[web-[^\]]+\] /);

    const one = await cli(dataDir, 'logs', 'web', '--instance', ids[0] ?? '');
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /listening on/);
    assert.ok(!one.stdout.includes(`[${ids[1]}]`), one.stdout);

    const none = await cli(dataDir, 'logs', 'web', '--tail', '0');
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, '');

    const unknown = await cli(dataDir, 'logs', 'web', '--instance', 'web-nope');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /NINES_E_INSTANCE_NOT_FOUND/);
    const noService = await cli(dataDir, 'logs', 'nope');
    assert.equal(noService.code, 2);
    assert.match(noService.stderr, /NINES_E_SERVICE_NOT_FOUND/);

    // Follow both instances, scale to 1: the stopped one's drain messages arrive while it stops.
    const follow = spawn(
      process.execPath,
      [cliPath, '--data-dir', dataDir, 'logs', 'web', '--tail', '0', '-f'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let followed = '';
    follow.stdout.on('data', (d: Buffer) => {
      followed += d.toString();
    });
    const exited = new Promise<number | null>((r) => follow.once('exit', (code) => r(code)));
    try {
      await sleep(1500); // the agent picks the requests up on its long poll
      const scale = await cli(dataDir, 'scale', 'web', '1', '--timeout', '30');
      assert.equal(scale.code, 0, scale.stdout + scale.stderr);
      const until = Date.now() + 10_000;
      while (!/drained, exiting/.test(followed) && Date.now() < until) await sleep(100);
      assert.match(followed, /^\[web-[^\]]+\] .*SIGTERM: draining/m, followed);
      assert.match(followed, /^\[web-[^\]]+\] .*drained, exiting/m, followed);
      assert.ok(!/listening on/.test(followed), `--tail 0 sends no history: ${followed}`);
    } finally {
      follow.kill('SIGINT');
    }
    assert.equal(await exited, 0);
  });
});
