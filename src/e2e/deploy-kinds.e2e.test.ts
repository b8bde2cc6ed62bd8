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
 * Issue 4, the deploy kinds beyond the four strategies: rolling zone by zone across three zones, and
 * the rest (worker services, in-place reload, a controller killed mid-canary / mid-blue-green) — each
 * on a real controller, agents and proxy, under real load, with exact counts.
 */

export interface Cluster {
  root: string;
  ctlDir: string;
  client: Client;
  proxyUrl: string;
  procs: Proc[];
  startController(): Promise<void>;
  controller(): Proc | undefined;
}

/** A controller, one agent per zone (host `host-<zone>`) and one proxy, as separate processes. */
export async function startCluster(root: string, zones: readonly string[]): Promise<Cluster> {
  const ctlDir = join(root, 'controller');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const procs: Proc[] = [];
  let controller: Proc | undefined;
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
    procs.push(controller);
  };
  await startController();
  for (const zone of zones) {
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    assert.equal(jt.code, 0, jt.stderr);
    const token = (JSON.parse(jt.stdout) as { token: string }).token;
    procs.push(
      await spawnCli([
        '--data-dir',
        join(root, `agent-${zone}`),
        'agent',
        '--controller',
        url,
        '--join-token',
        token,
        '--zone',
        zone,
        '--name',
        `host-${zone}`,
      ]),
    );
  }
  const proxy = await spawnCli([
    '--data-dir',
    join(root, 'proxy'),
    'proxy',
    '--controller',
    url,
    '--token-file',
    join(ctlDir, 'node-token'),
    '--port',
    '0',
  ]);
  procs.push(proxy);
  const client = new Client({ url, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
  return {
    root,
    ctlDir,
    client,
    proxyUrl: proxy.ready,
    procs,
    startController,
    controller: () => controller,
  };
}

export async function stopCluster(c: Cluster | undefined, root: string): Promise<void> {
  for (const p of [...(c?.procs ?? [])].reverse()) await p.kill9();
  cleanup(root);
}

export const WEB_SPEC = {
  command: 'node server.js',
  health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
  drainTimeout: 5000,
  healthyDeadline: 15_000,
};

export async function events(client: Client, id: string): Promise<DeployEventRecord[]> {
  return (await client.get<{ events: DeployEventRecord[] }>(`/v1/deploys/${encodeURIComponent(id)}/events`))
    .events;
}

export async function waitDeploy(
  client: Client,
  id: string,
  pred: (d: DeployRecord) => boolean,
  ms = 60_000,
): Promise<DeployRecord> {
  const until = Date.now() + ms;
  for (;;) {
    const { deploy } = await client.get<{ deploy: DeployRecord }>(`/v1/deploys/${encodeURIComponent(id)}`);
    if (pred(deploy)) return deploy;
    if (Date.now() > until) throw new Error(`deploy ${id} is still ${deploy.state}`);
    await sleep(100);
  }
}

describe('rolling zone by zone across three zones', () => {
  const root = tempDir();
  let c: Cluster | undefined;
  before(async () => {
    c = await startCluster(root, ['a', 'b', 'c']);
    await c.client.put('/v1/services/web', {
      ...WEB_SPEC,
      instances: 6,
      rolling: { maxSurge: 1, maxUnavailable: 0, zoneByZone: true },
    });
    for (const v of ['v1', 'v2']) {
      const r = await cli(c.ctlDir, 'release', 'web', fixture('graceful'), '--version', v);
      assert.equal(r.code, 0, r.stderr);
    }
    const d = await cli(c.ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
  });
  after(() => stopCluster(c, root));

  test('one zone at a time, new instances in the zone being rolled, 0 failed requests', async (t) => {
    const cl = c!;
    const before = await cl.client.get<StatusView>('/v1/status');
    const zoneOf = new Map(before.instances.map((i) => [i.id, i.zone]));
    const perZone = (s: StatusView) =>
      ['a', 'b', 'c'].map((z) => s.instances.filter((i) => i.zone === z).length).join(',');
    assert.equal(perZone(before), '2,2,2', 'v1 spread two per zone');
    const { value: dep, load } = await underLoad(
      `${cl.proxyUrl}/`,
      () => cli(cl.ctlDir, 'deploy', 'web', 'v2'),
      {
        rate: 400,
      },
    );
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    assert.equal(load.failed, 0, describeLoad(load));
    const { deploys } = await cl.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
    const evs = await events(cl.client, deploys[0]!.id);
    // Walk the events: between `rolling.zone` Z and `rolling.zone-done` Z, every new instance starts in
    // Z and every old instance that drains is one of Z's.
    const hostZone = new Map(before.instances.map((i) => [i.host, i.zone]));
    const hosts = await cl.client.get<{ hosts: Array<{ id: string; name: string; zone: string }> }>(
      '/v1/hosts',
    );
    for (const h of hosts.hosts) hostZone.set(h.id, h.zone);
    let current: string | null = null;
    const order: string[] = [];
    let starts = 0;
    let drains = 0;
    for (const e of evs) {
      const d = e.data ?? {};
      if (e.type === 'rolling.zone') {
        assert.equal(current, null, 'a zone starts only after the previous one is done');
        current = String(d.zone);
        order.push(current);
      } else if (e.type === 'rolling.zone-done') {
        assert.equal(String(d.zone), current);
        current = null;
      } else if (e.type === 'instance.starting') {
        assert.equal(hostZone.get(String(d.host)), current, `${e.message} during zone ${current}`);
        starts++;
      } else if (e.type === 'instance.draining') {
        assert.equal(zoneOf.get(String(d.instance)), current, `${e.message} during zone ${current}`);
        drains++;
      }
    }
    assert.deepEqual(order, ['a', 'b', 'c']);
    assert.equal(starts, 6);
    assert.equal(drains, 6);
    const afterStatus = await cl.client.get<StatusView>('/v1/status');
    assert.equal(perZone(afterStatus), '2,2,2');
    assert.ok(afterStatus.instances.every((i) => i.version === 'v2' && i.route === 'ready'));
    t.diagnostic(`zone by zone: ${load.failed} failed of ${load.sent}; zones ${order.join(' → ')}`);
  });
});
