import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  alertsRaised,
  type DrillOptions,
  type DrillReport,
  evaluate,
  phaseStats,
  renderReport,
  validateOptions,
} from './drill.js';

const base: DrillOptions = {
  scenario: 'instance-kill',
  service: 'web',
  proxyUrl: 'http://127.0.0.1:8080',
  rate: 50,
  connections: 8,
  beforeMs: 3000,
  afterMs: 3000,
  recoverTimeoutMs: 60_000,
  maxFailed: 0,
};

const phase = (o: Partial<DrillReport['phases']['before']> = {}) => ({
  sent: 100,
  ok: 100,
  failed: 0,
  p50Ms: 2,
  p99Ms: 9,
  maxMs: 12,
  durationMs: 2000,
  errors: {},
  byStatus: { 200: 100 },
  firstFailures: [],
  ...o,
});

describe('drill options', () => {
  it('accepts bounded load', () => {
    validateOptions(base);
  });
  for (const [name, over, msg] of [
    ['rate', { rate: 5000 }, /--rate must be from 1 to 2000/],
    ['connections', { connections: 0 }, /--connections/],
    ['phase', { beforeMs: 3_600_000 }, /--before/],
    ['outage', { outageMs: 600_000 }, /--outage/],
    ['max failed', { maxFailed: -1 }, /--max-failed/],
    ['scenario', { scenario: 'meteor' }, /unknown scenario/],
    ['proxy path', { proxyUrl: 'http://127.0.0.1:8080/admin' }, /base URL only/],
    ['proxy scheme', { proxyUrl: 'file:///etc/passwd' }, /http/],
    ['proxy url', { proxyUrl: 'not a url' }, /not a URL/],
  ] as const) {
    it(`refuses an unbounded or foreign ${name}`, () => {
      assert.throws(
        () => validateOptions({ ...base, ...(over as Partial<DrillOptions>) }),
        (e: Error & { code?: string }) => e.code === 'NINES_E_VALIDATION' && msg.test(e.message),
      );
    });
  }
});

describe('drill verdict', () => {
  const objective = { maxFailed: 0, maxP99Ms: null };
  it('passes with no failure and a recovery', () => {
    assert.deepEqual(evaluate({ before: phase(), during: phase(), after: phase() }, 1200, objective, null), {
      passed: true,
      reasons: [],
    });
  });
  it('fails on failed requests beyond the objective, no recovery, slow p99, a fault that was not injected', () => {
    const v = evaluate(
      { before: phase(), during: phase({ failed: 3, p99Ms: 800 }), after: phase() },
      null,
      { maxFailed: 2, maxP99Ms: 500 },
      'fault not injected: gone',
    );
    assert.equal(v.passed, false);
    assert.deepEqual(v.reasons, [
      'fault not injected: gone',
      '3 request(s) failed; the objective allows 2',
      'the service did not recover within the timeout',
      'p99 during was 800 ms; the objective is 500 ms',
    ]);
  });
  it('a drill that sent nothing does not pass', () => {
    const empty = phase({ sent: 0, ok: 0, byStatus: {} });
    assert.equal(evaluate({ before: empty, during: empty, after: empty }, 10, objective, null).passed, false);
  });
});

describe('drill report', () => {
  it('phase stats come from the load result, rounded', () => {
    const s = phaseStats({
      sent: 10,
      ok: 9,
      failed: 1,
      byStatus: { 200: 9, 502: 1 },
      errors: {},
      classes: {},
      latencyMs: { p50: 1.234, p90: 2, p99: 3.456, max: 4.5678 },
      durationMs: 1000.4,
      firstFailures: [],
      timeline: [],
    });
    assert.deepEqual(s, {
      sent: 10,
      ok: 9,
      failed: 1,
      p50Ms: 1.23,
      p99Ms: 3.46,
      maxMs: 4.57,
      durationMs: 1000,
      errors: {},
      byStatus: { 200: 9, 502: 1 },
      firstFailures: [],
    });
  });
  it('renders phases, totals and reasons', () => {
    const text = renderReport(
      {
        scenario: 'instance-kill',
        service: 'web',
        target: 'http://127.0.0.1:8080/',
        load: { rate: 50, connections: 8 },
        startedAt: 0,
        finishedAt: 1,
        phases: { before: phase(), during: phase({ failed: 1 }), after: phase() },
        sent: 300,
        failed: 1,
        timeToDetectMs: 120,
        timeToRecoverMs: null,
        fault: {},
        errorRateDuring: 0.01,
        alerts: [
          {
            id: 'k1',
            name: 'ServiceDown',
            severity: 'critical',
            summary: 'web is down',
            firedAt: 2500,
            resolvedAt: null,
          },
        ],
        objective: { maxFailed: 0, maxP99Ms: null },
        passed: false,
        reasons: ['1 request(s) failed; the objective allows 0'],
      },
      'dr-x',
    );
    assert.match(text, /^drill instance-kill of web \(dr-x\): FAILED$/m);
    assert.match(text, /^ {2}during +100 +1 +2 +9$/m);
    assert.match(text, /total 300 sent, 1 failed · detect 120 ms · recover —/);
    assert.match(text, /✗ 1 request\(s\) failed/);
    assert.match(text, /error rate during the fault: 1\.0 %/);
    assert.match(
      text,
      /alerts raised: 1\n +critical +ServiceDown fired \+2\.5 s, still firing — web is down/,
    );
  });
});

describe('alertsRaised', () => {
  const a = (key: string, firedAt: number | undefined, resolvedAt?: number) => ({
    dedupKey: key,
    labels: { alertname: `A-${key}` },
    severity: 'warning',
    summary: `s ${key}`,
    state: resolvedAt === undefined ? 'firing' : 'resolved',
    ...(firedAt !== undefined ? { firedAt } : {}),
    ...(resolvedAt !== undefined ? { resolvedAt } : {}),
  });
  it('keeps what fired between the fault and the end, oldest first, resolved only inside the window', () => {
    const got = alertsRaised(
      [
        a('late', 5000),
        a('early', 900, 950),
        a('in', 2000, 3000),
        a('first', 1000),
        a('never', undefined),
        a('after', 1500, 9000),
      ],
      1000,
      5000,
    );
    assert.deepEqual(
      got.map((x) => [x.name, x.firedAt, x.resolvedAt]),
      [
        ['A-first', 1000, null],
        ['A-after', 1500, null],
        ['A-in', 2000, 3000],
        ['A-late', 5000, null],
      ],
    );
  });
});
