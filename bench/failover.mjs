#!/usr/bin/env node
// bench/failover: how long the platform takes to route around a failure, and what the load sees.
// A controller, two agents (zones a and b, one host each), one proxy and 4 instances of a small app
// (answers after 5 ms) under a steady load through the proxy. Scenarios, one after the other:
//   1. instance loss — one instance's process gets SIGKILL through its agent (the drill fault channel);
//   2. host/zone loss — the agent of zone b and every process it started get SIGKILL.
// For each: failed requests, time until the controller notices (detect), until no lost instance is up
// in the proxy any more or it is back healthy (re-routed), until the service has its full healthy count
// again (recovered), and p99 latency before and during.
//   3. leader kill — with NINES_TEST_PG_URL (scripts/ci-postgres.sh): three controllers on one PostgreSQL
//      database (lease timeout --lease-ms, default 3000), an agent and a proxy given all three URLs, the
//      same service; the leader gets SIGKILL under load. Time until a follower holds the lease (new
//      leader) and until it serves writes (a service write through it commits and its reconciler acts on
//      it: an instance of a scaled-up probe service is placed), failed requests and p99 during.
//      Without NINES_TEST_PG_URL the row says it was skipped and why.
// Prints a table and, last, one JSON line.
// Usage: npm run bench:failover [-- --rate 300 --lease-ms 3000]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { printResultLine, printTable } from './lib/table.mjs';

const root = new URL('..', import.meta.url).pathname;
const h = await import(join(root, 'dist', 'e2e', 'harness.js'));
const { Client } = await import(join(root, 'dist', 'cli', 'client.js'));
const { startLoad } = await import(join(root, 'dist', 'drill', 'loadgen.js'));
const { values } = parseArgs({
  options: { rate: { type: 'string', default: '300' }, 'lease-ms': { type: 'string', default: '3000' } },
});
const rate = Number(values.rate);
const leaseMs = Number(values['lease-ms']);
const PG = process.env.NINES_TEST_PG_URL;
const INSTANCES = 4;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(ms, check, every = 20) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) return undefined;
    await sleep(every);
  }
}

const tmp = h.tempDir('nines-bench-failover-');
const ctlDir = join(tmp, 'controller');
const procs = [];
try {
  const port = await h.freePort();
  const url = `http://127.0.0.1:${port}`;
  procs.push(await h.spawnCli(['--data-dir', ctlDir, 'controller', '--port', String(port)]));
  const agents = {};
  for (const zone of ['a', 'b']) {
    const jt = await h.cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    const token = JSON.parse(jt.stdout).token;
    const dir = join(tmp, `agent-${zone}`);
    const p = await h.spawnCli([
      '--data-dir',
      dir,
      'agent',
      '--controller',
      url,
      '--join-token',
      token,
      '--zone',
      zone,
      '--name',
      `host-${zone}`,
    ]);
    agents[zone] = { proc: p, dir };
    procs.push(p);
  }
  const proxy = await h.spawnCli([
    '--data-dir',
    join(tmp, 'proxy'),
    'proxy',
    '--controller',
    url,
    '--token-file',
    join(ctlDir, 'node-token'),
    '--port',
    '0',
  ]);
  procs.push(proxy);
  const client = new Client({ url, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
  await client.put('/v1/services/web', {
    command: 'node server.js',
    instances: INSTANCES,
    env: { RESPONSE_DELAY_MS: '5' },
    health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
    drainTimeout: 5000,
    healthyDeadline: 15_000,
  });
  const rel = await h.cli(ctlDir, 'release', 'web', h.fixture('graceful'), '--version', 'v1');
  if (rel.code !== 0) throw new Error(rel.stderr);
  const dep = await h.cli(ctlDir, 'deploy', 'web', 'v1');
  if (dep.code !== 0) throw new Error(dep.stdout + dep.stderr);

  const status = () => client.get('/v1/status');
  const serving = (s) =>
    s.instances.filter(
      (i) => i.service === 'web' && i.route === 'ready' && i.state === 'running' && i.healthy && i.proxyUp,
    );
  const full = async () => (serving(await status()).length >= INSTANCES ? true : undefined);
  if ((await until(30_000, full)) === undefined)
    throw new Error('the service never had all its instances up');

  const target = `${proxy.ready}/`;
  await startLoad({ url: target, rate, connections: 32, durationMs: 1000 }).done; // warm-up
  const baseline = await startLoad({ url: target, rate, connections: 32, durationMs: 3000 }).done;

  /** Runs `inject` under load; returns the row for the table. */
  async function scenario(name, inject, lostOf) {
    const before = await status();
    const load = startLoad({ url: target, rate, connections: 32, durationMs: 180_000, timeoutMs: 10_000 });
    await sleep(1000);
    const t0 = Date.now();
    const lost = await inject(before);
    const lostIds = lostOf(before, lost);
    const restartsOf = new Map(before.instances.map((i) => [i.id, i.restarts]));
    let detectAt;
    let rerouteAt;
    const recoveredAt = await until(120_000, async () => {
      const s = await status();
      const now = Date.now();
      const mine = lostIds.map((id) => s.instances.find((i) => i.id === id));
      if (
        detectAt === undefined &&
        mine.some((i) => !i || !i.healthy || !/^running$/.test(i.state) || i.restarts > restartsOf.get(i.id))
      ) {
        detectAt = now;
      }
      const back = (i) =>
        i && i.state === 'running' && i.healthy && i.proxyUp && i.restarts > restartsOf.get(i.id);
      if (rerouteAt === undefined && mine.every((i) => !i || !i.proxyUp || back(i))) rerouteAt = now;
      return detectAt !== undefined && rerouteAt !== undefined && serving(s).length >= INSTANCES
        ? now
        : undefined;
    });
    await sleep(1000);
    const r = await load.stop();
    return {
      scenario: name,
      sent: r.sent,
      failed: r.failed,
      'detect ms': detectAt === undefined ? null : detectAt - t0,
      're-routed ms': rerouteAt === undefined ? null : rerouteAt - t0,
      'recovered ms': recoveredAt === undefined ? null : recoveredAt - t0,
      'p99 before ms': Math.round(baseline.latencyMs.p99 * 10) / 10,
      'p99 during ms': Math.round(r.latencyMs.p99 * 10) / 10,
      'max ms': Math.round(r.latencyMs.max),
      // Connection errors and non-2xx answers, by code/status.
      errors: {
        ...r.errors,
        ...Object.fromEntries(Object.entries(r.byStatus).filter(([code]) => !code.startsWith('2'))),
      },
    };
  }

  const rows = [];
  rows.push(
    await scenario(
      'instance loss (SIGKILL via agent)',
      async () =>
        (await client.post('/v1/drills/faults', { kind: 'kill-instance', service: 'web' })).instance,
      (_before, id) => [id],
    ),
  );
  rows.push(
    await scenario(
      'host/zone loss (agent b + its apps, SIGKILL)',
      async () => {
        const b = agents.b;
        await b.proc.kill9();
        for (const pid of h.pidsUnder(b.dir)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {}
        }
        return 'host-b';
      },
      (before) => {
        const hostB = before.instances
          .filter((i) => i.service === 'web' && i.host === 'host-b')
          .map((i) => i.id);
        return hostB;
      },
    ),
  );
  for (const p of procs.splice(0).reverse()) await p.kill9().catch(() => {});
  const leader = PG
    ? await leaderKill()
    : {
        scenario: 'leader kill (HA, PostgreSQL)',
        skipped: 'NINES_TEST_PG_URL is not set (eval "$(scripts/ci-postgres.sh)" starts a PostgreSQL)',
      };
  rows.push(leader);
  printTable(
    rows,
    undefined,
    `failover: ${rate} req/s, 32 connections, ${INSTANCES} instances on 2 hosts (zones a, b), one proxy; ` +
      `leader kill: 3 controllers on PostgreSQL, lease ${leaseMs} ms`,
  );
  printResultLine({
    rate,
    instances: INSTANCES,
    leaseMs,
    instanceLoss: rows[0],
    hostLoss: rows[1],
    leaderKill: leader,
  });
} finally {
  for (const p of procs.reverse()) await p.kill9().catch(() => {});
  h.cleanup(tmp);
}

/** Three controllers on PostgreSQL, one agent, one proxy; SIGKILL the leader under load. */
async function leaderKill() {
  const pg = (await import('pg')).default;
  const { randomBytes } = await import('node:crypto');
  const schema = `bench_failover_${randomBytes(4).toString('hex')}`;
  const dir = h.tempDir('nines-bench-leader-');
  const mine = [];
  const ctl = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = await h.freePort();
      ctl.push({ dir: join(dir, `c${i}`), port, url: `http://127.0.0.1:${port}` });
    }
    for (const c of ctl) {
      c.proc = await h.spawnCli([
        '--data-dir',
        c.dir,
        'controller',
        '--port',
        String(c.port),
        '--database-url',
        PG,
        '--database-schema',
        schema,
        '--lease-timeout',
        `${leaseMs}ms`,
      ]);
      mine.push(c.proc);
    }
    const urls = ctl.map((c) => c.url).join(',');
    const admin = readFileSync(join(ctl[0].dir, 'admin-token'), 'utf8').trim();
    const api = new Client({ url: urls, token: admin });
    const jt = await h.cli(ctl[0].dir, '--url', urls, '--token', admin, '--json', 'join-token', 'create');
    const joinToken = JSON.parse(jt.stdout).token;
    mine.push(
      await h.spawnCli([
        '--data-dir',
        join(dir, 'agent'),
        'agent',
        '--controller',
        urls,
        '--join-token',
        joinToken,
        '--zone',
        'a',
      ]),
    );
    const px = await h.spawnCli([
      '--data-dir',
      join(dir, 'proxy'),
      'proxy',
      '--controller',
      urls,
      '--token-file',
      join(ctl[0].dir, 'node-token'),
      '--port',
      '0',
    ]);
    mine.push(px);
    const spec = {
      command: 'node server.js',
      instances: INSTANCES,
      env: { RESPONSE_DELAY_MS: '5' },
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
      drainTimeout: 5000,
      healthyDeadline: 15_000,
    };
    await api.put('/v1/services/web', spec);
    // Its own route: the probe must not take any of web's traffic.
    const probeSpec = (instances) => ({ ...spec, instances, route: { pathPrefix: '/__probe' } });
    const nines = (...args) => h.cli(ctl[0].dir, '--url', urls, '--token', admin, ...args);
    for (const svc of ['web', 'probe']) {
      if (svc === 'probe') await api.put('/v1/services/probe', probeSpec(0));
      const rel = await nines('release', svc, h.fixture('graceful'), '--version', 'v1');
      if (rel.code !== 0) throw new Error(rel.stderr);
      const d = await nines('deploy', svc, 'v1');
      if (d.code !== 0) throw new Error(d.stdout + d.stderr);
    }
    const st = () => api.get('/v1/status');
    const up = (s, svc) =>
      s.instances.filter(
        (i) => i.service === svc && i.route === 'ready' && i.state === 'running' && i.healthy && i.proxyUp,
      );
    if (
      (await until(30_000, async () => (up(await st(), 'web').length >= INSTANCES ? true : undefined))) ===
      undefined
    )
      throw new Error('the service never had all its instances up');
    const leaderOf = (c) => new Client({ url: c.url, token: admin }).get('/v1/leader').catch(() => undefined);
    const old = await leaderOf(ctl[0]);
    const victim = ctl.find((c) => old?.leader && c.url === old.leader.url) ?? ctl[0];
    const rest = ctl.filter((c) => c !== victim);

    const target = `${px.ready}/`;
    await startLoad({ url: target, rate, connections: 32, durationMs: 1000 }).done;
    const baseline = await startLoad({ url: target, rate, connections: 32, durationMs: 3000 }).done;
    const load = startLoad({ url: target, rate, connections: 32, durationMs: 180_000, timeoutMs: 10_000 });
    await sleep(1000);
    const t0 = Date.now();
    await victim.proc.kill9();
    let leaderAt;
    let newLeader;
    const writeAt = await until(
      120_000,
      async () => {
        if (leaderAt === undefined) {
          for (const c of rest) {
            const s = await leaderOf(c);
            if (s?.role === 'leader' && s.token > (old?.token ?? 0)) {
              leaderAt = Date.now();
              newLeader = c;
            }
          }
          if (leaderAt === undefined) return undefined;
        }
        // A write through the new leader commits, and the leader acts on it: the probe service scaled
        // to one instance gets it placed and running.
        const c = new Client({ url: newLeader.url, token: admin });
        await c.put('/v1/services/probe', probeSpec(1));
        return up(await c.get('/v1/status'), 'probe').length >= 1 ? Date.now() : undefined;
      },
      20,
    );
    await sleep(1000);
    const r = await load.stop();
    return {
      scenario: 'leader kill (HA, PostgreSQL)',
      sent: r.sent,
      failed: r.failed,
      'new leader ms': leaderAt === undefined ? null : leaderAt - t0,
      'writes served ms': writeAt === undefined ? null : writeAt - t0,
      'p99 before ms': Math.round(baseline.latencyMs.p99 * 10) / 10,
      'p99 during ms': Math.round(r.latencyMs.p99 * 10) / 10,
      'max ms': Math.round(r.latencyMs.max),
      errors: {
        ...r.errors,
        ...Object.fromEntries(Object.entries(r.byStatus).filter(([code]) => !code.startsWith('2'))),
      },
    };
  } finally {
    for (const p of mine.reverse()) await p.kill9().catch(() => {});
    h.cleanup(dir);
    const db = new pg.Client({ connectionString: PG });
    await db.connect();
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.end();
  }
}
