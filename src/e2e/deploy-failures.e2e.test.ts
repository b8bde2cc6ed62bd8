// nines-test: serial — it checks that long requests were in flight when each old instance began draining, which a second file running beside it can starve (scripts/run-tests.mjs).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import WebSocket from 'ws';
import type { StatusView } from '../controller/status.js';
import type { DeployEventRecord, DeployRecord, ServiceRecord } from '../controller/store/types.js';
import { type Cluster, events, startCluster, stopCluster, WEB_SPEC, waitDeploy } from './cluster.js';
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
 * Issue 4, the failure runs and the drain guarantees, under real HTTP load through the real proxy at
 * real app processes, with exact counts: blue-green and canary of a release that fails readiness drop
 * nothing and never route it; blue-green of a release answering 5xx on 30 % is caught by the analysis
 * after the switch and switched back to the old group (which never stopped), the only failures being
 * the bad release's own answers, under the analysis budget; and in a rolling deploy a 5 s request in
 * flight on an old instance completes during its drain while a WebSocket on it is closed with 1001.
 */

async function deployOf(up: Up, id: string): Promise<{ deploy: DeployRecord; events: DeployEventRecord[] }> {
  return up.client.get(`/v1/deploys/${encodeURIComponent(id)}`);
}

async function latestDeploy(up: Up): Promise<DeployRecord> {
  const { deploys } = await up.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
  assert.ok(deploys[0]);
  return deploys[0];
}

async function webInstances(up: Up): Promise<StatusView['instances']> {
  const status = await up.client.get<StatusView>('/v1/status');
  return status.instances.filter((i) => i.service === 'web');
}

/**
 * Sample the service (its traffic split) and its instances every 100 ms until stopped, so a test can
 * say what held at every moment of a deploy, not just before and after.
 */
function watch(up: Up) {
  const samples: Array<{ traffic: ServiceRecord['traffic']; instances: StatusView['instances'] }> = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      const [{ service }, instances] = await Promise.all([
        up.client.get<{ service: ServiceRecord }>('/v1/services/web'),
        webInstances(up),
      ]);
      samples.push({ traffic: service.traffic, instances });
      await sleep(100);
    }
  })();
  return {
    samples,
    async stop() {
      on = false;
      await loop;
      return samples;
    },
  };
}

/** Every sample had exactly the given v1 instances, all routed `ready`. */
function assertV1AlwaysInRotation(samples: ReturnType<typeof watch>['samples'], v1Ids: string[]) {
  assert.ok(samples.length > 10, `only ${samples.length} samples`);
  for (const s of samples) {
    const v1 = s.instances.filter((i) => i.version === 'v1');
    assert.deepEqual(
      v1.map((i) => i.id).sort(),
      [...v1Ids].sort(),
      'the same v1 instances throughout (none restarted)',
    );
    assert.ok(
      v1.every((i) => i.route === 'ready'),
      `a v1 instance left rotation: ${JSON.stringify(v1)}`,
    );
  }
}

describe('blue-green of a release that fails readiness', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('fails naming the health check; the old group never leaves rotation; 0 failed requests', async (t) => {
    up = await startUp({
      dataDir,
      config: serviceYaml({
        source: fixture('graceful'),
        healthyDeadline: '3s',
        extra: '    blueGreen: { scaleDownDelay: 30s }\n',
      }),
    });
    const u = up;
    assert.equal((await cli(dataDir, 'release', 'web', fixture('unhealthy'), '--version', 'v2')).code, 0);
    const v1Ids = (await webInstances(u)).map((i) => i.id);
    assert.equal(v1Ids.length, 3);
    const w = watch(u);
    const { value: dep, load } = await underLoad(`${u.info.proxyUrl}/`, () =>
      cli(dataDir, 'deploy', 'web', 'v2', '--strategy', 'blue-green'),
    );
    const samples = await w.stop();
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /^failed: .*did not pass its health check \(GET \/healthz/m);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.deepEqual(Object.keys(load.classes), ['v1']);
    assertV1AlwaysInRotation(samples, v1Ids);
    // Never switched: the split only ever named v2 as the preview group.
    assert.ok(
      samples.every((s) => !s.traffic?.weights),
      'no switch happened',
    );
    assert.ok(
      samples.some((s) => s.traffic?.preview === 'v2'),
      'v2 was tried as the preview group',
    );
    const d = await latestDeploy(u);
    assert.equal(d.strategy, 'blue-green');
    assert.equal(d.state, 'failed');
    assert.match(d.reason ?? '', /health check/);
    assert.equal(d.failedRequests, 0);
    const { events } = await deployOf(u, d.id);
    assert.ok(!events.some((e) => e.type === 'bluegreen.switched'), 'no switch event');
    const status = await u.client.get<StatusView>('/v1/status');
    assert.equal(status.services[0]?.currentRelease, 'v1');
    assert.equal(status.services[0]?.lockedBy, null);
    const web = await webInstances(u);
    assert.deepEqual(web.map((i) => i.id).sort(), [...v1Ids].sort());
    const { service } = await u.client.get<{ service: ServiceRecord }>('/v1/services/web');
    assert.equal(service.traffic ?? null, null, 'the preview split is cleared');
    t.diagnostic(`blue-green, unhealthy v2: ${load.failed} failed of ${load.sent} sent`);
  });
});

describe('blue-green of a release that answers 5xx on 30 %, analysed after the switch', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('the analysis catches it and switches back to the old group at once; only v2’s own answers failed, under budget', async (t) => {
    const extra =
      '    blueGreen: { scaleDownDelay: 30s }\n' +
      '    analysis: { maxErrorPercent: 5, minRequests: 20, window: 2s, afterSwitch: true }\n';
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), extra }) });
    const u = up;
    assert.equal((await cli(dataDir, 'release', 'web', fixture('flaky'), '--version', 'v2')).code, 0);
    const v1Ids = (await webInstances(u)).map((i) => i.id);
    const w = watch(u);
    const rate = 400;
    const { value: dep, load } = await underLoad(
      `${u.info.proxyUrl}/`,
      () => cli(dataDir, 'deploy', 'web', 'v2', '--strategy', 'blue-green'),
      { rate },
    );
    const samples = await w.stop();
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /bluegreen\.switched/);
    assert.match(dep.stdout, /analysis\.fail/);
    assert.match(dep.stdout, /^failed: .*analysis failed \(5xx [\d.]+% of \d+ > 5\.0%/m);
    assert.match(dep.stdout, /every proxy switched back to v1 in \d+ ms/);
    // Every failed request is one v2 answered 500 itself; nothing failed at the switch or the switch back.
    const bad = load.classes['v2 error'] ?? 0;
    assert.ok(bad > 0, describeLoad(load));
    assert.equal(load.failed, bad, describeLoad(load));
    // Budget: all of the load for the analysis window (2 s) plus its reaction (≤ 3 s), 30 % of that.
    const budget = Math.ceil(rate * (2 + 3) * 0.3);
    assert.ok(bad <= budget, `${bad} failed > budget ${budget}`);
    const v2all = (load.classes.v2 ?? 0) + bad;
    assert.ok(Math.abs(bad / v2all - 0.3) < 0.05, `v2 5xx share ${bad}/${v2all}`);
    // After the switch back v1 answers again, and v2 answered nothing after it.
    const v1 = load.timeline.find((x) => x.cls === 'v1');
    const v2e = load.timeline.find((x) => x.cls === 'v2 error');
    assert.ok(v1 && v2e && v1.last > v2e.last, describeLoad(load));
    // The old group was never stopped or restarted: the same three v1 instances, routed, throughout.
    assertV1AlwaysInRotation(samples, v1Ids);
    assert.ok(
      samples.some((s) => s.traffic?.weights?.v2 === 100),
      'the switch to v2 happened',
    );
    const d = await latestDeploy(u);
    assert.equal(d.state, 'failed');
    assert.equal(d.failedRequests, load.failed, 'the proxies counted exactly the failures the load saw');
    const { events } = await deployOf(u, d.id);
    const verdict = events.find((e) => e.type === 'analysis.fail');
    assert.ok(verdict?.data && (verdict.data.failed as number) > 0, JSON.stringify(verdict));
    const back = events.find((e) => e.type === 'bluegreen.reverted');
    assert.ok(back, events.map((e) => e.type).join());
    const verdictAt = verdict.at;
    const backMs = back.at - verdictAt;
    // Instant: the switch back is one routing snapshot, not a restart of anything.
    assert.ok(backMs < 2000, `switched back ${backMs} ms after the verdict`);
    const status = await u.client.get<StatusView>('/v1/status');
    assert.equal(status.services[0]?.currentRelease, 'v1');
    assert.equal(status.services[0]?.lockedBy, null);
    const web = await webInstances(u);
    assert.deepEqual(web.map((i) => i.id).sort(), [...v1Ids].sort());
    assert.ok(web.every((i) => i.version === 'v1' && i.route === 'ready'));
    t.diagnostic(
      `blue-green, 30 % 5xx v2: ${load.failed} failed (all v2's own 500s) of ${load.sent} sent, budget ${budget}; ` +
        `switched back ${backMs} ms after the verdict (${JSON.stringify(back.data)})`,
    );
  });
});

describe('canary of a release that fails readiness', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('fails naming the health check; its weight stays 0; 0 failed requests', async (t) => {
    const extra =
      '    canary: { steps: [ { setWeight: 20 }, { analysis: { window: 2s } }, { setWeight: 50 } ] }\n';
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('graceful'), healthyDeadline: '3s', extra }),
    });
    const u = up;
    assert.equal((await cli(dataDir, 'release', 'web', fixture('unhealthy'), '--version', 'v2')).code, 0);
    const v1Ids = (await webInstances(u)).map((i) => i.id);
    const w = watch(u);
    const { value: dep, load } = await underLoad(`${u.info.proxyUrl}/`, () =>
      cli(dataDir, 'deploy', 'web', 'v2', '--strategy', 'canary'),
    );
    const samples = await w.stop();
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /^failed: .*did not pass its health check \(GET \/healthz/m);
    assert.doesNotMatch(dep.stdout, /v2 gets \d+% of new requests/);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.deepEqual(Object.keys(load.classes), ['v1']);
    assertV1AlwaysInRotation(samples, v1Ids);
    assert.ok(
      samples.every((s) => (s.traffic?.weights?.v2 ?? 0) === 0),
      `v2 got a weight: ${JSON.stringify(samples.map((s) => s.traffic))}`,
    );
    const d = await latestDeploy(u);
    assert.equal(d.strategy, 'canary');
    assert.equal(d.state, 'failed');
    assert.equal(d.failedRequests, 0);
    const { events } = await deployOf(u, d.id);
    for (const e of events.filter((x) => x.type === 'canary.weight')) {
      assert.equal(e.data?.percent, 0, JSON.stringify(e));
    }
    const status = await u.client.get<StatusView>('/v1/status');
    assert.equal(status.services[0]?.currentRelease, 'v1');
    assert.equal(status.services[0]?.lockedBy, null);
    const web = await webInstances(u);
    assert.ok(web.length === 3 && web.every((i) => i.version === 'v1' && i.route === 'ready'));
    t.diagnostic(`canary, unhealthy v2: ${load.failed} failed of ${load.sent} sent`);
  });
});

interface SlowResult {
  start: number;
  end: number;
  status: number;
  body: string;
  instance: string;
}

interface SocketResult {
  instance: string;
  release: string;
  echoed: boolean;
  closedAt: number;
  code: number;
}

/** A WebSocket through the proxy; resolves once the instance's greeting arrived and one echo came back. */
async function openSocket(
  url: string,
): Promise<{ ws: WebSocket; release: string; instance: string; closed: Promise<SocketResult> }> {
  const ws = new WebSocket(url);
  const messages: string[] = [];
  let got: (() => void) | null = null;
  ws.on('message', (d) => {
    messages.push(d.toString());
    got?.();
  });
  const next = (n: number) =>
    new Promise<void>((resolve, reject) => {
      if (messages.length >= n) return resolve();
      got = () => {
        if (messages.length >= n) resolve();
      };
      ws.once('error', reject);
    });
  await next(1);
  const [release = '', instance = ''] = (messages[0] ?? '').split(' ');
  ws.send('ping');
  await next(2);
  const closed = new Promise<SocketResult>((resolve) => {
    ws.once('close', (code) =>
      resolve({ instance, release, echoed: messages[1] === 'ping', closedAt: Date.now(), code }),
    );
  });
  return { ws, release, instance, closed };
}

describe('rolling deploy: a 5 s request and a WebSocket on old instances, across their drain', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('the long requests complete (200, full body) during the drain; the WebSockets get 1001; 0 failed', async (t) => {
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('slow'), instances: 2, drainTimeout: '15s' }),
    });
    const u = up;
    assert.equal((await cli(dataDir, 'release', 'web', fixture('slow'), '--version', 'v2')).code, 0);
    const v1Ids = (await webInstances(u)).map((i) => i.id);
    assert.equal(v1Ids.length, 2);
    const wsUrl = `${u.info.proxyUrl.replace(/^http/, 'ws')}/ws`;
    const sockets = await Promise.all([0, 1, 2, 3].map(() => openSocket(wsUrl)));
    assert.ok(
      sockets.every((s) => s.release === 'v1' && v1Ids.includes(s.instance)),
      'sockets on v1',
    );
    const slow: Promise<SlowResult>[] = [];
    const slowOne = async (): Promise<SlowResult> => {
      const start = Date.now();
      const r = await request(`${u.info.proxyUrl}/slow?ms=5000`);
      const body = await r.body.text();
      return {
        start,
        end: Date.now(),
        status: r.statusCode,
        body,
        instance: String(r.headers['x-instance']),
      };
    };
    // Two long requests per old instance before the deploy starts (least-connections spreads them):
    // the first drain can come before the feed below has reached both instances (failed once in CI).
    for (let i = 0; i < 2 * v1Ids.length; i++) slow.push(slowOne());
    await sleep(300);
    const { value: dep, load } = await underLoad(
      `${u.info.proxyUrl}/`,
      async () => {
        // A new 5 s request every 400 ms for as long as the deploy runs: whichever old instance drains
        // and whenever, requests are in flight on it.
        let done = false;
        const feeding = (async () => {
          while (!done) {
            slow.push(slowOne());
            await sleep(400);
          }
        })();
        const r = await cli(dataDir, 'deploy', 'web', 'v2');
        done = true;
        await feeding;
        return r;
      },
      { rate: 400 },
    );
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    assert.equal(load.failed, 0, describeLoad(load));
    const slows = await Promise.all(slow);
    const closed = await Promise.all(sockets.map((s) => s.closed));
    const d = await latestDeploy(u);
    const { events } = await deployOf(u, d.id);
    const at = (type: string, id: string) =>
      events.find((e) => e.type === type && e.data?.instance === id)?.at ?? Number.NaN;
    // Every long request ends 200 with the whole body of the release that served it.
    for (const s of slows) {
      assert.equal(s.status, 200, JSON.stringify(s));
      assert.ok(
        (v1Ids.includes(s.instance) && s.body === 'v1') || (!v1Ids.includes(s.instance) && s.body === 'v2'),
        JSON.stringify(s),
      );
      assert.ok(s.end - s.start >= 4990, `answered early: ${JSON.stringify(s)}`);
    }
    // Each old instance drained with long requests in flight on it, and they completed during the
    // drain: after it began, before the proxies reported it drained.
    const across: Record<string, number> = {};
    for (const id of v1Ids) {
      const draining = at('instance.draining', id);
      const drained = at('instance.drained', id);
      assert.ok(draining > 0 && drained > draining, `${id}: ${events.map((e) => e.type).join()}`);
      assert.ok(!events.some((e) => e.type === 'instance.drain-timeout'), 'no drain timed out');
      const mine = slows.filter((s) => s.instance === id && s.start < draining && s.end > draining);
      assert.ok(mine.length > 0, `no long request in flight on ${id} when it began draining`);
      for (const s of mine) assert.ok(s.end <= drained + 50, `${id} reported drained before ${s.end}`);
      across[id] = mine.length;
    }
    // Every WebSocket was on an old instance and got a close frame 1001 (not 1006: cut) during its drain.
    for (const c of closed) {
      assert.ok(c.echoed, JSON.stringify(c));
      assert.equal(c.code, 1001, `WebSocket on ${c.instance} closed with ${c.code}`);
      const draining = at('instance.draining', c.instance);
      assert.ok(
        c.closedAt > draining && c.closedAt <= at('instance.stopped', c.instance) + 50,
        JSON.stringify(c),
      );
    }
    const web = await webInstances(u);
    assert.ok(web.length === 2 && web.every((i) => i.version === 'v2' && i.route === 'ready'));
    assert.equal(d.failedRequests, 0);
    t.diagnostic(
      `rolling with long requests and WebSockets: ${load.failed} failed of ${load.sent} sent; ` +
        `${slows.length} 5 s requests all 200 (in flight across a drain: ${JSON.stringify(across)}); ` +
        `WebSocket close codes ${closed.map((c) => c.code).join(',')} after ` +
        `${closed.map((c) => c.closedAt - at('instance.draining', c.instance)).join(',')} ms of drain`,
    );
  });
});

describe('blue-green post-switch analysis across a controller restart', () => {
  const root = tempDir();
  let c: Cluster | undefined;
  after(() => stopCluster(c, root));

  test('killed (SIGKILL) during the analysis: it resumes without a second switch, fails, switches back; only v2’s own answers failed', async (t) => {
    c = await startCluster(root, ['a']);
    const cl = c;
    await cl.client.put('/v1/services/web', {
      ...WEB_SPEC,
      instances: 3,
      strategy: 'blue-green',
      blueGreen: { scaleDownDelay: 30_000 },
      analysis: { maxErrorPercent: 5, minRequests: 20, window: 3000, afterSwitch: true },
    });
    assert.equal((await cli(cl.ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v1')).code, 0);
    assert.equal((await cli(cl.ctlDir, 'release', 'web', fixture('flaky'), '--version', 'v2')).code, 0);
    const first = await cli(cl.ctlDir, 'deploy', 'web', 'v1');
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const status = () => cl.client.get<StatusView>('/v1/status');
    const v1 = (await status()).instances.map((i) => `${i.id}:${i.pid}`).sort();
    assert.equal(v1.length, 3);
    const rate = 300;
    let downMs = 0;
    const { value: done, load } = await underLoad(
      `${cl.proxyUrl}/`,
      async () => {
        const { deploy } = await cl.client.post<{ deploy: DeployRecord }>('/v1/services/web/deploys', {
          version: 'v2',
        });
        for (;;) {
          if ((await events(cl.client, deploy.id)).some((e) => e.type === 'analysis.started')) break;
          await sleep(50);
        }
        const t0 = Date.now();
        await cl.controller()?.kill9();
        await sleep(1000);
        await cl.startController();
        downMs = Date.now() - t0;
        return waitDeploy(cl.client, deploy.id, (d) => d.state === 'failed' || d.state === 'succeeded');
      },
      { rate },
    );
    assert.equal(done.state, 'failed', done.reason ?? '');
    assert.match(done.reason ?? '', /analysis failed \(5xx/);
    const evs = await events(cl.client, done.id);
    const count = (type: string) => evs.filter((e) => e.type === type).length;
    assert.equal(count('bluegreen.switched'), 1, 'one switch, not a second one after the restart');
    assert.equal(count('bluegreen.resumed'), 1, evs.map((e) => e.type).join());
    assert.equal(count('analysis.started'), 2, 'the analysis ran again after the restart');
    assert.equal(count('instance.starting'), 3, 'the new group was started once');
    const switched = evs.find((e) => e.type === 'bluegreen.switched')!;
    const back = evs.find((e) => e.type === 'bluegreen.reverted');
    assert.ok(back, evs.map((e) => e.type).join());
    // Only v2's own 500s failed: nothing at the switch, the restart or the switch back.
    const bad = load.classes['v2 error'] ?? 0;
    assert.ok(bad > 0, describeLoad(load));
    assert.equal(load.failed, bad, describeLoad(load));
    const v2all = (load.classes.v2 ?? 0) + bad;
    assert.ok(Math.abs(bad / v2all - 0.3) < 0.05, `v2 5xx share ${bad}/${v2all}`);
    // Budget: v2 takes all of the load from the switch until the switch back — the controller's
    // downtime, its wait for the agents and proxies to report again (≤ 2 s), one full analysis window
    // (3 s) and its reaction (≤ 3 s) — 30 % of that.
    const budget = Math.ceil(rate * (downMs / 1000 + 2 + 3 + 3) * 0.3);
    assert.ok(bad <= budget, `${bad} failed > budget ${budget} (controller down ${downMs} ms)`);
    // The old group is the same processes: the restart and the revert started nothing of v1.
    const s = await status();
    assert.deepEqual(s.instances.map((i) => `${i.id}:${i.pid}`).sort(), v1);
    assert.ok(s.instances.every((i) => i.version === 'v1' && i.route === 'ready'));
    assert.equal(s.services[0]?.currentRelease, 'v1');
    assert.equal(s.services[0]?.lockedBy, null);
    t.diagnostic(
      `blue-green analysis across a controller SIGKILL: ${load.failed} failed (all v2's own 500s) of ` +
        `${load.sent} sent, budget ${budget}; controller down ${downMs} ms; v2 live ${back.at - switched.at} ms`,
    );
  });
});
