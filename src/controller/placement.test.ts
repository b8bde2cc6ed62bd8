import assert from 'node:assert/strict';
import { test } from 'node:test';
import { placementSchema } from '../core/fleet-config.js';
import { countPlaced, type PlacedInstance, type PlacementHost, placeInstance } from './placement.js';

const host = (id: string, zone: string, o: Partial<PlacementHost> = {}): PlacementHost => ({
  id,
  name: id,
  zone,
  labels: {},
  state: 'ready',
  slots: undefined,
  ...o,
});
const spread = placementSchema.parse({});

/** Place `n` instances one after the other, as the reconciler does; returns host ids. */
function placeMany(hosts: PlacementHost[], n: number, placement = spread, existing: PlacedInstance[] = []) {
  const instances = [...existing];
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    const r = placeInstance({ service: 'web', placement, hosts, instances });
    assert.ok(r.ok, r.ok ? '' : r.reason);
    out.push(r.host.id);
    instances.push({ service: 'web', hostId: r.host.id });
  }
  return out;
}

test('instances spread across zones with a skew of at most 1', () => {
  const hosts = [host('a1', 'a'), host('a2', 'a'), host('a3', 'a'), host('b1', 'b'), host('c1', 'c')];
  const placed = placeMany(hosts, 6);
  const perZone = { a: 0, b: 0, c: 0 } as Record<string, number>;
  for (const id of placed) perZone[hosts.find((h) => h.id === id)?.zone ?? '?']! += 1;
  assert.deepEqual(perZone, { a: 2, b: 2, c: 2 }, 'zone a has 3 hosts but gets no more than its share');
});

test('within a zone, the host with the fewest instances of the service', () => {
  const hosts = [host('a1', 'a'), host('a2', 'a')];
  assert.deepEqual(placeMany(hosts, 4).sort(), ['a1', 'a1', 'a2', 'a2']);
});

test('a larger maxSkew lets a zone run ahead', () => {
  const hosts = [host('a1', 'a'), host('a2', 'a'), host('b1', 'b')];
  const placement = placementSchema.parse({ maxSkew: 2 });
  // With skew 2 the second instance may go to a2 (fewer of the service on the host wins first).
  const existing = [{ service: 'web', hostId: 'a1' }];
  const r = placeInstance({ service: 'web', placement, hosts, instances: existing });
  assert.ok(r.ok);
  assert.ok(['a2', 'b1'].includes(r.host.id));
  const strict = placeInstance({ service: 'web', placement: spread, hosts, instances: existing });
  assert.ok(strict.ok);
  assert.equal(strict.host.id, 'b1', 'skew 1: zone b first');
});

test('constraints: only hosts carrying every required label', () => {
  const hosts = [host('a1', 'a'), host('b1', 'b', { labels: { disk: 'ssd' } })];
  const placement = placementSchema.parse({ constraints: { disk: 'ssd' } });
  assert.deepEqual(placeMany(hosts, 3, placement), ['b1', 'b1', 'b1']);
});

test('capacity: a full host takes nothing, a full zone does not hold the others back', () => {
  const hosts = [host('a1', 'a', { slots: 1 }), host('b1', 'b', { slots: 3 })];
  const other: PlacedInstance[] = [];
  assert.deepEqual(placeMany(hosts, 4, spread, other).sort(), ['a1', 'b1', 'b1', 'b1']);
  const r = placeInstance({
    service: 'web',
    placement: spread,
    hosts,
    instances: [
      { service: 'web', hostId: 'a1' },
      { service: 'api', hostId: 'b1' },
      { service: 'web', hostId: 'b1' },
      { service: 'web', hostId: 'b1' },
    ],
  });
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.reason, /2 full/);
});

test('down, cordoned and draining hosts take nothing; the reason counts them', () => {
  const hosts = [
    host('a1', 'a', { state: 'down' }),
    host('a2', 'a', { state: 'cordoned' }),
    host('b1', 'b', { state: 'draining' }),
    host('b2', 'b', { labels: {} }),
  ];
  const placement = placementSchema.parse({ constraints: { gpu: 'yes' } });
  const r = placeInstance({ service: 'web', placement, hosts, instances: [] });
  assert.equal(r.ok, false);
  assert.equal(
    r.ok ? '' : r.reason,
    'no host can take an instance of web: 4 host(s), 3 not ready (down, cordoned or draining), 1 without gpu=yes',
  );
  const ok = placeInstance({ service: 'web', placement: spread, hosts, instances: [] });
  assert.ok(ok.ok && ok.host.id === 'b2');
});

test('a zone outage: replacements go to the surviving zone', () => {
  const hosts = [host('a1', 'a', { state: 'down' }), host('b1', 'b'), host('b2', 'b')];
  assert.deepEqual(placeMany(hosts, 2).sort(), ['b1', 'b2']);
});

test('avoid: the host an instance failed on is used only when nothing else can take it', () => {
  const hosts = [host('a1', 'a'), host('b1', 'b')];
  const r = placeInstance({
    service: 'web',
    placement: spread,
    hosts,
    instances: [],
    avoid: new Set(['a1']),
  });
  assert.ok(r.ok && r.host.id === 'b1');
  const only = placeInstance({
    service: 'web',
    placement: spread,
    hosts: [host('a1', 'a')],
    instances: [],
    avoid: new Set(['a1']),
  });
  assert.ok(only.ok && only.host.id === 'a1');
});

test('kept counts (countPlaced, updated as instances are placed) place exactly as recounting does', () => {
  const hosts = [
    host('a1', 'a', { slots: 3 }),
    host('a2', 'a'),
    host('b1', 'b', { slots: 2 }),
    host('b2', 'b'),
    host('c1', 'c'),
  ];
  const existing: PlacedInstance[] = [
    { service: 'api', hostId: 'a1' },
    { service: 'api', hostId: 'b1' },
    { service: 'web', hostId: 'c1' },
  ];
  const recounted = placeMany(hosts, 9, spread, existing);
  const counts = countPlaced(existing, 'web');
  const kept: string[] = [];
  for (let k = 0; k < 9; k++) {
    const r = placeInstance({ service: 'web', placement: spread, hosts, instances: [], counts });
    assert.ok(r.ok, r.ok ? '' : r.reason);
    kept.push(r.host.id);
    counts.used.set(r.host.id, (counts.used.get(r.host.id) ?? 0) + 1);
    counts.mine.set(r.host.id, (counts.mine.get(r.host.id) ?? 0) + 1);
  }
  assert.deepEqual(kept, recounted);
});
