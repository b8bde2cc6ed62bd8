import assert from 'node:assert/strict';
import test from 'node:test';
import { parseConfig } from './config.js';
import {
  deploySettings,
  emptyStats,
  evaluateAnalysis,
  instanceWeights,
  maintenanceEstimate,
  p99,
  planCanary,
} from './strategies.js';

const spec = (yaml: string) => {
  const c = parseConfig(`services:\n  web:\n    command: node app.js\n${yaml}`);
  return c.services.web!;
};

test('deploySettings: defaults for a spec without deploy settings; per-deploy strategy wins', () => {
  const s = deploySettings(spec(''));
  assert.equal(s.strategy, 'rolling');
  assert.equal(s.scaleDownDelay, 30_000);
  assert.equal(s.autoRevert, true);
  assert.equal(s.analysis.afterEachBatch, false);
  assert.equal(s.analysis.afterSwitch, false);
  assert.equal(s.preDeploy, null);
  assert.equal(deploySettings(spec(''), 'canary').strategy, 'canary');
});

test('deploySettings: yaml fields, durations and hooks resolve', () => {
  const s = deploySettings(
    spec(
      [
        '    strategy: blue-green',
        '    blueGreen: { scaleDownDelay: 2s, previewHosts: [preview.example.com], autoPromote: false }',
        '    analysis: { maxErrorPercent: 1, maxP99: 250ms, window: 5s, afterSwitch: true }',
        '    hooks: { preDeploy: { command: ./migrate, timeout: 30s } }',
        '    minHealthyTime: 1s',
        '    autoRevert: false',
      ].join('\n'),
    ),
  );
  assert.equal(s.strategy, 'blue-green');
  assert.equal(s.scaleDownDelay, 2000);
  assert.deepEqual(s.previewHosts, ['preview.example.com']);
  assert.equal(s.autoPromote, false);
  assert.equal(s.analysis.maxP99, 250);
  assert.equal(s.analysis.window, 5000);
  assert.equal(s.analysis.afterEachBatch, false);
  assert.equal(s.analysis.afterSwitch, true);
  assert.deepEqual(s.preDeploy, { command: './migrate', timeout: 30_000 });
  assert.equal(s.minHealthyTime, 1000);
  assert.equal(s.autoRevert, false);
});

test('config: an unknown strategy and a bad canary step are refused with their paths', () => {
  assert.throws(() => spec('    strategy: red-black'), /strategy/);
  assert.throws(() => spec('    canary: { steps: [ { setWeight: 150 } ] }'), /canary\.steps/);
});

test('instanceWeights: a release gets its percent whatever its instance count', () => {
  const inst = [
    { id: 'a', release: 'v1' },
    { id: 'b', release: 'v1' },
    { id: 'c', release: 'v1' },
    { id: 'd', release: 'v2' },
  ];
  const w = instanceWeights({ weights: { v1: 90, v2: 10 } }, inst);
  const share = (r: string) =>
    inst.filter((i) => i.release === r).reduce((a, i) => a + w.get(i.id)!, 0) /
    [...w.values()].reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(share('v2') - 0.1) < 1e-9);
  assert.ok(Math.abs(share('v1') - 0.9) < 1e-9);
  // Not listed: out of rotation (blue-green standby).
  const bg = instanceWeights({ weights: { v2: 100 } }, inst);
  assert.equal(bg.get('a'), 0);
  assert.ok(bg.get('d')! > 0);
  // No split: all alike.
  assert.deepEqual([...instanceWeights(null, inst).values()], [1, 1, 1, 1]);
});

test('planCanary: scales before each weight, always ends promoted', () => {
  const a = planCanary([{ setWeight: 10 }, { pause: {} }, { setWeight: 50 }, { analysis: {} }], 4, 7000);
  assert.deepEqual(a, [
    { kind: 'scale', newInstances: 1 },
    { kind: 'weight', percent: 10 },
    { kind: 'pause', ms: null },
    { kind: 'scale', newInstances: 2 },
    { kind: 'weight', percent: 50 },
    { kind: 'analysis', window: 7000 },
    { kind: 'promote' },
  ]);
  // weight 0 starts nothing
  assert.deepEqual(planCanary([{ setWeight: 0 }], 2, 1000), [
    { kind: 'weight', percent: 0 },
    { kind: 'promote' },
  ]);
});

test('p99: upper bound of the bucket holding the 99th percentile', () => {
  const s = emptyStats();
  s.latency[2] = 98; // ≤5 ms
  s.latency[8] = 2; // ≤500 ms
  assert.equal(p99(s.latency), 500);
  s.latency[2] = 990;
  s.latency[8] = 10;
  assert.equal(p99(s.latency), 5);
  assert.equal(p99(emptyStats().latency), null);
});

test('evaluateAnalysis: pass, fail on 5xx or p99 or vs the old release, inconclusive on too few requests', () => {
  const settings = deploySettings(
    spec('    analysis: { maxErrorPercent: 5, maxP99: 100ms, minRequests: 20 }'),
  ).analysis;
  const stats = (requests: number, failed: number, slow = 0) => {
    const s = emptyStats();
    s.requests = requests;
    s.failed = failed;
    s.latency[3] = requests - slow;
    s.latency[10] = slow;
    return s;
  };
  assert.equal(evaluateAnalysis(settings, stats(100, 1), null).verdict, 'pass');
  const bad = evaluateAnalysis(settings, stats(100, 30), null);
  assert.equal(bad.verdict, 'fail');
  assert.match(bad.reasons.join(), /5xx 30\.0% of 100 > 5\.0%/);
  assert.equal(evaluateAnalysis(settings, stats(100, 0, 5), null).verdict, 'fail');
  assert.equal(evaluateAnalysis(settings, stats(10, 5), null).verdict, 'inconclusive');
  const rel = { ...settings, maxErrorPercent: 100, maxErrorPercentOverStable: 2 };
  assert.equal(evaluateAnalysis(rel, stats(100, 4), stats(100, 1)).verdict, 'fail');
  assert.equal(evaluateAnalysis(rel, stats(100, 2), stats(100, 1)).verdict, 'pass');
});

test('maintenanceEstimate: slowest boot plus median stop; fallback without samples', () => {
  assert.deepEqual(maintenanceEstimate([800, 1200, 5000], [300, 100], 60_000), {
    windowMs: 5200,
    bootMs: 5000,
    stopMs: 200,
    measured: true,
  });
  assert.equal(maintenanceEstimate([], [], 5000).windowMs, 5000);
});
