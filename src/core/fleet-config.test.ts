import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from './config.js';
import { fleetSpec } from './fleet-config.js';
import { effectiveHostState, hostLifecycle, hostSlots } from './host-lifecycle.js';
import { canTransition, transition } from './lifecycle.js';

test('fleet fields are optional; defaults come from fleetSpec', () => {
  const cfg = parseConfig('services:\n  web:\n    command: node s.js\n');
  const web = cfg.services.web;
  assert.ok(web);
  assert.equal(web.placement, undefined, 'a spec that says nothing stays as it was');
  const f = fleetSpec(web);
  assert.equal(f.placement.maxSkew, 1);
  assert.deepEqual(f.restart, { attempts: 5, interval: 60_000 });
  assert.deepEqual(f.scaling, { min: 0, max: 1000 });
});

test('fleet fields parse: constraints, restart policy, scaling with autoscale', () => {
  const cfg = parseConfig(
    [
      'services:',
      '  web:',
      '    command: node s.js',
      '    instances: 3',
      '    placement: { maxSkew: 2, constraints: { disk: ssd }, minAvailable: 2 }',
      '    restart: { attempts: 3, interval: 30s }',
      '    scaling: { min: 2, max: 10, autoscale: { metric: rps, target: 100 } }',
    ].join('\n'),
  );
  const web = cfg.services.web;
  assert.deepEqual(web?.placement, { maxSkew: 2, constraints: { disk: 'ssd' }, minAvailable: 2 });
  assert.deepEqual(web?.restart, { attempts: 3, interval: 30_000 });
  assert.equal(web?.scaling?.autoscale?.scaleDownStabilization, 300_000);
  assert.equal(web?.scaling?.autoscale?.scaleUpStep, 4);
});

test('instances outside min/max and min > max are refused with the field named', () => {
  assert.throws(
    () =>
      parseConfig('services:\n  web:\n    command: x\n    instances: 1\n    scaling: { min: 2, max: 4 }\n'),
    (e: Error & { code?: string }) =>
      e.code === 'NINES_E_CONFIG_INVALID' &&
      /web\.instances: instances \(1\) must lie within scaling\.min \(2\) and scaling\.max \(4\)/.test(
        e.message,
      ),
  );
  assert.throws(
    () => parseConfig('services:\n  web:\n    command: x\n    scaling: { min: 5, max: 4 }\n'),
    /scaling\.min must not exceed scaling\.max/,
  );
});

test('host lifecycle: guarded transitions', () => {
  assert.ok(canTransition(hostLifecycle, 'ready', 'cordoned'));
  assert.ok(canTransition(hostLifecycle, 'draining', 'cordoned'));
  assert.ok(canTransition(hostLifecycle, 'down', 'ready'));
  assert.throws(() => transition(hostLifecycle, 'ready', 'retired' as never), /host: ready → retired/);
  assert.deepEqual(hostLifecycle.terminal, [], 'a host can always come back');
});

test('effective host state: heartbeat first, then operator, then evacuated zone', () => {
  const base = {
    admin: 'ready' as const,
    lastSeenAt: 1000,
    now: 2000,
    hostDownAfterMs: 5000,
    revoked: false,
    zoneEvacuated: false,
  };
  assert.equal(effectiveHostState(base), 'ready');
  assert.equal(effectiveHostState({ ...base, now: 7000 }), 'down');
  assert.equal(effectiveHostState({ ...base, revoked: true }), 'down');
  assert.equal(effectiveHostState({ ...base, zoneEvacuated: true }), 'draining');
  assert.equal(effectiveHostState({ ...base, admin: 'cordoned', zoneEvacuated: true }), 'cordoned');
  assert.equal(effectiveHostState({ ...base, admin: 'draining' }), 'draining');
});

test('host slots come from the slots label', () => {
  assert.equal(hostSlots({ slots: '8' }), 8);
  assert.equal(hostSlots({}), undefined);
  assert.equal(hostSlots({ slots: 'many' }), undefined);
});
