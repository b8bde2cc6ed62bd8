import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  deployControls,
  filterEvents,
  fleetTree,
  isActive,
  mixedBanner,
  NO_FILTER,
  parseRoute,
  parseSse,
  permission,
  resultLine,
  rollbackTarget,
  versionSlots,
} from '../src/model.js';
import type { DeployRecord, EventRecord, HostView, InstanceView, ServiceView } from '../src/types.js';

/** The dashboard's logic without a browser (the browser flow is src/e2e/dashboard.e2e.test.ts). */

const inst = (id: string, version: string, o: Partial<InstanceView> = {}): InstanceView => ({
  id,
  service: 'web',
  version,
  host: 'vm',
  zone: 'local',
  desired: 'running',
  route: 'ready',
  state: 'running',
  healthy: true,
  proxyUp: true,
  port: 1000,
  pid: 1,
  restarts: 0,
  startedAt: 0,
  ...o,
});

const service = (o: Partial<ServiceView> = {}): ServiceView => ({
  name: 'web',
  mode: 'live',
  currentRelease: 'v2',
  desiredInstances: 3,
  lockedBy: null,
  releases: [
    { version: 'v3', sha256: 'c', size: 1, stable: false, createdAt: 3 },
    { version: 'v2', sha256: 'b', size: 1, stable: true, createdAt: 2 },
    { version: 'v1', sha256: 'a', size: 1, stable: true, createdAt: 1 },
  ],
  ...o,
});

describe('permissions by role', () => {
  test('an admin may deploy and roll back', () => {
    assert.deepEqual(permission('admin', 'deploy'), { ok: true, reason: '' });
    assert.deepEqual(permission('admin', 'rollback'), { ok: true, reason: '' });
  });

  test('a read-only token may not, and the reason says so', () => {
    for (const action of ['deploy', 'rollback'] as const) {
      const p = permission('read', action);
      assert.equal(p.ok, false);
      assert.match(p.reason, /read-only/);
      assert.match(p.reason, /admin token/);
    }
  });

  test('node, join and unknown roles may not either', () => {
    for (const role of ['node', 'join', null] as const) assert.equal(permission(role, 'deploy').ok, false);
  });

  test('the role is the first reason; a held lock the second', () => {
    assert.match(permission('read', 'deploy', { lockedBy: 'd-1' }).reason, /read-only/);
    const p = permission('admin', 'deploy', { lockedBy: 'd-1' });
    assert.equal(p.ok, false);
    assert.match(p.reason, /in progress \(d-1\)/);
  });
});

describe('SSE parsing', () => {
  test('complete messages, comments skipped, the unfinished rest kept', () => {
    const r = parseSse(
      'event: status\ndata: {"a":1}\n\n: ping 1\n\nevent: events\ndata: [1,\ndata: 2]\n\nevent: dep',
    );
    assert.deepEqual(r.messages, [
      { event: 'status', data: '{"a":1}' },
      { event: 'events', data: '[1,\n2]' },
    ]);
    assert.equal(r.rest, 'event: dep');
    const next = parseSse(`${r.rest}loys\r\ndata: {}\r\n\r\n`);
    assert.deepEqual(next.messages, [{ event: 'deploys', data: '{}' }]);
    assert.equal(next.rest, '');
  });
});

describe('fleet', () => {
  const hosts: HostView[] = [
    { id: 'h1', name: 'vm', zone: 'local', address: '127.0.0.1', lastSeenAt: 0 },
    { id: 'h2', name: 'b', zone: 'eu-1', address: '10.0.0.2', lastSeenAt: 0 },
  ];
  const fleet = [
    inst('web-1', 'v1'),
    inst('web-2', 'v2'),
    inst('api-1', 'v7', { service: 'api', host: 'b', zone: 'eu-1' }),
  ];

  test('zones → hosts → instances, sorted; filters narrow it', () => {
    const all = fleetTree(hosts, fleet, NO_FILTER);
    assert.deepEqual(
      all.map((z) => [z.zone, z.hosts.map((h) => [h.host.name, h.instances.map((i) => i.id)])]),
      [
        ['eu-1', [['b', ['api-1']]]],
        ['local', [['vm', ['web-1', 'web-2']]]],
      ],
    );
    const v2 = fleetTree(hosts, fleet, { ...NO_FILTER, version: 'v2' });
    assert.deepEqual(
      v2.map((z) => z.zone),
      ['local'],
    );
    assert.equal(fleetTree(hosts, fleet, { ...NO_FILTER, zone: 'eu-1' })[0]?.hosts[0]?.instances.length, 1);
  });

  test('a mixed-version fleet gets a banner; a uniform one does not', () => {
    assert.equal(
      mixedBanner([inst('a', 'v1'), inst('b', 'v1'), inst('c', 'v2')]),
      '2 versions running: v1 ×2, v2 ×1',
    );
    assert.equal(mixedBanner([inst('a', 'v1'), inst('b', 'v1')]), null);
    assert.equal(mixedBanner([inst('a', 'v1'), inst('b', 'v2', { desired: 'stopped' })]), null);
  });

  test('each version gets its own colour slot, in release order', () => {
    const slots = versionSlots([service()], [inst('x', 'v9')]);
    assert.deepEqual(
      [...slots],
      [
        ['v1', 0],
        ['v2', 1],
        ['v3', 2],
        ['v9', 3],
      ],
    );
  });
});

describe('deploys and events', () => {
  test('the rollback target is the newest stable release other than the current one', () => {
    assert.equal(rollbackTarget(service()), 'v1');
    assert.equal(rollbackTarget(service({ currentRelease: 'v1' })), 'v2');
    assert.equal(rollbackTarget(service({ releases: [service().releases[1]!] })), null);
  });

  test('result lines read like the CLI', () => {
    const d: DeployRecord = {
      id: 'd-1',
      service: 'web',
      fromVersion: 'v1',
      toVersion: 'v2',
      strategy: 'rolling',
      kind: 'deploy',
      state: 'succeeded',
      reason: null,
      createdBy: 'admin',
      createdAt: 0,
      startedAt: 1000,
      finishedAt: 9100,
    };
    assert.equal(resultLine(d), 'done: web v1 → v2 in 8.1 s');
    assert.equal(
      resultLine({ ...d, state: 'failed', reason: 'unhealthy' }),
      'failed: web v1 → v2 in 8.1 s: unhealthy',
    );
    assert.equal(resultLine({ ...d, fromVersion: null, state: 'pending' }), 'pending: web ∅ → v2');
  });

  test('the event filter needs every term, case-insensitively', () => {
    const ev = (id: number, kind: string, message: string): EventRecord => ({
      id,
      at: id,
      kind,
      subject: 'web',
      message,
      data: null,
    });
    const events = [
      ev(1, 'deploy.succeeded', 'web is on v2'),
      ev(2, 'deploy.failed', 'Unhealthy'),
      ev(3, 'host.registered', 'vm'),
    ];
    assert.deepEqual(
      filterEvents(events, 'DEPLOY web').map((e) => e.id),
      [1, 2],
    );
    assert.deepEqual(
      filterEvents(events, 'deploy unhealthy').map((e) => e.id),
      [2],
    );
    assert.equal(filterEvents(events, '  ').length, 3);
  });

  test('routes', () => {
    assert.deepEqual(parseRoute(''), { page: 'fleet' });
    assert.deepEqual(parseRoute('#/deploys/d-1'), { page: 'deploys', deployId: 'd-1' });
    assert.deepEqual(parseRoute('#/deploys?service=web&version=v2'), {
      page: 'deploys',
      service: 'web',
      version: 'v2',
    });
    assert.deepEqual(parseRoute('#/nope'), { page: 'fleet' });
  });
});

test('deploy controls follow the deploy state', () => {
  const d = (state: DeployRecord['state']) =>
    ({
      id: 'd-1',
      service: 'web',
      fromVersion: 'v1',
      toVersion: 'v2',
      strategy: 'rolling',
      kind: 'deploy',
      state,
      reason: null,
      createdBy: 'admin',
      createdAt: 0,
      startedAt: 0,
      finishedAt: null,
    }) as DeployRecord;
  assert.deepEqual(deployControls(d('running')), ['pause', 'abort']);
  assert.deepEqual(deployControls(d('paused')), ['resume', 'abort']);
  assert.deepEqual(deployControls(d('succeeded')), []);
  assert.deepEqual(deployControls(d('failed')), []);
  assert.equal(isActive(d('paused')), true);
  assert.match(
    resultLine({ ...d('succeeded'), finishedAt: 2000, requests: 1531, failedRequests: 0 }, 2000),
    /· 0 of 1,531 requests failed$/,
  );
});
