import assert from 'node:assert/strict';
import { test } from 'node:test';
import { relocate, zoneCapacity } from './capacity.js';
import type { PlacementHost } from './placement.js';

const host = (
  id: string,
  zone: string,
  slots?: number,
  labels: Record<string, string> = {},
): PlacementHost => ({
  id,
  name: id,
  zone,
  labels,
  state: 'ready',
  slots,
});
const on = (service: string, hostId: string) => ({ service, hostId });

test('N+1: a zone is survivable when the others have the slots', () => {
  const hosts = [host('a1', 'a', 2), host('b1', 'b', 4)];
  const instances = [on('web', 'a1'), on('web', 'b1')];
  const [a, b] = zoneCapacity(hosts, instances, [{ name: 'web', placement: undefined }]);
  assert.equal(a?.survivable, true);
  assert.equal(b?.survivable, true);
  assert.equal(a?.freeSlots, 1);
});

test('N+1: names what is missing when a zone cannot be carried', () => {
  const hosts = [host('a1', 'a', 1), host('b1', 'b', 3)];
  const instances = [on('web', 'a1'), on('web', 'b1'), on('web', 'b1'), on('api', 'b1')];
  const caps = zoneCapacity(hosts, instances, [
    { name: 'web', placement: undefined },
    { name: 'api', placement: undefined },
  ]);
  const b = caps.find((c) => c.zone === 'b');
  assert.equal(b?.survivable, false);
  assert.deepEqual(
    b?.shortfall.map((s) => [s.service, s.missing]),
    [
      ['web', 2],
      ['api', 1],
    ],
  );
  assert.match(b?.shortfall[0]?.reason ?? '', /full/);
});

test('constraints count: instances that need a label only another zone lacks cannot move', () => {
  const hosts = [host('a1', 'a', undefined, { disk: 'ssd' }), host('b1', 'b')];
  const short = relocate(hosts, [on('db', 'a1')], new Set(['a1']), [
    { name: 'db', placement: { maxSkew: 1, constraints: { disk: 'ssd' } } },
  ]);
  assert.equal(short[0]?.missing, 1);
  assert.match(short[0]?.reason ?? '', /without disk=ssd/);
});
