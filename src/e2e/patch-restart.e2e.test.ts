import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '../cli/client.js';
import type { PatchJob } from '../controller/hostops.js';
import type { StatusView } from '../controller/status.js';
import { EXIT_AGENT_RESTART } from '../core/tasks-protocol.js';
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
 * `nines hosts patch --restart-agent` (seed 000's host maintenance, with a nines upgrade in it): each
 * host is drained, patched, its agent told to restart — it exits with EXIT_AGENT_RESTART and this test
 * plays the service manager (systemd `Restart=always`) that starts the new one — and the patch goes on
 * only once the new agent registered and reported. Two hosts on loopback, under load: 0 failed.
 */
describe('hosts patch --restart-agent', () => {
  const root = tempDir('nines-patch-');
  const ctlDir = join(root, 'controller');
  const url = { api: '' };
  let controller: Proc | undefined;
  let proxy: Proc | undefined;
  let client: Client;
  const agents = new Map<string, { proc?: Proc; exits: Array<number | null>; pids: number[] }>();
  let stopping = false;

  /** Starts a host's agent, and again each time it exits for a restart (what systemd would do). */
  const superviseAgent = async (name: string, zone: string, joinToken: string) => {
    const a = agents.get(name) ?? { exits: [], pids: [] };
    agents.set(name, a);
    const p = await spawnCli([
      '--data-dir',
      join(root, name),
      'agent',
      '--controller',
      url.api,
      '--join-token',
      joinToken,
      '--zone',
      zone,
      '--name',
      name,
    ]);
    a.proc = p;
    a.pids.push(p.proc.pid ?? 0);
    p.proc.once('exit', (code) => {
      a.exits.push(code);
      if (code === EXIT_AGENT_RESTART && !stopping) void superviseAgent(name, zone, joinToken);
    });
  };

  before(async () => {
    const port = await freePort();
    url.api = `http://127.0.0.1:${port}`;
    controller = await spawnCli(['--data-dir', ctlDir, 'controller', '--port', String(port)]);
    client = new Client({ url: url.api, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    assert.equal(jt.code, 0, jt.stderr);
    const joinToken = (JSON.parse(jt.stdout) as { token: string }).token;
    await superviseAgent('host-a', 'a', joinToken);
    await superviseAgent('host-b', 'b', joinToken);
    proxy = await spawnCli([
      '--data-dir',
      join(root, 'proxy'),
      'proxy',
      '--controller',
      url.api,
      '--token-file',
      join(ctlDir, 'node-token'),
      '--port',
      '0',
    ]);
    await client.put('/v1/services/web', {
      command: 'node server.js',
      instances: 2,
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
      drainTimeout: 5000,
      healthyDeadline: 15_000,
    });
    const r = await cli(ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v1');
    assert.equal(r.code, 0, r.stderr);
    const d = await cli(ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
  });

  after(async () => {
    stopping = true;
    for (const a of agents.values()) await a.proc?.stop();
    await proxy?.stop();
    await controller?.stop();
    cleanup(root);
  });

  test('both agents restart one host at a time; the patch waits for each new agent; 0 failed', async (t) => {
    const { load, value: r } = await underLoad(
      `${proxy?.ready}/`,
      () =>
        cli(
          ctlDir,
          '--json',
          'hosts',
          'patch',
          '--command',
          'true',
          '--restart-agent',
          '--max-unavailable',
          '1',
        ),
      { rate: 200, connections: 16, tailMs: 1000 },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const patch = (JSON.parse(r.stdout) as { patch: PatchJob }).patch;
    t.diagnostic(
      `patch with agent restarts: ${load.sent} GETs, ${load.failed} failed, p99 ${load.latencyMs.p99} ms, took ${(patch.finishedAt ?? 0) - patch.startedAt} ms`,
    );
    assert.equal(load.failed, 0, describeLoad(load));
    assert.equal(patch.state, 'succeeded');
    assert.deepEqual(
      patch.hosts.map((h) => h.step),
      ['done', 'done'],
    );
    for (const [name, a] of agents) {
      assert.deepEqual(a.exits, [EXIT_AGENT_RESTART], `${name} exited once, to be restarted`);
      assert.equal(a.pids.length, 2, `${name} runs as a new process`);
      assert.notEqual(a.pids[0], a.pids[1]);
    }
    // Both hosts are back in service and the service is whole.
    await sleep(500);
    const s = await client.get<StatusView>('/v1/status');
    const web = s.instances.filter((i) => i.service === 'web');
    assert.equal(web.length, 2, JSON.stringify(web));
    assert.ok(
      web.every((i) => i.healthy && i.route === 'ready'),
      JSON.stringify(web),
    );
  });
});
