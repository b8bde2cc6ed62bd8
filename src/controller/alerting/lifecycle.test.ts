import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isNinesError } from '../../core/errors.js';
import { canTransition } from '../../core/lifecycle.js';
import {
  type AlertRecord,
  type AlertRule,
  acknowledge,
  alertLifecycle,
  compare,
  dedupKey,
  evaluateRule,
  ruleSelects,
} from './lifecycle.js';

const rule: AlertRule = {
  id: 'disk_full',
  signal: 'node_filesystem_avail_ratio',
  selector: { mountpoint: '/' },
  op: '<',
  threshold: 0.1,
  forMs: 60_000,
  severity: 'critical',
  labels: { team: 'ops' },
};
const labels = { host: 'h1', mountpoint: '/' };
const s = (value: number | undefined) => ({ signal: rule.signal, labels, value });

describe('alert lifecycle', () => {
  it('allows the documented transitions only', () => {
    assert.ok(canTransition(alertLifecycle, 'inactive', 'pending'));
    assert.ok(canTransition(alertLifecycle, 'pending', 'firing'));
    assert.ok(canTransition(alertLifecycle, 'firing', 'resolved'));
    assert.ok(!canTransition(alertLifecycle, 'firing', 'pending'));
    assert.ok(!canTransition(alertLifecycle, 'inactive', 'resolved'));
  });

  it('compares with every operator', () => {
    assert.ok(compare('>', 2, 1) && compare('>=', 1, 1) && compare('<', 0, 1) && compare('<=', 1, 1));
    assert.ok(compare('==', 1, 1) && compare('!=', 1, 2) && !compare('!=', 1, 1));
  });

  it('selects by signal and selector', () => {
    assert.ok(ruleSelects(rule, s(0)));
    assert.ok(!ruleSelects(rule, { signal: rule.signal, labels: { mountpoint: '/data' } }));
    assert.ok(!ruleSelects(rule, { signal: 'other', labels }));
  });

  it('is pending until the condition held for `for`, then fires once, then resolves', () => {
    let prev: AlertRecord | undefined;
    const t0 = 1_700_000_000_000;
    const e1 = evaluateRule(rule, s(0.05), prev, t0);
    assert.equal(e1.state, 'pending');
    assert.equal(e1.transition, 'pending');
    prev = e1.next;
    const e2 = evaluateRule(rule, s(0.04), prev, t0 + 59_999);
    assert.equal(e2.state, 'pending');
    assert.equal(e2.transition, undefined);
    prev = e2.next;
    const e3 = evaluateRule(rule, s(0.03), prev, t0 + 60_000);
    assert.equal(e3.state, 'firing');
    assert.equal(e3.transition, 'firing');
    assert.equal(e3.next.activeSince, t0);
    assert.equal(e3.next.firedAt, t0 + 60_000);
    prev = e3.next;
    const e4 = evaluateRule(rule, s(0.02), prev, t0 + 70_000);
    assert.equal(e4.state, 'firing');
    assert.equal(e4.transition, undefined, 'no second firing notification');
    prev = e4.next;
    const e5 = evaluateRule(rule, s(0.5), prev, t0 + 80_000);
    assert.equal(e5.state, 'resolved');
    assert.equal(e5.transition, 'resolved');
    assert.equal(e5.next.resolvedAt, t0 + 80_000);
    assert.equal(e5.dedupKey, e1.dedupKey, 'the dedup key is stable across the episode');
  });

  it('a blip shorter than `for` goes back to inactive without a notification', () => {
    const e1 = evaluateRule(rule, s(0.05), undefined, 0);
    const e2 = evaluateRule(rule, s(0.5), e1.next, 30_000);
    assert.equal(e2.state, 'inactive');
    assert.equal(e2.transition, undefined);
    // and the timer restarts
    const e3 = evaluateRule(rule, s(0.05), e2.next, 40_000);
    const e4 = evaluateRule(rule, s(0.05), e3.next, 90_000);
    assert.equal(e4.state, 'pending');
  });

  it('fires at once with for = 0, and no data counts as not met', () => {
    const r0 = { ...rule, forMs: 0 };
    const e = evaluateRule(r0, s(0.01), undefined, 5);
    assert.equal(e.transition, 'firing');
    const gone = evaluateRule(r0, s(undefined), e.next, 10);
    assert.equal(gone.transition, 'resolved');
    assert.equal(gone.next.lastValue, 0.01);
  });

  it('re-fires after resolve as a new episode, unacknowledged', () => {
    const r0 = { ...rule, forMs: 0 };
    const f = evaluateRule(r0, s(0.01), undefined, 0);
    const acked = acknowledge(f.next, 'alice', 1);
    assert.equal(acked.acknowledged, true);
    const r = evaluateRule(r0, s(0.9), acked, 2);
    assert.equal(r.next.acknowledged, false);
    const again = evaluateRule(r0, s(0.01), r.next, 3);
    assert.equal(again.transition, 'firing');
    assert.equal(again.next.firedAt, 3);
    assert.equal(again.next.acknowledged, false);
  });

  it('only a firing alert can be acknowledged', () => {
    assert.throws(
      () => acknowledge({ state: 'resolved' }, 'bob', 0),
      (e: unknown) => isNinesError(e) && e.code === 'NINES_E_INVALID_TRANSITION',
    );
  });

  it('dedup key = hash of rule id + sorted labels', () => {
    const k1 = dedupKey('r', { b: '2', a: '1' });
    const k2 = dedupKey('r', { a: '1', b: '2' });
    assert.equal(k1, k2);
    assert.match(k1, /^[0-9a-f]{32}$/);
    assert.notEqual(dedupKey('r2', { a: '1', b: '2' }), k1);
    assert.notEqual(dedupKey('r', { a: '1', b: '3' }), k1);
    // label boundaries cannot collide
    assert.notEqual(dedupKey('r', { a: '1,b=2' }), dedupKey('r', { a: '1', b: '2' }));
    const e = evaluateRule(rule, s(0.05), undefined, 0);
    assert.equal(
      e.dedupKey,
      dedupKey('disk_full', { host: 'h1', mountpoint: '/', team: 'ops', alertname: 'disk_full' }),
    );
  });
});
