import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { packDirectory } from '../../core/artifact.js';
import { parseConfig } from '../../core/config.js';
import { deploySettings } from '../../core/strategies.js';
import type { HostRecord, InstanceRecord, ReleaseRecord, ServiceRecord } from '../store/types.js';
import { routingSnapshot } from '../views.js';
import { instanceDurations } from './allatonce.js';
import { windowByRelease } from './analysis.js';
import { postSwitchWindow, switchBackSplit, switchedBy } from './bluegreen.js';
import { runHook } from './hooks.js';

const spec = parseConfig('services:\n  web:\n    command: node server.js\n').services.web!;

function svc(traffic: ServiceRecord['traffic']): ServiceRecord {
  return {
    name: 'web',
    spec,
    currentRelease: 'v1',
    lockedBy: null,
    createdAt: 0,
    updatedAt: 0,
    mode: 'live',
    modeOptions: null,
    traffic,
  };
}

function inst(id: string, release: string): InstanceRecord {
  return {
    id,
    service: 'web',
    releaseVersion: release,
    hostId: 'h1',
    desired: 'running',
    route: 'ready',
    deployId: null,
    observed: { id, state: 'running', healthy: true, port: 4000 + Number(id.slice(1)), restarts: 0 },
    createdAt: 0,
    updatedAt: 0,
  };
}

const hosts = new Map<string, HostRecord>([
  [
    'h1',
    {
      id: 'h1',
      name: 'h1',
      zone: 'z',
      labels: {},
      address: '127.0.0.1',
      registeredAt: 0,
      lastSeenAt: 0,
      key: null,
      revokedAt: null,
    },
  ],
]);
const fleet = [inst('i1', 'v1'), inst('i2', 'v1'), inst('i3', 'v1'), inst('i4', 'v2')];

test('routing snapshot: a canary split becomes weighted instance weights with the exact share', () => {
  const s = routingSnapshot(1, [svc({ weights: { v1: 80, v2: 20 } })], fleet, hosts);
  const web = s.services[0]!;
  assert.equal(web.balance, 'weighted');
  const total = web.instances.reduce((a, i) => a + i.weight, 0);
  const v2 = web.instances.filter((i) => i.release === 'v2').reduce((a, i) => a + i.weight, 0);
  assert.ok(Math.abs(v2 / total - 0.2) < 1e-9);
});

test('routing snapshot: a preview release moves to a previewOf entry; none of it stays in the service', () => {
  const s = routingSnapshot(1, [svc({ preview: 'v2', previewHosts: ['p.example'] })], fleet, hosts);
  assert.equal(s.services.length, 2);
  const [web, preview] = s.services;
  assert.deepEqual(
    web?.instances.map((i) => i.id),
    ['i1', 'i2', 'i3'],
  );
  assert.equal(preview?.name, 'web~preview');
  assert.equal(preview?.previewOf, 'web');
  assert.deepEqual(preview?.hosts, ['p.example']);
  assert.deepEqual(
    preview?.instances.map((i) => i.id),
    ['i4'],
  );
  // No split: as before.
  const plain = routingSnapshot(1, [svc(null)], fleet, hosts);
  assert.equal(plain.services.length, 1);
  assert.ok(plain.services[0]!.instances.every((i) => i.weight === 1));
});

test('windowByRelease: per-release differences across proxies; a counter that went down counts from 0', () => {
  const lat = (n: number) => [n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const before = new Map([
    ['p1\u0000i1', { requests: 100, failed: 1, latency: lat(100) }],
    ['p1\u0000i4', { requests: 10, failed: 3, latency: lat(10) }],
    ['p2\u0000i4', { requests: 50, failed: 0, latency: lat(50) }],
  ]);
  const after = new Map([
    ['p1\u0000i1', { requests: 150, failed: 1, latency: lat(150) }],
    ['p1\u0000i4', { requests: 20, failed: 6, latency: lat(20) }],
    ['p2\u0000i4', { requests: 5, failed: 2, latency: lat(5) }], // proxy p2 restarted
  ]);
  const w = windowByRelease(before, after, new Map(fleet.map((i) => [i.id, i.releaseVersion])));
  assert.equal(w.get('v1')?.requests, 50);
  assert.equal(w.get('v1')?.failed, 0);
  assert.equal(w.get('v2')?.requests, 15);
  assert.equal(w.get('v2')?.failed, 5);
  assert.equal(w.get('v2')?.latency[0], 15);
});

test('instanceDurations: pairs each instance’s start and end events', () => {
  const ev = (at: number, type: string, instance: string) => ({
    deployId: 'd',
    seq: at,
    at,
    type,
    message: '',
    data: { instance },
  });
  assert.deepEqual(
    instanceDurations(
      [
        ev(0, 'instance.starting', 'a'),
        ev(5, 'instance.starting', 'b'),
        ev(900, 'instance.routed', 'a'),
        ev(1300, 'instance.routed', 'b'),
      ],
      'instance.starting',
      'instance.routed',
    ),
    [900, 1295],
  );
});

test('runHook: runs in the unpacked release with NINES_* set; failure and timeout are reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-hook-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(
    join(src, 'migrate.sh'),
    'echo "migrating $NINES_SERVICE to $NINES_RELEASE from $NINES_FROM_RELEASE"\n',
  );
  const art = join(dir, 'v2.tgz');
  const { sha256, size } = await packDirectory(src, art);
  const release: ReleaseRecord = {
    service: 'web',
    version: 'v2',
    sha256,
    size,
    spec,
    stable: false,
    createdBy: 't',
    createdAt: 0,
    seq: 1,
  };
  const deploy = {
    id: 'd-1',
    service: 'web',
    fromVersion: 'v1',
    toVersion: 'v2',
    strategy: 'rolling' as const,
    kind: 'deploy' as const,
    state: 'running' as const,
    reason: null,
    createdBy: 't',
    createdAt: 0,
    startedAt: 0,
    finishedAt: null,
    requests: null,
    failedRequests: null,
  };
  const signal = new AbortController().signal;
  const ok = await runHook(
    'preDeploy',
    { command: 'sh migrate.sh', timeout: 5000 },
    deploy,
    release,
    art,
    signal,
  );
  assert.equal(ok.ok, true);
  assert.equal(ok.output, 'migrating web to v2 from v1');
  const bad = await runHook(
    'preDeploy',
    { command: 'echo nope >&2; exit 3', timeout: 5000 },
    deploy,
    release,
    art,
    signal,
  );
  assert.deepEqual([bad.ok, bad.code, bad.output], [false, 3, 'nope']);
  const t0 = Date.now();
  const slow = await runHook(
    'preDeploy',
    { command: 'sleep 30', timeout: 300 },
    deploy,
    release,
    art,
    signal,
  );
  assert.equal(slow.ok, false);
  assert.equal(slow.timedOut, true);
  assert.ok(Date.now() - t0 < 5000, 'the timeout killed it');
});

test('blue-green post-switch analysis: only when asked for and there is an old group to go back to', () => {
  const base = deploySettings(spec);
  assert.equal(postSwitchWindow(base, 'v1'), null);
  const on = { analysis: { ...base.analysis, afterSwitch: true, window: 2000 } };
  assert.equal(postSwitchWindow(on, 'v1'), 2000);
  // A first deploy has nothing to switch back to: no analysis can revert it.
  assert.equal(postSwitchWindow(on, null), null);
});

test('blue-green revert: switch back to the old release only once the switch happened', () => {
  // Preview phase: users are on the old group already; the revert only stops the preview group.
  assert.equal(switchBackSplit({ preview: 'v2', previewHosts: [] }, 'v1'), null);
  assert.equal(switchBackSplit(null, 'v1'), null);
  // Switched (the old group waits as standby): every new request back to it, the standby cleared.
  const switched = { weights: { v2: 100 }, standby: { release: 'v1', until: 1, deployId: 'd' } };
  assert.deepEqual(switchBackSplit(switched, 'v1'), { weights: { v1: 100 } });
  assert.equal(switchBackSplit(switched, null), null);
});

test('blue-green resume: a deploy that switched before a controller restart is not previewed and switched again', () => {
  const switched = { weights: { v2: 100 }, standby: { release: 'v1', until: 1, deployId: 'd1' } };
  assert.equal(switchedBy(switched, 'd1', 'v2'), true);
  // Another deploy's standby (an earlier blue-green), the preview phase, or another release: not switched.
  assert.equal(switchedBy(switched, 'd2', 'v2'), false);
  assert.equal(switchedBy({ preview: 'v2' }, 'd1', 'v2'), false);
  assert.equal(switchedBy(switched, 'd1', 'v3'), false);
  assert.equal(switchedBy(null, 'd1', 'v2'), false);
});
