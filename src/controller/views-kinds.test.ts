import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serviceSchema } from '../core/config.js';
import type { HostRecord, InstanceRecord, ReleaseRecord, ServiceRecord } from './store/types.js';
import { hostDesiredState, releaseKey, routingSnapshot } from './views.js';

const host: HostRecord = {
  id: 'h1',
  name: 'h1',
  zone: 'a',
  labels: {},
  address: '127.0.0.1',
  registeredAt: 0,
  lastSeenAt: 0,
  key: null,
  revokedAt: null,
};

function service(name: string, spec: Record<string, unknown>): ServiceRecord {
  return {
    name,
    spec: serviceSchema.parse({ command: 'node x.js', ...spec }),
    currentRelease: 'v1',
    lockedBy: null,
    createdAt: 0,
    updatedAt: 0,
    mode: 'live',
    modeOptions: null,
  };
}

function instance(id: string, svc: string): InstanceRecord {
  return {
    id,
    service: svc,
    releaseVersion: 'v1',
    hostId: 'h1',
    desired: 'running',
    route: 'ready',
    deployId: null,
    observed: { id, state: 'running', healthy: true, restarts: 0, port: 4000 },
    createdAt: 0,
    updatedAt: 0,
  };
}

test('a worker service gets no route at the proxies; a web service beside it keeps its own', () => {
  const snap = routingSnapshot(
    1,
    [service('web', {}), service('jobs', { kind: 'worker' })],
    [instance('web-1', 'web'), instance('jobs-1', 'jobs')],
    new Map([['h1', host]]),
  );
  assert.deepEqual(
    snap.services.map((s) => s.name),
    ['web'],
  );
  assert.deepEqual(
    snap.services[0]?.instances.map((i) => i.id),
    ['web-1'],
  );
});

test("a worker's desired instance says so (the agent starts it without PORT and probes its process)", () => {
  const rel = (svc: ServiceRecord): ReleaseRecord => ({
    service: svc.name,
    version: 'v1',
    sha256: 'x',
    size: 1,
    spec: svc.spec,
    stable: true,
    createdBy: 't',
    createdAt: 0,
    seq: 1,
  });
  const web = service('web', {});
  const jobs = service('jobs', { kind: 'worker' });
  const d = hostDesiredState(
    'h1',
    1,
    [instance('web-1', 'web'), instance('jobs-1', 'jobs')],
    new Map([
      [releaseKey('web', 'v1'), rel(web)],
      [releaseKey('jobs', 'v1'), rel(jobs)],
    ]),
  );
  assert.deepEqual(
    d.instances.map((i) => [i.id, i.kind ?? 'web']),
    [
      ['jobs-1', 'worker'],
      ['web-1', 'web'],
    ],
  );
});
