import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
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

  test('the controller killed (SIGKILL) in zone b: the deploy resumes in b, leaves a alone, 0 failed', async (t) => {
    const cl = c!;
    assert.equal((await cli(cl.ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v3')).code, 0);
    const hosts = await cl.client.get<{ hosts: Array<{ id: string; zone: string }> }>('/v1/hosts');
    const hostZone = new Map(hosts.hosts.map((h) => [h.id, h.zone]));
    let id = '';
    const { load } = await underLoad(
      `${cl.proxyUrl}/`,
      async () => {
        const { deploy } = await cl.client.post<{ deploy: DeployRecord }>('/v1/services/web/deploys', {
          version: 'v3',
        });
        id = deploy.id;
        // Kill it once zone b has a new instance routed.
        for (let i = 0; i < 600; i++) {
          const evs = await events(cl.client, id);
          const inB = evs.findIndex((e) => e.type === 'rolling.zone' && e.data?.zone === 'b');
          if (inB >= 0 && evs.slice(inB).some((e) => e.type === 'instance.routed')) break;
          await sleep(25);
        }
        await cl.controller()?.kill9();
        await sleep(1000);
        await cl.startController();
        const done = await waitDeploy(cl.client, id, (d) => d.state !== 'running' && d.state !== 'pending');
        assert.equal(done.state, 'succeeded', done.reason ?? '');
      },
      { rate: 400 },
    );
    assert.equal(load.failed, 0, describeLoad(load));
    const evs = await events(cl.client, id);
    const resumed = evs.findIndex((e) => e.type === 'deploy.resumed');
    assert.ok(resumed > 0);
    const after = evs.slice(resumed);
    const plan = after.find((e) => e.type === 'rolling.zones');
    const zones = (plan?.data?.zones as Array<{ zone: string }> | undefined)?.map((z) => z.zone);
    assert.deepEqual(zones, ['a', 'b', 'c'], JSON.stringify(plan?.data));
    // Zone a (done before the kill) is a no-op now: nothing of it starts again; b, in flight, goes on.
    const startedIn = after
      .filter((e) => e.type === 'instance.starting')
      .map((e) => hostZone.get(String(e.data?.host)));
    assert.ok(!startedIn.includes('a'), `zone a started again after the restart: ${startedIn}`);
    assert.equal(startedIn[0], 'b', `the zone in flight is finished first: ${startedIn}`);
    const s = await cl.client.get<StatusView>('/v1/status');
    assert.ok(
      s.instances.length === 6 && s.instances.every((i) => i.version === 'v3' && i.route === 'ready'),
    );
    t.diagnostic(
      `zone by zone, controller killed in zone b: ${load.failed} failed of ${load.sent}; resumed ${zones}`,
    );
  });
});

interface Journal {
  starts: Array<{ release: string; instance: string; at: number }>;
  stops: Array<{ release: string; instance: string; at: number; signal: string }>;
  done: number[];
}

function readJournal(queue: string): Journal {
  const j: Journal = { starts: [], stops: [], done: [] };
  for (const line of readFileSync(join(queue, 'journal'), 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'start') j.starts.push({ release: f[1]!, instance: f[2]!, at: Number(f[4]) });
    else if (f[0] === 'stop')
      j.stops.push({ release: f[1]!, instance: f[2]!, at: Number(f[4]), signal: f[5]! });
    else if (f[0] === 'done') j.done.push(Number(f[1]));
  }
  return j;
}

describe('a worker service (no HTTP) deployed v1 → v2 beside a web service under load', () => {
  const root = tempDir();
  const queue = join(root, 'queue');
  let c: Cluster | undefined;
  before(async () => {
    c = await startCluster(root, ['a']);
    await c.client.put('/v1/services/web', { ...WEB_SPEC, instances: 1 });
    await c.client.put('/v1/services/jobs', {
      kind: 'worker',
      command: 'node worker.js',
      instances: 2,
      env: { QUEUE_DIR: queue, ITEM_MS: '150' },
      health: { interval: 200, rise: 2 },
      drainTimeout: 3000,
      healthyDeadline: 15_000,
      // Ignored for a worker (no traffic to split): it is deployed new-before-old all the same.
      strategy: 'canary',
    });
    assert.equal((await cli(c.ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v1')).code, 0);
    for (const v of ['v1', 'v2']) {
      const r = await cli(c.ctlDir, 'release', 'jobs', fixture('worker'), '--version', v);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const s of ['web', 'jobs']) {
      const d = await cli(c.ctlDir, 'deploy', s, 'v1');
      assert.equal(d.code, 0, d.stdout + d.stderr);
    }
  });
  after(() => stopCluster(c, root));

  test('new workers up before old ones stop, SIGTERM lets each finish its item: none lost, none doubled', async (t) => {
    const cl = c!;
    const first = await cl.client.get<{ deploys: DeployRecord[] }>('/v1/services/jobs/deploys');
    assert.equal(first.deploys[0]?.strategy, 'rolling', 'a first deploy starts everything at once');
    await sleep(1000);
    const { value: dep, load } = await underLoad(
      `${cl.proxyUrl}/`,
      () => cli(cl.ctlDir, 'deploy', 'jobs', 'v2'),
      {
        rate: 200,
      },
    );
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    // The worker has no route: the web service keeps all its traffic.
    assert.equal(load.failed, 0, describeLoad(load));
    assert.deepEqual(Object.keys(load.classes), ['v1'], describeLoad(load));
    const status = await cl.client.get<StatusView>('/v1/status');
    const jobs = status.instances.filter((i) => i.service === 'jobs');
    assert.equal(jobs.length, 2);
    assert.ok(
      jobs.every((i) => i.version === 'v2' && i.healthy && i.route === 'none'),
      JSON.stringify(jobs),
    );
    await sleep(500);

    const j = readJournal(queue);
    const v1 = j.starts.filter((s) => s.release === 'v1');
    const v2 = j.starts.filter((s) => s.release === 'v2');
    assert.equal(v1.length, 2);
    assert.equal(v2.length, 2);
    // Each old worker stopped on SIGTERM after finishing its item (a SIGKILL writes no `stop` line).
    const v1Stops = j.stops.filter((s) => s.release === 'v1');
    assert.deepEqual(
      v1Stops.map((s) => s.signal),
      ['SIGTERM', 'SIGTERM'],
    );
    assert.equal(j.stops.length, 2, 'no v2 worker stopped');
    // New before old: at every moment since v1 was up, at least two workers consumed.
    const timeline = [
      ...j.starts.map((s) => ({ at: s.at, d: 1 })),
      ...j.stops.map((s) => ({ at: s.at, d: -1 })),
    ].sort((a, b) => a.at - b.at || b.d - a.d);
    let running = 0;
    let seenTwo = false;
    for (const e of timeline) {
      running += e.d;
      if (running >= 2) seenTwo = true;
      else if (seenTwo) assert.fail(`only ${running} worker(s) running at ${e.at}: ${JSON.stringify(j)}`);
    }
    assert.ok(Math.min(...v2.map((s) => s.at)) < Math.min(...v1Stops.map((s) => s.at)));
    // Nothing doubled, nothing lost: every claimed item is done exactly once, except the one each
    // running worker has in hand right now.
    const done = new Set(j.done);
    assert.equal(done.size, j.done.length, 'an item was done twice');
    const claims = readdirSync(join(queue, 'claims')).map(Number);
    const open = claims.filter((n) => !done.has(n));
    assert.ok(open.length <= 2, `claimed but not done: ${open.join(', ')}`);
    assert.ok(j.done.length > 20, `only ${j.done.length} items done`);
    t.diagnostic(
      `worker: ${j.done.length} items done, 0 doubled, ${open.length} in hand; web under load: ${load.failed} failed of ${load.sent}`,
    );
  });

  test('a worker that cannot finish its item within drainTimeout gets SIGKILL, and the deploy does not wait for it', async (t) => {
    const cl = c!;
    const spec = (itemMs: string) => ({
      kind: 'worker',
      command: 'node worker.js',
      instances: 2,
      env: { QUEUE_DIR: queue, ITEM_MS: itemMs },
      health: { interval: 200, rise: 2 },
      drainTimeout: 1000,
      healthyDeadline: 15_000,
    });
    // v3 works 20 s on each item; v4 is quick again.
    await cl.client.put('/v1/services/jobs', spec('20000'));
    assert.equal((await cli(cl.ctlDir, 'release', 'jobs', fixture('worker'), '--version', 'v3')).code, 0);
    await cl.client.put('/v1/services/jobs', spec('150'));
    assert.equal((await cli(cl.ctlDir, 'release', 'jobs', fixture('worker'), '--version', 'v4')).code, 0);
    const d3 = await cli(cl.ctlDir, 'deploy', 'jobs', 'v3');
    assert.equal(d3.code, 0, d3.stdout + d3.stderr);
    await sleep(500);
    const t0 = Date.now();
    const d4 = await cli(cl.ctlDir, 'deploy', 'jobs', 'v4');
    const took = Date.now() - t0;
    assert.equal(d4.code, 0, d4.stdout + d4.stderr);
    assert.ok(
      took < 10_000,
      `the deploy took ${took} ms: it waited for the items instead of the drain timeout`,
    );
    const j = readJournal(queue);
    assert.equal(j.starts.filter((s) => s.release === 'v3').length, 2);
    assert.equal(j.stops.filter((s) => s.release === 'v3').length, 0, 'v3 workers were killed, not stopped');
    const status = await cl.client.get<StatusView>('/v1/status');
    const jobs = status.instances.filter((i) => i.service === 'jobs');
    assert.ok(jobs.length === 2 && jobs.every((i) => i.version === 'v4' && i.healthy), JSON.stringify(jobs));
    t.diagnostic(`worker SIGKILL after drainTimeout 1 s: deploy v3 → v4 took ${took} ms with the CLI`);
  });

  test('the controller killed (SIGKILL) in the middle of a worker deploy: it resumes, never fewer than 2 consume', async (t) => {
    const cl = c!;
    assert.equal((await cli(cl.ctlDir, 'release', 'jobs', fixture('worker'), '--version', 'v5')).code, 0);
    const t0 = Date.now();
    const { deploy } = await cl.client.post<{ deploy: DeployRecord }>('/v1/services/jobs/deploys', {
      version: 'v5',
    });
    for (let i = 0; i < 400; i++) {
      if ((await events(cl.client, deploy.id)).some((e) => e.type === 'instance.stopping')) break;
      await sleep(25);
    }
    await cl.controller()?.kill9();
    await sleep(1000);
    await cl.startController();
    const done = await waitDeploy(
      cl.client,
      deploy.id,
      (d) => d.state !== 'running' && d.state !== 'pending',
    );
    assert.equal(done.state, 'succeeded', done.reason ?? '');
    assert.ok((await events(cl.client, deploy.id)).some((e) => e.type === 'deploy.resumed'));
    await sleep(500);
    const j = readJournal(queue);
    // From the deploy's start: two v4 workers ran; every start and stop since moves the count.
    const timeline = [
      ...j.starts.filter((x) => x.at >= t0).map((x) => ({ at: x.at, d: 1 })),
      ...j.stops.filter((x) => x.at >= t0).map((x) => ({ at: x.at, d: -1 })),
    ].sort((a, b) => a.at - b.at || b.d - a.d);
    let running = 2;
    for (const e of timeline) {
      running += e.d;
      assert.ok(running >= 2, `only ${running} worker(s) at ${e.at}: ${JSON.stringify(timeline)}`);
    }
    assert.equal(running, 2);
    assert.ok(
      j.stops.filter((x) => x.at >= t0).every((x) => x.signal === 'SIGTERM'),
      'every stop was a SIGTERM that let the item finish',
    );
    assert.equal(new Set(j.done).size, j.done.length, 'an item was done twice');
    const jobs = (await cl.client.get<StatusView>('/v1/status')).instances.filter(
      (i) => i.service === 'jobs',
    );
    assert.ok(jobs.length === 2 && jobs.every((i) => i.version === 'v5' && i.healthy), JSON.stringify(jobs));
    t.diagnostic(
      `worker deploy with a controller SIGKILL: ${timeline.length} starts/stops, never below 2 workers`,
    );
  });
});

describe('in-place reload on two hosts', () => {
  const root = tempDir();
  let c: Cluster | undefined;
  const spec = { ...WEB_SPEC, instances: 4, strategy: 'in-place' };
  before(async () => {
    c = await startCluster(root, ['a', 'b']);
    await c.client.put('/v1/services/web', spec);
    for (const v of ['v1', 'v2']) {
      const r = await cli(c.ctlDir, 'release', 'web', fixture('graceful'), '--version', v);
      assert.equal(r.code, 0, r.stderr);
    }
    const d = await cli(c.ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
  });
  after(() => stopCluster(c, root));

  test('new processes start beside the old on each host, one switch per host, 0 failed requests', async (t) => {
    const cl = c!;
    const { deploys: firsts } = await cl.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
    assert.equal(firsts[0]?.strategy, 'rolling', 'the first deploy ignores the strategy');
    const before = await cl.client.get<StatusView>('/v1/status');
    const perHost = (s: StatusView) =>
      ['host-a', 'host-b'].map((h) => s.instances.filter((i) => i.host === h).length).join(',');
    assert.equal(perHost(before), '2,2');
    const { value: dep, load } = await underLoad(
      `${cl.proxyUrl}/`,
      () => cli(cl.ctlDir, 'deploy', 'web', 'v2'),
      {
        rate: 400,
        minRequests: 3000,
      },
    );
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.ok((load.classes.v1 ?? 0) > 0 && (load.classes.v2 ?? 0) > 0, describeLoad(load));
    const { deploys } = await cl.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
    assert.equal(deploys[0]?.strategy, 'in-place');
    assert.equal(deploys[0]?.failedRequests, 0);
    const evs = await events(cl.client, deploys[0]!.id);
    const switched = evs.filter((e) => e.type === 'inplace.switched');
    assert.equal(switched.length, 2, 'one switch per host');
    // Each switch routes new processes started on the very host of the old ones it puts draining.
    const hostOfOld = new Map(before.instances.map((i) => [i.id, i.host]));
    const hosts = await cl.client.get<{ hosts: Array<{ id: string; name: string }> }>('/v1/hosts');
    const hostName = new Map(hosts.hosts.map((h) => [h.id, h.name]));
    const startedOn = new Map(
      evs
        .filter((e) => e.type === 'instance.starting')
        .map((e) => [String(e.data?.instance), hostName.get(String(e.data?.host))]),
    );
    const switchedHosts = switched.map((e) => {
      const started = ((e.data?.started ?? []) as string[]).map((id) => startedOn.get(id));
      const draining = ((e.data?.draining ?? []) as string[]).map((id) => hostOfOld.get(id));
      assert.equal(started.length, 2, e.message);
      assert.equal(draining.length, 2, e.message);
      assert.equal(new Set([...started, ...draining]).size, 1, `${e.message}: ${started} / ${draining}`);
      return started[0];
    });
    assert.deepEqual([...switchedHosts].sort(), ['host-a', 'host-b']);
    const afterStatus = await cl.client.get<StatusView>('/v1/status');
    assert.equal(perHost(afterStatus), '2,2');
    assert.ok(afterStatus.instances.every((i) => i.version === 'v2' && i.route === 'ready'));
    t.diagnostic(`in-place: ${load.failed} failed of ${load.sent}`);
  });

  test('a release that never gets healthy: the deploy fails, the old processes never stopped serving, 0 failed', async (t) => {
    const cl = c!;
    await cl.client.put('/v1/services/web', { ...spec, healthyDeadline: 3000 });
    assert.equal((await cli(cl.ctlDir, 'release', 'web', fixture('unhealthy'), '--version', 'v3')).code, 0);
    const before = await cl.client.get<StatusView>('/v1/status');
    const { value: dep, load } = await underLoad(
      `${cl.proxyUrl}/`,
      () => cli(cl.ctlDir, 'deploy', 'web', 'v3'),
      {
        rate: 400,
      },
    );
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /did not pass its health check/);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.deepEqual(Object.keys(load.classes), ['v2']);
    const afterStatus = await cl.client.get<StatusView>('/v1/status');
    const pids = (s: StatusView) => s.instances.map((i) => `${i.id}:${i.pid}`).sort();
    assert.deepEqual(pids(afterStatus), pids(before), 'the same v2 processes serve');
    t.diagnostic(`in-place failure run: ${load.failed} failed of ${load.sent}`);
  });

  test('a release answering 5xx on 30 %: the analysis after the first host catches it and reverts; only its own answers failed', async (t) => {
    const cl = c!;
    await cl.client.put('/v1/services/web', {
      ...spec,
      analysis: { afterEachBatch: true, window: 2000, maxErrorPercent: 5, minRequests: 20 },
    });
    assert.equal((await cli(cl.ctlDir, 'release', 'web', fixture('flaky'), '--version', 'v4')).code, 0);
    const { value: dep, load } = await underLoad(
      `${cl.proxyUrl}/`,
      () => cli(cl.ctlDir, 'deploy', 'web', 'v4'),
      {
        rate: 400,
      },
    );
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /analysis/);
    // Every failed request is one the bad release answered itself (500 `v4 error`), none of the switch,
    // the drain or the revert; and the analysis stopped it within budget.
    const own = load.classes['v4 error'] ?? 0;
    assert.equal(load.failed, own, describeLoad(load));
    assert.equal(Object.keys(load.errors).length, 0, describeLoad(load));
    assert.ok(own > 0 && own < 400, `the bad release answered ${own} failures: ${describeLoad(load)}`);
    const evs = await events(
      cl.client,
      (await cl.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys')).deploys[0]!.id,
    );
    assert.equal(
      evs.filter((e) => e.type === 'inplace.switched').length,
      1,
      'only the first host was switched',
    );
    const s = await cl.client.get<StatusView>('/v1/status');
    assert.equal(s.services[0]?.currentRelease, 'v2');
    assert.ok(
      s.instances.length === 4 && s.instances.every((i) => i.version === 'v2' && i.route === 'ready'),
    );
    t.diagnostic(
      `in-place bad release: ${load.failed} failed of ${load.sent}, all answered by v4 (budget 400)`,
    );
  });
});

describe('the controller killed (SIGKILL) mid-canary and mid-blue-green', () => {
  const root = tempDir();
  let c: Cluster | undefined;
  const spec = {
    ...WEB_SPEC,
    instances: 3,
    strategy: 'canary',
    canary: { steps: [{ setWeight: 34 }, { pause: {} }] },
  };
  before(async () => {
    c = await startCluster(root, ['a']);
    await c.client.put('/v1/services/web', spec);
    for (const v of ['v1', 'v2']) {
      const r = await cli(c.ctlDir, 'release', 'web', fixture('graceful'), '--version', v);
      assert.equal(r.code, 0, r.stderr);
    }
    const d = await cli(c.ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
  });
  after(() => stopCluster(c, root));

  const restart = async (cl: Cluster) => {
    await cl.controller()?.kill9();
    await sleep(1000);
    await cl.startController();
  };
  const status = (cl: Cluster) => cl.client.get<StatusView>('/v1/status');

  test('killed in a canary pause: the canary holds at its weight, resumes after its last step, 0 failed', async (t) => {
    const cl = c!;
    const { deploy } = await cl.client.post<{ deploy: DeployRecord }>('/v1/services/web/deploys', {
      version: 'v2',
    });
    const { load } = await underLoad(
      `${cl.proxyUrl}/`,
      async () => {
        await waitDeploy(cl.client, deploy.id, (d) => d.state === 'paused');
        const canary = (await status(cl)).instances.filter((i) => i.version === 'v2');
        await restart(cl);
        const resumed = await waitDeploy(cl.client, deploy.id, (d) => d.state === 'paused');
        assert.ok((await events(cl.client, deploy.id)).some((e) => e.type === 'deploy.resumed'));
        // The canary instance is the same process: the restart touched nothing of the fleet.
        const after = (await status(cl)).instances.filter((i) => i.version === 'v2');
        assert.deepEqual(
          after.map((i) => `${i.id}:${i.pid}`),
          canary.map((i) => `${i.id}:${i.pid}`),
        );
        assert.equal(resumed.state, 'paused');
        await sleep(1000);
        const promote = await cli(cl.ctlDir, 'deploy', 'promote', 'web');
        assert.equal(promote.code, 0, promote.stderr);
        const done = await waitDeploy(
          cl.client,
          deploy.id,
          (d) => d.state !== 'paused' && d.state !== 'running',
        );
        assert.equal(done.state, 'succeeded', done.reason ?? '');
      },
      { rate: 300 },
    );
    assert.equal(load.failed, 0, describeLoad(load));
    assert.ok((load.classes.v1 ?? 0) > 0 && (load.classes.v2 ?? 0) > 0, describeLoad(load));
    const evs = await events(cl.client, deploy.id);
    const resumedAt = evs.find((e) => e.type === 'canary.resumed');
    assert.ok(resumedAt, 'the canary resumed from its events');
    assert.equal(resumedAt.data?.index, 1, resumedAt.message);
    assert.equal(resumedAt.data?.percent, 34, resumedAt.message);
    // One canary instance before the restart, two more at the promotion: none started twice.
    assert.equal(evs.filter((e) => e.type === 'instance.starting').length, 3);
    const s = await status(cl);
    assert.ok(
      s.instances.length === 3 && s.instances.every((i) => i.version === 'v2' && i.route === 'ready'),
    );
    t.diagnostic(`canary killed mid-pause: ${load.failed} failed of ${load.sent}`);
  });

  test('killed with a preview group up, then with a standby group: switch and scale-down as planned, 0 failed', async (t) => {
    const cl = c!;
    await cl.client.put('/v1/services/web', {
      ...spec,
      strategy: 'blue-green',
      blueGreen: { scaleDownDelay: 12_000, autoPromote: false },
    });
    assert.equal((await cli(cl.ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v3')).code, 0);
    const { deploy } = await cl.client.post<{ deploy: DeployRecord }>('/v1/services/web/deploys', {
      version: 'v3',
    });
    const { load } = await underLoad(
      `${cl.proxyUrl}/`,
      async () => {
        await waitDeploy(cl.client, deploy.id, (d) => d.state === 'paused');
        await restart(cl);
        await waitDeploy(cl.client, deploy.id, (d) => d.state === 'paused');
        assert.ok((await events(cl.client, deploy.id)).some((e) => e.type === 'deploy.resumed'));
        assert.equal((await status(cl)).instances.length, 6, 'the preview group survived the restart');
        const promote = await cli(cl.ctlDir, 'deploy', 'promote', 'web');
        assert.equal(promote.code, 0, promote.stderr);
        const done = await waitDeploy(
          cl.client,
          deploy.id,
          (d) => d.state !== 'paused' && d.state !== 'running',
        );
        assert.equal(done.state, 'succeeded', done.reason ?? '');
        // Now the standby window: the v2 group runs out of rotation and holds the lock.
        await restart(cl);
        await sleep(3000); // several reconciler passes: it must leave the standby group alone
        const mid = await status(cl);
        assert.equal(mid.instances.length, 6, 'the reconciler did not stop the standby group');
        assert.match(mid.services[0]?.lockedBy ?? '', /^standby-/);
        // The restarted controller re-armed the scale-down: the v2 group goes once scaleDownDelay is over.
        for (let i = 0; i < 300; i++) {
          const st = await status(cl);
          if (st.instances.length === 3 && st.services[0]?.lockedBy === null) break;
          await sleep(100);
        }
      },
      { rate: 300 },
    );
    assert.equal(load.failed, 0, describeLoad(load));
    // The release before (v2 after the canary test) until the switch, v3 after it.
    assert.equal(Object.keys(load.classes).length, 2, describeLoad(load));
    assert.ok((load.classes.v3 ?? 0) > 0, describeLoad(load));
    const s = await status(cl);
    assert.equal(s.services[0]?.currentRelease, 'v3');
    assert.equal(s.services[0]?.lockedBy, null, 'the standby group scaled down and freed the lock');
    assert.ok(
      s.instances.length === 3 && s.instances.every((i) => i.version === 'v3' && i.route === 'ready'),
    );
    const evs = await events(cl.client, deploy.id);
    assert.ok(evs.some((e) => e.type === 'bluegreen.scale-down'));
    t.diagnostic(`blue-green killed twice: ${load.failed} failed of ${load.sent}`);
  });
});
