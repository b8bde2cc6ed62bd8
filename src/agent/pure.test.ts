import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DesiredInstance } from '../core/protocol.js';
import {
  attemptAfterCrash,
  backoffDelayMs,
  controllerRetryDelayMs,
  RESTART_BACKOFF,
  restartBudget,
  restartDelayMs,
} from './backoff.js';
import { type HealthState, initialHealth, nextHealth } from './health.js';
import { type CurrentInstance, planInstances } from './plan.js';
import { isProcessAlive, parseProcStat, processStartTime } from './procfs.js';

describe('backoff', () => {
  it('restart delays start near 200 ms, double, and are capped at 30 s', () => {
    assert.equal(
      restartDelayMs(0, () => 1),
      200,
    );
    assert.equal(
      restartDelayMs(0, () => 0),
      100,
    );
    assert.equal(
      restartDelayMs(1, () => 1),
      400,
    );
    assert.equal(
      restartDelayMs(3, () => 1),
      1600,
    );
    assert.equal(
      restartDelayMs(20, () => 1),
      30_000,
    );
    assert.equal(
      restartDelayMs(1000, () => 0),
      15_000,
    );
    for (let a = 0; a < 30; a++) {
      const d = restartDelayMs(a);
      assert.ok(d >= 100 && d <= RESTART_BACKOFF.capMs, `attempt ${a}: ${d}`);
    }
  });

  it('jitter spreads delays within [d/2, d]', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) seen.add(restartDelayMs(4));
    assert.ok(seen.size > 5);
    for (const d of seen) assert.ok(d >= 1600 && d <= 3200);
  });

  it('controller retries are capped near 2 s', () => {
    assert.equal(
      controllerRetryDelayMs(0, () => 1),
      200,
    );
    assert.equal(
      controllerRetryDelayMs(50, () => 1),
      2000,
    );
    assert.ok(backoffDelayMs(-5, { baseMs: 10, capMs: 100 }, () => 0) >= 1);
  });

  it('the attempt counter resets after 10 s of healthy running', () => {
    assert.equal(attemptAfterCrash(5, 0), 5);
    assert.equal(attemptAfterCrash(5, 9_999), 5);
    assert.equal(attemptAfterCrash(5, 10_000), 0);
  });
});

describe('health: rise / fall', () => {
  const run = (oks: boolean[], rise: number, fall: number): boolean[] => {
    let s: HealthState = initialHealth;
    return oks.map((ok) => {
      s = nextHealth(s, ok, rise, fall);
      return s.healthy;
    });
  };
  it('needs rise consecutive passes and fall consecutive failures', () => {
    assert.deepEqual(run([true, true, false, true, true, true], 3, 2), [
      false,
      false,
      false,
      false,
      false,
      true,
    ]);
    assert.deepEqual(run([true, false, true, false, false], 1, 2), [true, true, true, true, false]);
    assert.deepEqual(run([true], 0, 0), [true]);
  });
});

const spec = (id: string, desired: 'running' | 'stopped' = 'running', version = '1'): DesiredInstance => ({
  id,
  service: 'web',
  release: {
    version,
    sha256: `sha-${version}`,
    size: 1,
    url: `/v1/services/web/releases/${version}/artifact`,
  },
  command: 'node app.js',
  env: {},
  health: { path: '/healthz', intervalMs: 100, timeoutMs: 100, rise: 1, fall: 1 },
  drainTimeoutMs: 1000,
  desired,
});
const cur = (
  id: string,
  state: CurrentInstance['state'],
  s = spec(id),
  stopRequested = false,
): CurrentInstance => ({
  id,
  state,
  spec: s,
  stopRequested,
});

describe('plan', () => {
  it('creates, keeps, stops and forgets', () => {
    const actions = planInstances(
      [spec('a'), spec('b'), spec('c', 'stopped'), spec('d', 'stopped')],
      [cur('b', 'running'), cur('c', 'running'), cur('d', 'stopping', spec('d'), true), cur('x', 'running')],
    );
    assert.deepEqual(
      actions.map((a) => `${a.kind}:${'spec' in a ? a.spec.id : a.id}`),
      ['create:a', 'keep:b', 'stop:c', 'keep:d', 'forget:x'],
    );
  });
  it('a stopped instance wanted running again is replaced; a failed one only for a new release', () => {
    const kinds = (d: DesiredInstance[], c: CurrentInstance[]) => planInstances(d, c).map((a) => a.kind);
    assert.deepEqual(kinds([spec('a')], [cur('a', 'stopped')]), ['replace']);
    assert.deepEqual(kinds([spec('a', 'stopped')], [cur('a', 'stopped')]), ['keep']);
    assert.deepEqual(kinds([spec('a')], [cur('a', 'failed')]), ['keep']);
    assert.deepEqual(kinds([spec('a', 'running', '2')], [cur('a', 'failed')]), ['replace']);
    assert.deepEqual(kinds([], [cur('a', 'failed')]), ['forget']);
    assert.deepEqual(kinds([spec('a'), spec('a', 'stopped')], []), ['create']);
  });
});

describe('procfs', () => {
  it('reads the start time of a live process and tells dead or reused pids apart', () => {
    const st = processStartTime(process.pid);
    assert.match(st ?? '', /^\d+$/);
    assert.equal(isProcessAlive(process.pid, st), true);
    assert.equal(isProcessAlive(process.pid, '1'), false);
    assert.equal(isProcessAlive(2 ** 22 + 12345), false);
    assert.equal(isProcessAlive(-1), false);
  });
  it('parses a command containing spaces and parentheses', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = 'S';
    const parsed = parseProcStat(`123 (we(ird) cmd) ${fields.join(' ')}`);
    assert.deepEqual(parsed, { state: 'S', pgrp: 5, startTime: '22' });
  });
});

describe('restart policy', () => {
  const policy = { attempts: 2, intervalMs: 1000 };
  it('allows `attempts` restarts within the interval, fails on the next crash', () => {
    assert.equal(restartBudget([100], 100, policy).exceeded, false);
    assert.equal(restartBudget([100, 200], 200, policy).exceeded, false);
    assert.equal(restartBudget([100, 200, 300], 300, policy).exceeded, true);
  });
  it('forgets crashes older than the interval', () => {
    const r = restartBudget([100, 200, 1500], 1500, policy);
    assert.deepEqual(r.recent, [1500]);
    assert.equal(r.exceeded, false);
  });
  it('without a policy, restarts forever', () => {
    assert.equal(restartBudget([1, 2, 3, 4, 5], 5, undefined).exceeded, false);
  });
});
