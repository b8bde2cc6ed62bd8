import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  budgetLeft,
  deployControls,
  filterEvents,
  fleetTree,
  fromLocalInput,
  incidentsOf,
  isActive,
  locationState,
  matchersFor,
  mixedBanner,
  NO_FILTER,
  parseMatchers,
  parseRoute,
  parseSse,
  percent,
  permission,
  renderChanges,
  resultLine,
  rollbackTarget,
  sortAlerts,
  sparkPath,
  toLocalInput,
  unackedFiring,
  versionSlots,
} from '../src/model.js';
import type {
  AlertView,
  DeployRecord,
  EventRecord,
  HostView,
  InstanceView,
  ServiceView,
  UptimeRow,
} from '../src/types.js';

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
  assert.deepEqual(deployControls({ ...d('running'), strategy: 'canary' }), ['promote', 'pause', 'abort']);
  assert.deepEqual(deployControls({ ...d('running'), strategy: 'blue-green' }), [
    'promote',
    'pause',
    'abort',
  ]);
  assert.deepEqual(deployControls(d('paused')), ['resume', 'abort']);
  assert.deepEqual(deployControls(d('succeeded')), []);
  assert.deepEqual(deployControls(d('failed')), []);
  assert.equal(isActive(d('paused')), true);
  assert.match(
    resultLine({ ...d('succeeded'), finishedAt: 2000, requests: 1531, failedRequests: 0 }, 2000),
    /· 0 of 1,531 requests failed$/,
  );
});

describe('alerts, checks and uptime', () => {
  const alert = (key: string, state: AlertView['state'], o: Partial<AlertView> = {}): AlertView => ({
    dedupKey: key,
    ruleId: 'r',
    labels: { alertname: 'r' },
    severity: 'critical',
    summary: key,
    state,
    suppressed: null,
    updatedAt: 0,
    ...o,
  });

  test('firing unacknowledged first, then acknowledged, pending, resolved; newest first within', () => {
    const list = [
      alert('res', 'resolved', { updatedAt: 9 }),
      alert('acked', 'firing', { acknowledged: true, updatedAt: 8 }),
      alert('pend', 'pending', { updatedAt: 7 }),
      alert('old', 'firing', { updatedAt: 1 }),
      alert('new', 'firing', { updatedAt: 5 }),
    ];
    assert.deepEqual(
      sortAlerts(list).map((a) => a.dedupKey),
      ['new', 'old', 'acked', 'pend', 'res'],
    );
    assert.equal(unackedFiring(list), 2);
  });

  test('ack and silence are admin-only, like every write', () => {
    assert.equal(permission('admin', 'ack').ok, true);
    assert.match(permission('read', 'ack').reason, /read-only: it cannot acknowledge alerts/);
    assert.match(permission('read', 'silence').reason, /cannot silence alerts/);
  });

  test('silence matchers: the server syntax, one per line or comma-separated, errors name the culprit', () => {
    assert.deepEqual(parseMatchers('alertname=down, service!=web\ncheck=~pay.*'), {
      matchers: ['alertname=down', 'service!=web', 'check=~pay.*'],
      error: null,
    });
    assert.match(parseMatchers('  ').error ?? '', /at least one matcher/);
    assert.match(parseMatchers('service web').error ?? '', /"service web" is not a matcher/);
    assert.match(parseMatchers('check=~(').error ?? '', /does not compile/);
    assert.equal(
      matchersFor({ labels: { service: 'web', alertname: 'down', check: 'a b' } }),
      'alertname=down, check="a b", service=web',
    );
    assert.deepEqual(parseMatchers(matchersFor({ labels: { alertname: 'x', zone: 'z1' } })).matchers, [
      'alertname=x',
      'zone=z1',
    ]);
  });

  test('datetime-local round trip on the local clock', () => {
    const at = new Date(2026, 11, 5, 14, 30).getTime();
    assert.equal(toLocalInput(at), '2026-12-05T14:30');
    assert.equal(fromLocalInput('2026-12-05T14:30'), at);
    assert.equal(fromLocalInput('tomorrow'), null);
  });

  test('error budget left as the controller computes it; percent formatting', () => {
    // 99.9 % over 1000 s measured allows 1 s down; 0.25 s down leaves 75 %.
    assert.ok(
      Math.abs((budgetLeft({ upMs: 999_750, degradedMs: 0, downMs: 250 }, 0.999) ?? 0) - 0.75) < 1e-9,
    );
    assert.ok((budgetLeft({ upMs: 990_000, degradedMs: 0, downMs: 10_000 }, 0.999) ?? 0) < 0);
    assert.equal(budgetLeft({ upMs: 0, degradedMs: 0, downMs: 0 }, 0.999), null);
    assert.equal(percent(0.999), '99.9 %');
    assert.equal(percent(0.75, 1), '75 %');
    assert.equal(percent(null), 'no data');
  });

  test('a location is up, down, or stale after three missed intervals (at least 15 s)', () => {
    assert.equal(locationState({ ok: true, at: 1000 }, 1000, 2000), 'up');
    assert.equal(locationState({ ok: false, at: 1000 }, 1000, 2000), 'down');
    assert.equal(locationState({ ok: true, at: 0 }, 1000, 15_001), 'stale');
    assert.equal(locationState({ ok: true, at: 0 }, 30_000, 60_000), 'up');
  });

  test('incidents of every row, newest first', () => {
    const row = (name: string, starts: number[]): UptimeRow => ({
      kind: 'check',
      name,
      window: '30d',
      upMs: 0,
      degradedMs: 0,
      downMs: 0,
      unknownMs: 0,
      maintenanceMs: 0,
      availability: null,
      incidents: starts.map((s) => ({ start: s, end: s + 5, durationMs: 5, cause: 'status 503' })),
    });
    assert.deepEqual(
      incidentsOf([row('a', [1, 30]), row('b', [20])]).map((i) => `${i.subject}@${i.start}`),
      ['a@30', 'b@20', 'a@1'],
    );
  });

  test('sparkline path: scaled to the max (or the floor), gaps break the line', () => {
    const pts = [
      { at: 0, value: 0 },
      { at: 50, value: 10 },
      { at: 100, value: null },
      { at: 150, value: 5 },
    ];
    const { d, max, last } = sparkPath(pts, 150, 20);
    assert.equal(max, 10);
    assert.equal(d, 'M0,20L50,0M150,10');
    assert.deepEqual(last, { x: 150, y: 10 });
    assert.deepEqual(sparkPath(pts, 150, 20).dots, [{ x: 150, y: 10 }], 'the lone value gets a dot');
    assert.equal(sparkPath([{ at: 0, value: 0.001 }], 100, 20, 0.01).max, 0.01);
    assert.equal(sparkPath([], 100, 20).d, '');
  });
});

test('config changes read like nines plan', () => {
  assert.deepEqual(
    renderChanges([
      { path: 'instances', from: 3, to: 5 },
      { path: 'env.LOG_LEVEL', to: 'debug' },
      { path: 'rolling.maxSurge', from: 1 },
    ]),
    ['~ instances: 3 → 5', '+ env.LOG_LEVEL: "debug"', '- rolling.maxSurge: 1'],
  );
});
