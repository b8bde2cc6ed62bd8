import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AutoscaleInput, autoscale } from './autoscale.js';

const base: AutoscaleInput = {
  now: 1_000_000,
  current: 4,
  perInstance: 100,
  target: 100,
  min: 2,
  max: 20,
  scaleUpStep: 4,
  stabilizationMs: 300_000,
  history: [],
};

test('on target (within 10 %): hold', () => {
  assert.equal(autoscale({ ...base, perInstance: 108 }).desired, 4);
  assert.equal(autoscale({ ...base, perInstance: 92 }).desired, 4);
});

test('scale up to ceil(current × metric / target), at most scaleUpStep at once, at most max', () => {
  assert.equal(autoscale({ ...base, perInstance: 150 }).desired, 6);
  const big = autoscale({ ...base, perInstance: 400 });
  assert.equal(big.desired, 8, 'wanted 16, step limit 4');
  assert.match(big.reason, /step limit 4; 16 wanted/);
  assert.equal(autoscale({ ...base, current: 18, perInstance: 400 }).desired, 20);
});

test('scale down only to the highest recommendation within the stabilization window', () => {
  // A minute ago the load wanted 8; now it wants 2: hold at the window's max, capped by current.
  const history = [{ at: base.now - 60_000, desired: 8 }];
  const held = autoscale({ ...base, current: 6, perInstance: 30, history });
  assert.equal(held.desired, 6);
  assert.match(held.reason, /stabilization window/);
  // Once that recommendation left the window, scale down (not below min).
  const old = [{ at: base.now - 301_000, desired: 8 }];
  const down = autoscale({ ...base, current: 6, perInstance: 30, history: old });
  assert.equal(down.desired, 2);
  assert.equal(down.history.length, 1, 'pruned');
});

test('within min and max whatever the metric', () => {
  assert.equal(
    autoscale({ ...base, perInstance: 0 }).desired,
    2,
    'idle with nothing else in the window: down to min',
  );
  assert.equal(autoscale({ ...base, current: 1, perInstance: 100 }).desired, 2, 'raised to min');
  assert.equal(autoscale({ ...base, current: 30, perInstance: 100 }).desired, 20, 'lowered to max');
});

test('the autoscaler measures proxy rps per serving instance and sets the instance count', async () => {
  const { openSqliteStore } = await import('../store/sqlite.js');
  const { Hub } = await import('../hub.js');
  const { Autoscaler } = await import('./autoscaler.js');
  const { serviceSchema } = await import('../../core/config.js');
  const { pino } = await import('pino');
  let now = 1_000_000;
  const store = await openSqliteStore({ file: ':memory:' });
  const hub = new Hub({ now: () => now });
  const spec = serviceSchema.parse({
    command: 'x',
    instances: 2,
    scaling: { min: 1, max: 10, autoscale: { metric: 'rps', target: 50, scaleUpStep: 2 } },
  });
  await store.upsertService('web', spec);
  await store.insertRelease({
    service: 'web',
    version: 'v1',
    sha256: 'a'.repeat(64),
    size: 1,
    spec,
    createdBy: 'test',
    createdAt: now,
  });
  await store.setCurrentRelease('web', 'v1');
  for (const id of ['web-1', 'web-2']) {
    await store.insertInstance({
      id,
      service: 'web',
      releaseVersion: 'v1',
      hostId: 'h1',
      desired: 'running',
      route: 'ready',
      deployId: null,
      observed: null,
      createdAt: now,
      updatedAt: now,
    });
  }
  const scaler = new Autoscaler({ store, hub, logger: pino({ level: 'silent' }), now: () => now });
  const report = (requests: number) => hub.proxyReport('p1', 1, [], [{ name: 'web', requests, failed: 0 }]);
  report(0);
  await scaler.tick(); // first sample
  now += 10_000;
  report(4000); // 400 rps over 2 instances: 200 each, target 50 → 8 wanted, step 2 → 4
  await scaler.tick();
  const svc = await store.getService('web');
  assert.equal(svc?.spec.instances, 4);
  const events = await store.listEvents({ kind: 'service.autoscaled' });
  assert.match(events[0]?.message ?? '', /scale up 2 → 4 \(step limit 2; 8 wanted\)/);
  await store.close();
});

test('meanCpu: the mean of the instances that reported CPU; undefined when none did', async () => {
  const { meanCpu } = await import('./autoscale.js');
  assert.equal(meanCpu([80, undefined, 40]), 60);
  assert.equal(meanCpu([undefined, undefined]), undefined);
  assert.equal(meanCpu([]), undefined);
});

test('cpu target tracking: mean instance CPU from the agents sets the count; stabilized scale-down; min', async () => {
  const { openSqliteStore } = await import('../store/sqlite.js');
  const { Hub } = await import('../hub.js');
  const { Autoscaler } = await import('./autoscaler.js');
  const { serviceSchema } = await import('../../core/config.js');
  const { pino } = await import('pino');
  let now = 1_000_000;
  const store = await openSqliteStore({ file: ':memory:' });
  const hub = new Hub({ now: () => now });
  const spec = serviceSchema.parse({
    command: 'x',
    instances: 2,
    scaling: {
      min: 2,
      max: 10,
      autoscale: { metric: 'cpu', target: 50, scaleUpStep: 3, scaleDownStabilization: '60s' },
    },
  });
  await store.upsertService('web', spec);
  await store.insertRelease({
    service: 'web',
    version: 'v1',
    sha256: 'a'.repeat(64),
    size: 1,
    spec,
    createdBy: 'test',
    createdAt: now,
  });
  await store.setCurrentRelease('web', 'v1');
  for (const id of ['web-1', 'web-2']) {
    await store.insertInstance({
      id,
      service: 'web',
      releaseVersion: 'v1',
      hostId: 'h1',
      desired: 'running',
      route: 'ready',
      deployId: null,
      observed: null,
      createdAt: now,
      updatedAt: now,
    });
  }
  const scaler = new Autoscaler({ store, hub, logger: pino({ level: 'silent' }), now: () => now });
  const report = (cpu: Array<number | undefined>) =>
    hub.agentReport(
      'h1',
      1,
      cpu.map((c, k) => ({
        id: `web-${k + 1}`,
        state: 'running' as const,
        healthy: true,
        restarts: 0,
        ...(c === undefined ? {} : { cpu: c }),
      })),
    );
  const instances = async () => (await store.getService('web'))?.spec.instances;

  report([undefined, undefined]);
  await scaler.tick();
  assert.equal(await instances(), 2, 'no CPU reported: no decision');
  assert.match((await store.listEvents({ kind: 'service.autoscaled' }))[0]?.message ?? '', /no CPU reported/);

  report([190, 170]); // mean 180 % of a core, target 50: 8 wanted, step 3 → 5
  await scaler.tick();
  assert.equal(await instances(), 5);
  assert.match(
    (await store.listEvents({ kind: 'service.autoscaled' }))[0]?.message ?? '',
    /180 per instance, target 50: scale up 2 → 5 \(step limit 3; 8 wanted\)/,
  );

  report([5, 5]); // idle: 1 wanted, but the window still holds the 5 recommended a moment ago
  now += 30_000;
  await scaler.tick();
  assert.equal(await instances(), 5);
  now += 61_000; // past the stabilization window: down, to min 2
  await scaler.tick();
  assert.equal(await instances(), 2);
  await store.close();
});
