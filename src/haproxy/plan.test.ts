import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RouteInstance, RoutingSnapshot } from '../core/protocol.js';
import {
  type AdapterOptions,
  adminState,
  commandSucceeded,
  type HaServer,
  type HaStat,
  haWeight,
  parseShowStat,
  plan,
  serverName,
} from './plan.js';

const opts: AdapterOptions = { backends: { web: 'be_web' }, prefix: 'nines-', check: false };

function snap(version: number, instances: Partial<RouteInstance>[]): RoutingSnapshot {
  return {
    version,
    services: [
      {
        name: 'web',
        hosts: [],
        pathPrefix: '/',
        mode: 'live',
        health: { path: '/healthz', intervalMs: 200, timeoutMs: 500, rise: 2, fall: 2 },
        instances: instances.map((i, n) => ({
          id: `web-${n}`,
          address: '127.0.0.1',
          port: 4000 + n,
          state: 'ready',
          weight: 1,
          release: 'v1',
          ...i,
        })),
      },
      {
        name: 'other',
        hosts: [],
        pathPrefix: '/o',
        mode: 'live',
        health: { path: '/healthz', intervalMs: 200, timeoutMs: 500, rise: 2, fall: 2 },
        instances: [
          { id: 'other-1', address: '127.0.0.1', port: 5000, state: 'ready', weight: 1, release: 'v1' },
        ],
      },
    ],
  };
}

function server(name: string, s: Partial<HaServer> = {}): HaServer {
  return {
    backend: 'be_web',
    name,
    addr: '127.0.0.1:4000',
    status: 'no check',
    weight: 100,
    scur: 0,
    qcur: 0,
    idle: 0,
    ...s,
  };
}

const stat = (...servers: HaServer[]): HaStat => ({
  servers,
  backends: [{ name: 'be_web', requests: 10, failed: 1 }],
});

describe('haproxy plan', () => {
  it('adds a new ready instance at its weight, then ready; reports it not up until HAProxy shows it', () => {
    const p = plan(snap(3, [{}]), stat(), opts);
    assert.deepEqual(p.commands, [
      'add server be_web/nines-web-0 127.0.0.1:4000 weight 100',
      'set server be_web/nines-web-0 state ready',
    ]);
    assert.deepEqual(p.instances, [{ id: 'web-0', up: false, inflight: 0, drained: false }]);
    assert.deepEqual(p.services, [{ name: 'web', requests: 10, failed: 1 }]);
  });

  it('adds health checks from the service when asked', () => {
    const p = plan(snap(3, [{}]), stat(), { ...opts, check: true });
    assert.deepEqual(p.commands, [
      'add server be_web/nines-web-0 127.0.0.1:4000 weight 100 check inter 200 rise 2 fall 2',
      'enable health be_web/nines-web-0',
      'set server be_web/nines-web-0 state ready',
    ]);
  });

  it('a ready server that HAProxy shows up is reported up with its in-flight count; nothing to do', () => {
    const p = plan(snap(3, [{}]), stat(server('nines-web-0', { scur: 3, qcur: 1 })), opts);
    assert.deepEqual(p.commands, []);
    assert.deepEqual(p.instances, [{ id: 'web-0', up: true, inflight: 4, drained: false }]);
  });

  it('a ready server that is DOWN in HAProxy is not up', () => {
    const p = plan(snap(3, [{}]), stat(server('nines-web-0', { status: 'DOWN' })), opts);
    assert.equal(p.instances[0]?.up, false);
  });

  it('sets weights relative to the heaviest instance (canary ratios survive)', () => {
    const p = plan(
      snap(4, [{ weight: 95 }, { weight: 5 }]),
      stat(server('nines-web-0'), server('nines-web-1', { addr: '127.0.0.1:4001' })),
      opts,
    );
    assert.deepEqual(p.commands, ['set weight be_web/nines-web-1 5']);
    assert.equal(haWeight(0, 10), 0);
    assert.equal(haWeight(1, 1000), 1);
    assert.equal(haWeight(3, 3), 100);
  });

  it('drains in steps: drain → (idle) maint → drained', () => {
    const draining = snap(5, [{ state: 'draining' }]);
    const s1 = plan(draining, stat(server('nines-web-0', { scur: 2 })), opts);
    assert.deepEqual(s1.commands, ['set server be_web/nines-web-0 state drain']);
    assert.deepEqual(s1.instances, [{ id: 'web-0', up: false, inflight: 2, drained: false }]);
    const s2 = plan(draining, stat(server('nines-web-0', { status: 'DRAIN', scur: 1 })), opts);
    assert.deepEqual(s2.commands, [], 'still busy: wait');
    assert.equal(s2.instances[0]?.drained, false);
    const s3 = plan(draining, stat(server('nines-web-0', { status: 'DRAIN' })), opts);
    assert.deepEqual(s3.commands, ['set server be_web/nines-web-0 state maint']);
    assert.equal(s3.instances[0]?.drained, false, 'not drained before HAProxy closed its idle connections');
    const s4 = plan(draining, stat(server('nines-web-0', { status: 'MAINT', idle: 1 })), opts);
    assert.equal(s4.instances[0]?.drained, false);
    const s5 = plan(draining, stat(server('nines-web-0', { status: 'MAINT' })), opts);
    assert.deepEqual(s5.commands, []);
    assert.deepEqual(s5.instances, [{ id: 'web-0', up: false, inflight: 0, drained: true }]);
  });

  it('a draining instance HAProxy never had is drained; maintenance goes straight to maint', () => {
    assert.deepEqual(plan(snap(5, [{ state: 'draining' }]), stat(), opts).instances, [
      { id: 'web-0', up: false, inflight: 0, drained: true },
    ]);
    assert.deepEqual(plan(snap(5, [{ state: 'maintenance' }]), stat(server('nines-web-0')), opts).commands, [
      'set server be_web/nines-web-0 state maint',
    ]);
  });

  it('an instance that is ready again leaves drain/maint', () => {
    const p = plan(snap(6, [{}]), stat(server('nines-web-0', { status: 'MAINT' })), opts);
    assert.deepEqual(p.commands, ['set server be_web/nines-web-0 state ready']);
    assert.equal(p.instances[0]?.up, false);
  });

  it('moves a server whose address changed', () => {
    const p = plan(snap(6, [{ port: 4100 }]), stat(server('nines-web-0')), opts);
    assert.deepEqual(p.commands, ['set server be_web/nines-web-0 addr 127.0.0.1 port 4100']);
    assert.equal(p.instances[0]?.up, false);
  });

  it('removes its own servers the snapshot dropped (maint first, delete once idle), never the operator’s', () => {
    const s = stat(
      server('nines-gone', { scur: 1 }),
      server('nines-gone2', { status: 'MAINT', scur: 1 }),
      server('nines-gone3', { status: 'MAINT' }),
      server('static1'),
      { ...server('nines-x'), backend: 'be_elsewhere' },
    );
    assert.deepEqual(plan(snap(7, []), s, opts).commands, [
      'set server be_web/nines-gone state maint',
      'del server be_web/nines-gone3',
    ]);
  });

  it('with no snapshot yet, touches nothing but stale own servers', () => {
    assert.deepEqual(plan(null, stat(server('static1')), opts), {
      commands: [],
      instances: [],
      services: [],
    });
  });

  it('sanitizes server names', () => {
    assert.equal(serverName('nines-', 'a b/c;d'), 'nines-a_b_c_d');
  });

  it('reads admin state from the status column', () => {
    assert.equal(adminState('MAINT (via be/x)'), 'maint');
    assert.equal(adminState('DRAIN (agent)'), 'drain');
    assert.equal(adminState('UP 1/2'), 'ready');
  });

  it('parses show stat CSV', () => {
    const csv = [
      '# pxname,svname,qcur,qmax,scur,smax,status,weight,addr,req_tot,hrsp_5xx,idle_conn_cur,safe_conn_cur,uweight',
      'fe,FRONTEND,,,0,0,OPEN,,,5,0,,,',
      'be_web,nines-web-0,1,0,2,0,UP,50,127.0.0.1:4000,,,1,2,50',
      'be_web,BACKEND,0,0,2,0,UP,50,,12,3,,,50',
      '',
    ].join('\n');
    assert.deepEqual(parseShowStat(csv), {
      servers: [
        {
          backend: 'be_web',
          name: 'nines-web-0',
          addr: '127.0.0.1:4000',
          status: 'UP',
          weight: 50,
          scur: 2,
          qcur: 1,
          idle: 3,
        },
      ],
      backends: [{ name: 'be_web', requests: 12, failed: 3 }],
    });
    assert.throws(() => parseShowStat('Unknown command'), /no header/);
  });

  it('knows which answers mean success', () => {
    assert.equal(commandSucceeded('add server b/s 1.2.3.4:5', 'New server registered.\n\n'), true);
    assert.equal(
      commandSucceeded('add server b/s 1.2.3.4:5', 'Already exists a server with the same name\n'),
      false,
    );
    assert.equal(commandSucceeded('del server b/s', 'Server deleted.\n'), true);
    assert.equal(commandSucceeded('set server b/s state ready', '\n'), true);
    assert.equal(commandSucceeded('set weight b/s 5', 'No such server.\n'), false);
    assert.equal(commandSucceeded('set server b/s addr 1.2.3.4 port 5', 'IP changed from 1 to 2\n'), true);
  });
});
