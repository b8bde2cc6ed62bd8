// nines-test: serial — timing assertions (scripts/run-tests.mjs runs this file alone).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '../cli/client.js';
import type { PatchJob } from '../controller/hostops.js';
import type { InstanceView, StatusView } from '../controller/status.js';
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
import { Lab, skipReason, spawnCliIn } from './netns.js';

/**
 * The fleet on real (namespaced) hosts: four agents, each in its own network namespace with its own
 * address, two per zone; the controller and the proxy in the root namespace. Outages are cut links:
 * packets vanish without resets, as when a zone's network fails.
 */

const skip = skipReason();
const HOST_DOWN_AFTER_MS = 3000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('fleet across network namespaces', { skip }, () => {
  const root = tempDir('nines-netns-');
  const ctlDir = join(root, 'controller');
  const lab = new Lab();
  const agents = new Map<string, Proc>();
  let controller: Proc | undefined;
  let proxy: Proc | undefined;
  let proxyUrl = '';
  let apiUrl = '';
  let port = 0;
  let client: Client;
  let joinToken = '';

  const startController = async () => {
    controller = await spawnCli([
      '--data-dir',
      ctlDir,
      'controller',
      '--host',
      lab.gateway,
      '--port',
      String(port),
      '--host-down-after',
      String(HOST_DOWN_AFTER_MS),
      '--log-level',
      'debug',
    ]);
  };
  const status = () => client.get<StatusView>('/v1/status');
  const web = (s: StatusView) => s.instances.filter((i) => i.service === 'web');
  const serving = (s: StatusView) =>
    web(s).filter(
      (i) => i.desired === 'running' && i.route === 'ready' && i.healthy && i.state === 'running',
    );
  const zoneOf = (i: InstanceView) => lab.hosts.find((h) => h.name === i.host)?.zone;

  async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
    const until = Date.now() + ms;
    let last: unknown;
    while (Date.now() < until) {
      try {
        const v = await check();
        if (v !== undefined) return v;
      } catch (err) {
        last = err;
      }
      await sleep(250);
    }
    throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
  }

  before(async () => {
    lab.setup();
    for (const [name, zone] of [
      ['a1', 'a'],
      ['a2', 'a'],
      ['b1', 'b'],
      ['b2', 'b'],
    ] as const) {
      lab.addHost(name, zone);
    }
    port = await freePort();
    await startController();
    apiUrl = `http://${lab.gateway}:${port}`;
    client = new Client({ url: apiUrl, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    assert.equal(jt.code, 0, jt.stderr);
    joinToken = (JSON.parse(jt.stdout) as { token: string }).token;
    for (const h of lab.hosts) {
      const p = await spawnCliIn(h.ns, [
        '--data-dir',
        join(root, `agent-${h.name}`),
        'agent',
        '--controller',
        apiUrl,
        '--join-token',
        joinToken,
        '--name',
        h.name,
        '--zone',
        h.zone,
        '--address',
        h.address,
        '--log-level',
        'debug',
      ]);
      agents.set(h.name, p);
    }
    proxy = await spawnCli([
      '--data-dir',
      join(root, 'proxy'),
      'proxy',
      '--controller',
      apiUrl,
      '--token-file',
      join(ctlDir, 'node-token'),
      '--port',
      '0',
      // A cut host answers nothing: give up connecting soon and retry on another instance.
      '--connect-timeout',
      '500',
    ]);
    proxyUrl = proxy.ready;
    await client.put('/v1/services/web', {
      command: 'node server.js',
      instances: 4,
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
      drainTimeout: 5000,
      healthyDeadline: 20_000,
    });
    const r = await cli(ctlDir, '--url', apiUrl, 'release', 'web', fixture('graceful'), '--version', 'v1');
    assert.equal(r.code, 0, r.stderr);
    const d = await cli(ctlDir, '--url', apiUrl, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
  });

  after(async () => {
    for (const a of agents.values()) await a.kill9();
    await proxy?.stop();
    await controller?.stop();
    cleanup(root);
    lab.destroy();
  });

  test('placement spreads the service over both zones, one instance per host', async () => {
    const s = await status();
    const hosts = serving(s)
      .map((i) => i.host)
      .sort();
    assert.deepEqual(hosts, ['a1', 'a2', 'b1', 'b2'], JSON.stringify(web(s)));
  });

  test('zone outage under load: 0 failed GETs, lost instances replaced in the other zone', async (t) => {
    const before = serving(await status());
    const lostPids = before.filter((i) => zoneOf(i) === 'a').map((i) => i.pid as number);
    const zoneA = lab.hosts.filter((h) => h.zone === 'a');
    let cut = true;
    try {
      const { load, value: replacedAfterMs } = await underLoad(
        `${proxyUrl}/`,
        async () => {
          const cutAt = Date.now();
          lab.setLinks(
            lab.hosts.filter((h) => h.zone === 'a'),
            false,
          );
          await waitFor('4 serving instances in zone b', async () => {
            const s = serving(await status());
            return s.length === 4 && s.every((i) => zoneOf(i) === 'b') ? s : undefined;
          });
          return Date.now() - cutAt;
        },
        { rate: 200, connections: 16, tailMs: 2000 },
      );
      t.diagnostic(
        `zone a cut: ${load.sent} GETs, ${load.failed} failed, p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, ` +
          `max ${load.latencyMs.max} ms; replaced in zone b after ${replacedAfterMs} ms`,
      );
      const { events } = await client.get<{ events: Array<{ kind: string; message: string }> }>(
        '/v1/events?limit=50',
      );
      const healing = events.filter((e) => /heal|lost|reschedule/.test(e.kind)).reverse();
      t.diagnostic(`healing: ${healing.map((e) => `${e.kind}: ${e.message}`).join(' | ')}`);
      assert.equal(load.failed, 0, describeLoad(load));
      assert.ok(load.sent > 1000, `enough load: ${load.sent}`);
      // The partitioned hosts' processes still run: they cannot hear the controller.
      assert.ok(lostPids.every(alive), 'cut-off instances keep running on their hosts');

      // The zone comes back: its agents learn that their instances were replaced and stop them.
      lab.setLinks(zoneA, true);
      cut = false;
    } finally {
      if (cut) lab.setLinks(zoneA, true);
    }
    await waitFor(
      'the replaced instances stopped',
      async () => (lostPids.every((p) => !alive(p)) ? true : undefined),
      30_000,
    );
    const s = await status();
    assert.equal(web(s).length, 4, `no instance doubled: ${JSON.stringify(web(s))}`);
    assert.equal(serving(s).length, 4);
    const hosts = await client.get<{ hosts: Array<{ name: string; state: string }> }>('/v1/fleet/hosts');
    await waitFor('zone a hosts ready again', async () => {
      const h = await client.get<{ hosts: Array<{ name: string; state: string }> }>('/v1/fleet/hosts');
      return h.hosts.every((x) => x.state === 'ready') ? true : undefined;
    });
    assert.ok(hosts.hosts.length === 4);
  });

  test('a host partitioned and healed: replaced elsewhere, its old instance stopped, never doubled', async () => {
    const b1 = lab.host('b1');
    const s0 = serving(await status());
    const onB1 = s0.filter((i) => i.host === 'b1');
    assert.ok(onB1.length > 0, JSON.stringify(s0));
    const oldPids = onB1.map((i) => i.pid as number);
    const oldIds = new Set(onB1.map((i) => i.id));
    lab.setLinks([b1], false);
    try {
      await waitFor('b1 instances replaced', async () => {
        const s = serving(await status());
        return s.length === 4 && s.every((i) => !oldIds.has(i.id)) ? s : undefined;
      });
    } finally {
      lab.setLinks([b1], true);
    }
    await waitFor(
      'b1 stopped its replaced instances',
      async () => (oldPids.every((p) => !alive(p)) ? true : undefined),
      30_000,
    );
    await sleep(2000);
    const s = await status();
    const ids = web(s).map((i) => i.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(web(s).length, 4, JSON.stringify(web(s)));
    assert.equal(serving(s).length, 4);
  });

  test('hosts patch across 4 hosts under load: 0 failed GETs, every host patched and back in service', async (t) => {
    const marker = join(root, 'patched');
    const { load, value: patch } = await underLoad(
      `${proxyUrl}/`,
      async () => {
        const r = await cli(
          ctlDir,
          '--url',
          apiUrl,
          '--json',
          'hosts',
          'patch',
          '--command',
          `echo "$(ip -o -4 addr show scope global | awk '{print $4}')" >> ${marker}`,
          '--max-unavailable',
          '1',
        );
        assert.equal(r.code, 0, r.stdout + r.stderr);
        return (JSON.parse(r.stdout) as { patch: PatchJob }).patch;
      },
      { rate: 200, connections: 16, tailMs: 1000 },
    );
    t.diagnostic(
      `patch of 4 hosts: ${load.sent} GETs, ${load.failed} failed, p99 ${load.latencyMs.p99} ms, ` +
        `took ${(patch.finishedAt ?? 0) - patch.startedAt} ms`,
    );
    assert.equal(load.failed, 0, describeLoad(load));
    assert.equal(patch.state, 'succeeded');
    assert.deepEqual(
      patch.hosts.map((h) => h.step),
      ['done', 'done', 'done', 'done'],
    );
    // The command ran once on each host, in that host's namespace (its own address).
    const lines = readFileSync(marker, 'utf8').trim().split('\n').sort();
    assert.deepEqual(lines, lab.hosts.map((h) => `${h.address}/16`).sort());
    const hosts = await client.get<{ hosts: Array<{ state: string }> }>('/v1/fleet/hosts');
    assert.ok(
      hosts.hosts.every((h) => h.state === 'ready'),
      JSON.stringify(hosts),
    );
    assert.equal(serving(await status()).length, 4);
  });

  test('a failing patch command stops at the first host and names it', async () => {
    const r = await cli(
      ctlDir,
      '--url',
      apiUrl,
      'hosts',
      'patch',
      '--command',
      'echo disk full >&2; exit 3',
      '--zone',
      'b',
    );
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /NINES_E_HOST_TASK_FAILED: patch stopped at host b1: host b1: `echo disk full >&2; exit 3` exited with 3: disk full/,
    );
    const hosts = await client.get<{ hosts: Array<{ name: string; state: string }> }>('/v1/fleet/hosts');
    assert.equal(hosts.hosts.find((h) => h.name === 'b1')?.state, 'cordoned', 'the failed host stays out');
    assert.equal(hosts.hosts.find((h) => h.name === 'b2')?.state, 'ready', 'the next host was not touched');
    const u = await cli(ctlDir, '--url', apiUrl, 'hosts', 'uncordon', 'b1');
    assert.equal(u.code, 0, u.stderr);
  });

  test('controller killed for 30 s under load: 0 failed GETs, nothing restarted, nothing moved', async () => {
    const before = serving(await status());
    const { load } = await underLoad(
      `${proxyUrl}/`,
      async () => {
        await controller?.kill9();
        await sleep(30_000);
        await startController();
        await sleep(HOST_DOWN_AFTER_MS + 2000);
      },
      { rate: 100, connections: 8, tailMs: 1000 },
    );
    assert.equal(load.failed, 0, describeLoad(load));
    const after = serving(await status());
    const key = (i: InstanceView) => `${i.id}@${i.host}:${i.pid}:${i.restarts}`;
    assert.deepEqual(
      after.map(key).sort(),
      before.map(key).sort(),
      'the same instances, same pids, no restarts',
    );
  });
});
