// nines-test: serial — timing assertions (scripts/run-tests.mjs runs this file alone).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import type { StatusView } from '../controller/status.js';
import type { DeployEventRecord, DeployRecord } from '../controller/store/types.js';
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
 * Issue 4: the deploy strategies under real HTTP load through the real proxy at real app processes,
 * with exact counts — a canary that succeeds drops nothing; a canary answering 5xx on 30 % is caught
 * by the analysis and the only failed requests are the ones it answered itself; blue-green drops nothing
 * and a rollback within scaleDownDelay is one routing switch; all-at-once's measured maintenance window
 * matches its plan within 20 %.
 */

async function deployOf(up: Up, id: string): Promise<{ deploy: DeployRecord; events: DeployEventRecord[] }> {
  return up.client.get(`/v1/deploys/${encodeURIComponent(id)}`);
}

async function latestDeploy(up: Up): Promise<DeployRecord> {
  const { deploys } = await up.client.get<{ deploys: DeployRecord[] }>('/v1/services/web/deploys');
  assert.ok(deploys[0]);
  return deploys[0];
}

async function waitDeploy(up: Up, id: string, pred: (d: DeployRecord) => boolean, ms = 60_000) {
  const until = Date.now() + ms;
  for (;;) {
    const { deploy } = await deployOf(up, id);
    if (pred(deploy)) return deploy;
    if (Date.now() > until) throw new Error(`deploy ${id} is still ${deploy.state}`);
    await sleep(100);
  }
}

const CANARY_STEPS =
  '    canary: { steps: [ { setWeight: 20 }, { analysis: { window: 2s } }, { setWeight: 50 }, { analysis: { window: 2s } } ] }\n' +
  '    analysis: { maxErrorPercent: 5, minRequests: 20 }\n';

describe('canary v1 → v2 (20 %, analysis, 50 %, analysis, promote)', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('passes both analyses and promotes with zero failed requests', async (t) => {
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('graceful'), extra: CANARY_STEPS }),
    });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v2')).code, 0);
    const { value: dep, load } = await underLoad(`${up.info.proxyUrl}/`, () =>
      cli(dataDir, 'deploy', 'web', 'v2', '--strategy', 'canary'),
    );
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.ok((load.classes.v1 ?? 0) > 0 && (load.classes.v2 ?? 0) > 0, describeLoad(load));
    assert.equal(dep.stdout.split('analysis.pass').length - 1, 2, dep.stdout);
    t.diagnostic(`canary: 0 failed of ${load.sent} sent`);
    assert.match(dep.stdout, /v2 gets 20% of new requests/);
    const d = await latestDeploy(up);
    assert.equal(d.strategy, 'canary');
    assert.equal(d.state, 'succeeded');
    assert.equal(d.failedRequests, 0);
    const status = await up.client.get<StatusView>('/v1/status');
    const web = status.instances.filter((i) => i.service === 'web');
    assert.equal(web.length, 3);
    assert.ok(web.every((i) => i.version === 'v2' && i.route === 'ready'));
  });
});

describe('canary of a release that answers 5xx on 30 % of requests', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('analysis fails it, weight goes to 0, v1 stays; the only failures are the canary’s own, under budget', async (t) => {
    const steps =
      '    canary: { steps: [ { setWeight: 10 }, { analysis: { window: 2s } }, { setWeight: 50 } ] }\n' +
      '    analysis: { maxErrorPercent: 5, minRequests: 20 }\n';
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), extra: steps }) });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('flaky'), '--version', 'v2')).code, 0);
    const rate = 800;
    const { value: dep, load } = await underLoad(
      `${up.info.proxyUrl}/`,
      () => cli(dataDir, 'deploy', 'web', 'v2', '--strategy', 'canary'),
      { rate },
    );
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /analysis\.fail/);
    assert.match(dep.stdout, /^failed: .*analysis failed \(5xx [\d.]+% of \d+ > 5\.0%/m);
    assert.match(dep.stdout, /v2 back to 0% of new requests/);
    // Every failed request is one the canary answered 500 itself; nothing failed elsewhere.
    const bad = load.classes['v2 error'] ?? 0;
    assert.ok(bad > 0, describeLoad(load));
    assert.equal(load.failed, bad, describeLoad(load));
    // Budget: 10 % of the load for the analysis window (2 s) plus its reaction (≤ 3 s), 30 % of that.
    const budget = Math.ceil(0.1 * rate * (2 + 3) * 0.3);
    assert.ok(bad <= budget, `${bad} failed > budget ${budget}`);
    t.diagnostic(`bad canary: ${bad} failed of ${load.sent} sent (budget ${budget})`);
    // The canary's share stayed near 10 % (all of its answers, good and bad).
    const canary = (load.classes.v2 ?? 0) + bad;
    assert.ok(Math.abs(bad / canary - 0.3) < 0.05, `canary 5xx share ${bad}/${canary}`);
    const d = await latestDeploy(up);
    assert.equal(d.state, 'failed');
    assert.equal(d.failedRequests, load.failed, 'the proxies counted exactly the failures the load saw');
    const { events } = await deployOf(up, d.id);
    const verdict = events.find((e) => e.type === 'analysis.fail');
    assert.ok(verdict?.data && (verdict.data.failed as number) > 0, JSON.stringify(verdict));
    const status = await up.client.get<StatusView>('/v1/status');
    assert.equal(status.services[0]?.currentRelease, 'v1');
    const web = status.instances.filter((i) => i.service === 'web');
    assert.ok(web.length === 3 && web.every((i) => i.version === 'v1' && i.route === 'ready'));
  });
});

describe('blue-green v1 → v2 with a preview, then an instant rollback within scaleDownDelay', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('preview reaches v2 only, the switch and the rollback drop nothing, the rollback starts nothing', async (t) => {
    const extra = '    blueGreen: { scaleDownDelay: 30s, autoPromote: false }\n';
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), extra }) });
    const u = up;
    assert.equal((await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v2')).code, 0);
    const get = async (headers: Record<string, string> = {}) => {
      const r = await request(`${u.info.proxyUrl}/`, { headers });
      return r.body.text();
    };
    let rollbackMs = 0;
    const { load } = await underLoad(`${u.info.proxyUrl}/`, async () => {
      const start = await cli(dataDir, 'deploy', 'web', 'v2', '--strategy', 'blue-green', '--no-wait');
      assert.equal(start.code, 0, start.stderr);
      const id = (await latestDeploy(u)).id;
      await waitDeploy(u, id, (d) => d.state === 'paused');
      assert.equal(await get({ 'x-nines-preview': '1' }), 'v2');
      assert.equal(await get(), 'v1');
      const promote = await cli(dataDir, 'deploy', 'promote', 'web');
      assert.equal(promote.code, 0, promote.stderr);
      const done = await waitDeploy(u, id, (d) => d.state !== 'paused' && d.state !== 'running');
      assert.equal(done.state, 'succeeded', done.reason ?? '');
      await sleep(500);
      assert.equal(await get(), 'v2');
      // The old group still runs (out of rotation) until scaleDownDelay.
      const mid = await u.client.get<StatusView>('/v1/status');
      assert.equal(mid.instances.filter((i) => i.service === 'web').length, 6);
      const t0 = Date.now();
      const rb = await cli(dataDir, 'rollback', 'web');
      rollbackMs = Date.now() - t0;
      assert.equal(rb.code, 0, rb.stdout + rb.stderr);
      assert.match(rb.stdout, /instant rollback/);
      assert.doesNotMatch(rb.stdout, /instance\.starting/);
    });
    assert.equal(load.failed, 0, describeLoad(load));
    assert.ok((load.classes.v1 ?? 0) > 0 && (load.classes.v2 ?? 0) > 0, describeLoad(load));
    const rbDeploy = await latestDeploy(u);
    assert.equal(rbDeploy.kind, 'rollback');
    assert.equal(rbDeploy.state, 'succeeded');
    const took = (rbDeploy.finishedAt ?? 0) - (rbDeploy.startedAt ?? 0);
    assert.ok(took < 1500, `rollback took ${took} ms in the engine (${rollbackMs} ms with the CLI)`);
    t.diagnostic(
      `blue-green: 0 failed of ${load.sent}; rollback ${took} ms in the engine, ${rollbackMs} ms with the CLI`,
    );
    assert.equal(await get(), 'v1');
    const status = await u.client.get<StatusView>('/v1/status');
    assert.equal(status.services[0]?.currentRelease, 'v1');
  });
});

describe('all-at-once v2 → v3 (after a rolling v1 → v2 measured the boot and stop times)', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('the maintenance window users see matches the plan within 20 %, and only maintenance answers fail', async (t) => {
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('graceful'), env: { BOOT_DELAY_MS: '1500' } }),
    });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v2')).code, 0);
    // This deploy is here to measure boot and stop times (the zero-failure claim is rolling.e2e's).
    const rolled = await underLoad(`${up.info.proxyUrl}/`, () => cli(dataDir, 'deploy', 'web', 'v2'), {
      rate: 200,
    });
    assert.equal(rolled.value.code, 0, rolled.value.stdout);
    assert.equal(rolled.load.failed, 0, describeLoad(rolled.load));
    assert.equal((await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v3')).code, 0);
    const { value: dep, load } = await underLoad(
      `${up.info.proxyUrl}/`,
      () => cli(dataDir, 'deploy', 'web', 'v3', '--strategy', 'all-at-once'),
      { rate: 400 },
    );
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    const d = await latestDeploy(up);
    const { events } = await deployOf(up, d.id);
    const plan = events.find((e) => e.type === 'deploy.plan');
    const planned = plan?.data?.windowMs as number;
    assert.ok(planned > 1500 && plan?.data?.measured === true, JSON.stringify(plan));
    const maint = Object.keys(load.classes).find((c) => c.includes('NINES_E_MAINTENANCE'));
    assert.ok(maint, describeLoad(load));
    assert.equal(load.failed, load.classes[maint], `only maintenance answers fail: ${describeLoad(load)}`);
    const seen = load.timeline.find((t) => t.cls === maint);
    assert.ok(seen);
    const measured = seen.last - seen.first;
    t.diagnostic(
      `all-at-once: planned ${planned} ms (boot samples ${JSON.stringify(plan?.data?.bootSamples)}, stop samples ` +
        `${JSON.stringify(plan?.data?.stopSamples)}), users saw maintenance for ${Math.round(measured)} ms`,
    );
    assert.ok(
      Math.abs(measured - planned) <= 0.2 * planned,
      `users saw maintenance for ${measured} ms; the plan said ${planned} ms`,
    );
    const v2last = load.timeline.find((t) => t.cls === 'v2')?.last ?? 0;
    const v3first = load.timeline.find((t) => t.cls === 'v3')?.first ?? 0;
    // Requests in flight on v2 when maintenance began finish (drain); v3 answers only after the last of them.
    assert.ok(
      v2last > 0 && v3first > v2last,
      `no v2 and v3 side by side (v2 last ${v2last}, v3 first ${v3first})`,
    );
    const status = await up.client.get<StatusView>('/v1/status');
    assert.equal(status.services[0]?.mode, 'live');
    assert.equal(status.services[0]?.currentRelease, 'v3');
  });
});

describe('hooks: a failing preDeploy aborts before any traffic moves', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('preDeploy exit 7 for v2 fails the deploy naming it and nothing starts; v1 (hook passed) serves', async () => {
    // The hook runs for the first deploy too (v1: it passes).
    const extra = `    hooks: { preDeploy: { command: 'if [ "$NINES_RELEASE" = v2 ]; then echo migration broke >&2; exit 7; fi', timeout: 10s } }\n`;
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), extra }) });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v2')).code, 0);
    const { value: dep, load } = await underLoad(`${up.info.proxyUrl}/`, () =>
      cli(dataDir, 'deploy', 'web', 'v2'),
    );
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /^failed: .*preDeploy hook `.*` exited with code 7: migration broke/m);
    assert.doesNotMatch(dep.stdout, /instance\.starting/);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.deepEqual(Object.keys(load.classes), ['v1']);
  });
});

describe('analysis without enough traffic is inconclusive: the deploy pauses for a person', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('a canary analysis with no load pauses the deploy; resume goes on to the promotion', async () => {
    const extra =
      '    canary: { steps: [ { setWeight: 50 }, { analysis: { window: 1s } } ] }\n' +
      '    analysis: { minRequests: 50 }\n';
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('graceful'), instances: 2, extra }),
    });
    const u = up;
    assert.equal((await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v2')).code, 0);
    assert.equal((await cli(dataDir, 'deploy', 'web', 'v2', '--strategy', 'canary', '--no-wait')).code, 0);
    const id = (await latestDeploy(u)).id;
    await waitDeploy(u, id, (d) => d.state === 'paused');
    const { events } = await deployOf(u, id);
    assert.ok(
      events.some((e) => e.type === 'analysis.inconclusive'),
      events.map((e) => e.type).join(),
    );
    const resumed = await cli(dataDir, 'deploy', 'resume', 'web');
    assert.equal(resumed.code, 0, resumed.stderr);
    const done = await waitDeploy(u, id, (d) => d.state === 'succeeded' || d.state === 'failed');
    assert.equal(done.state, 'succeeded', done.reason ?? '');
  });
});

describe('rolling with analysis after each batch, of a release that answers 5xx on 30 %', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('the first batch is caught and reverted; only the bad release’s own answers failed', async () => {
    const extra = '    analysis: { maxErrorPercent: 5, minRequests: 20, window: 2s, afterEachBatch: true }\n';
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), extra }) });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('flaky'), '--version', 'v2')).code, 0);
    const rate = 800;
    const { value: dep, load } = await underLoad(
      `${up.info.proxyUrl}/`,
      () => cli(dataDir, 'deploy', 'web', 'v2'),
      {
        rate,
      },
    );
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /^failed: .*analysis failed/m);
    assert.equal(dep.stdout.split('instance.starting').length - 1, 1, 'one batch only');
    const bad = load.classes['v2 error'] ?? 0;
    assert.ok(bad > 0, describeLoad(load));
    assert.equal(load.failed, bad, describeLoad(load));
    // One of four instances for the window plus its reaction: a quarter of the load, 30 % of it.
    const budget = Math.ceil(0.25 * rate * (2 + 3) * 0.3);
    assert.ok(bad <= budget, `${bad} failed > budget ${budget}`);
    const status = await up.client.get<StatusView>('/v1/status');
    const web = status.instances.filter((i) => i.service === 'web');
    assert.ok(web.length === 3 && web.every((i) => i.version === 'v1' && i.route === 'ready'));
  });
});

describe('progressDeadline', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('a deploy that completes no step within it fails and reverts before the healthy deadline', async (t) => {
    up = await startUp({
      dataDir,
      config: serviceYaml({
        source: fixture('graceful'),
        healthyDeadline: '60s',
        extra: '    progressDeadline: 4s\n',
      }),
    });
    assert.equal((await cli(dataDir, 'release', 'web', fixture('unhealthy'), '--version', 'v2')).code, 0);
    const t0 = Date.now();
    const { value: dep, load } = await underLoad(`${up.info.proxyUrl}/`, () =>
      cli(dataDir, 'deploy', 'web', 'v2'),
    );
    const took = Date.now() - t0;
    assert.equal(dep.code, 1, dep.stdout + dep.stderr);
    assert.match(dep.stdout, /^failed: .*no progress within the progress deadline of 4000 ms/m);
    const d = await latestDeploy(up);
    const engineMs = (d.finishedAt ?? 0) - (d.startedAt ?? 0);
    t.diagnostic(
      `progressDeadline: failed after ${engineMs} ms in the engine, ${took} ms with the CLI and load`,
    );
    // Well before the 60 s healthy deadline (4 s + the revert; generous for a loaded machine).
    assert.ok(engineMs < 30_000, `the deploy ran ${engineMs} ms`);
    assert.equal(load.failed, 0, describeLoad(load));
    assert.deepEqual(Object.keys(load.classes), ['v1']);
  });
});
