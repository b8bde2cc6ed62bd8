import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { StatusView } from '../controller/status.js';
import type { EventRecord } from '../controller/store/types.js';
import {
  cleanup,
  cli,
  describeLoad,
  fixture,
  serviceYaml,
  startUp,
  tempDir,
  type Up,
  underLoad,
} from './harness.js';

/**
 * Self-healing groups (the reconciler): the instance count is desired state. Scaling up starts and
 * routes new instances; scaling down drains the surplus through the proxy — both under load with
 * exactly zero failed requests, also for an app that exits at once on SIGTERM.
 */
describe('nines scale under load', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('3 → 5 → 1 instances with zero failed requests', async () => {
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('abrupt') }) });
    const { value, load } = await underLoad(
      `${up.info.proxyUrl}/`,
      async () => {
        const a = await cli(dataDir, 'scale', 'web', '5', '--timeout', '30');
        const b = await cli(dataDir, 'scale', 'web', '1', '--timeout', '30');
        return [a, b];
      },
      { minRequests: 3000 },
    );
    for (const r of value) assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(value[0]?.stdout ?? '', /done: web has 5 ready instance\(s\)/);
    assert.match(value[1]?.stdout ?? '', /done: web has 1 ready instance\(s\)/);
    assert.equal(load.failed, 0, describeLoad(load));
    const s = await up.client.get<StatusView>('/v1/status');
    assert.equal(s.instances.length, 1);
    assert.equal(s.services[0]?.desiredInstances, 1);
    assert.equal(s.services[0]?.lockedBy, null);
    const { events } = await up.client.get<{ events: EventRecord[] }>('/v1/events?kind=service.healing');
    assert.ok(events.length >= 2, JSON.stringify(events));
  });

  test('bad counts are refused with a code and change nothing', async () => {
    assert.ok(up);
    const r = await cli(dataDir, 'scale', 'web', 'lots');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /NINES_E_VALIDATION/);
    const missing = await cli(dataDir, 'scale', 'nope', '2');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /NINES_E_SERVICE_NOT_FOUND/);
    const s = await up.client.get<StatusView>('/v1/status');
    assert.equal(s.services[0]?.desiredInstances, 1);
  });
});
