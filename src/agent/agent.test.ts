import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import type { ArtifactRef, DesiredInstance, ObservedInstance } from '../core/protocol.js';
import { Agent } from './agent.js';
import { isProcessAlive } from './procfs.js';
import { FakeController, killRecorded, TEST_APP_COMMAND, writeTestApp } from './testkit.js';

const logger = pino({ level: process.env.NINES_TEST_LOG ?? 'silent' });

interface Env {
  dir: string;
  dataDir: string;
  pidDir: string;
  ctl: FakeController;
  release: ArtifactRef;
  newAgent(): Agent;
  inst(id: string, over?: Partial<DesiredInstance>, env?: Record<string, string>): DesiredInstance;
}

async function setup(t: TestContext): Promise<Env> {
  const dir = await mkdtemp(join(tmpdir(), 'nines-agent-'));
  const dataDir = join(dir, 'data');
  const pidDir = join(dir, 'pids');
  mkdirSync(pidDir);
  const appDir = join(dir, 'app');
  writeTestApp(appDir);
  const ctl = await FakeController.start();
  const release = await ctl.addRelease('web', '1.0.0', appDir, join(dir, 'web-1.0.0.tar.gz'));
  const agents: Agent[] = [];
  t.after(async () => {
    for (const a of agents) await a.stop({ stopInstances: true }).catch(() => undefined);
    killRecorded(pidDir);
    await ctl.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  return {
    dir,
    dataDir,
    pidDir,
    ctl,
    release,
    newAgent: () => {
      const a = new Agent({
        controllerUrl: ctl.url,
        token: ctl.token,
        dataDir,
        name: 'host-a',
        zone: 'zone-1',
        labels: { role: 'web' },
        address: '127.0.0.1',
        logger,
      });
      agents.push(a);
      return a;
    },
    inst: (id, over = {}, env = {}) => ({
      id,
      service: 'web',
      release,
      command: TEST_APP_COMMAND,
      env: { PID_DIR: pidDir, ...env },
      health: { path: '/healthz', intervalMs: 100, timeoutMs: 500, rise: 2, fall: 2 },
      drainTimeoutMs: 3000,
      desired: 'running',
      ...over,
    }),
  };
}

const up = (i: ObservedInstance): boolean => i.state === 'running' && i.healthy;

async function waitObserved(
  agent: Agent,
  id: string,
  pred: (i: ObservedInstance) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<ObservedInstance> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = agent.observed().find((x) => x.id === id);
    if (i && pred(i)) return i;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${id}: ${what}; now ${JSON.stringify(i)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function getJson(
  port: number,
  path = '/',
): Promise<{ pid: number; cwd: string; env: Record<string, string> }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { reset: true });
  return (await res.body.json()) as { pid: number; cwd: string; env: Record<string, string> };
}

describe('agent', () => {
  it('full loop: register, long poll, one shared download, healthy report, env, logs, heartbeat, forget', async (t) => {
    const e = await setup(t);
    process.env.SECRET_OF_AGENT = 'must-not-leak';
    t.after(() => {
      delete process.env.SECRET_OF_AGENT;
    });
    const agent = e.newAgent();
    await agent.start();
    // The agent registers and reports (no instances yet), then sits in a long poll.
    await e.ctl.waitFor('first report', (r) => (r.instances.length === 0 ? true : undefined));
    assert.equal(agent.hostId, 'host-1');
    assert.deepEqual(e.ctl.registers[0], {
      name: 'host-a',
      zone: 'zone-1',
      labels: { role: 'web' },
      address: '127.0.0.1',
    });
    assert.equal(e.ctl.unauthorized, 0);
    await e.ctl.waitPolls(1);
    assert.deepEqual(e.ctl.polls[0], { after: 0, wait: 25 });

    const t0 = Date.now();
    e.ctl.setDesired([e.inst('a', {}, { GREETING: 'hi' }), e.inst('b')]);
    const a = await e.ctl.waitInstance('a', up, 'healthy');
    const b = await e.ctl.waitInstance('b', up, 'healthy');
    assert.ok(Date.now() - t0 < 10_000);
    assert.equal(e.ctl.downloads.get(e.release.url), 1, 'both instances share one download');
    assert.ok(a.port && b.port && a.port !== b.port);
    assert.equal(a.restarts, 0);
    assert.ok(a.pid && isProcessAlive(a.pid));
    const last = e.ctl.reports.at(-1)!;
    assert.equal(last.hostId, 'host-1');
    assert.equal(last.generation, 1);

    const seen = await getJson(a.port!);
    assert.equal(seen.pid, a.pid);
    assert.equal(seen.cwd, join(e.dataDir, 'releases', 'web', '1.0.0'));
    assert.deepEqual(seen.env, {
      PORT: String(a.port),
      NINES_INSTANCE_ID: 'a',
      NINES_SERVICE: 'web',
      NINES_RELEASE: '1.0.0',
      NINES_HOST_ID: 'host-1',
      GREETING: 'hi',
    });
    assert.match(readFileSync(join(e.dataDir, 'logs', 'a.log'), 'utf8'), /listening on \d+/);
    assert.deepEqual(
      JSON.parse(readFileSync(join(e.dataDir, 'agent', 'host.json'), 'utf8')).hostId,
      'host-1',
    );
    assert.equal(JSON.parse(readFileSync(join(e.dataDir, 'agent', 'desired.json'), 'utf8')).generation, 1);
    const recs = JSON.parse(readFileSync(join(e.dataDir, 'agent', 'instances.json'), 'utf8')).instances;
    assert.deepEqual(recs.map((r: { id: string }) => r.id).sort(), ['a', 'b']);

    // Heartbeat: reports keep coming without changes.
    const before = e.ctl.reports.length;
    await new Promise((r) => setTimeout(r, 2300));
    assert.ok(e.ctl.reports.length - before >= 2, `heartbeats: ${e.ctl.reports.length - before}`);

    // b leaves the desired list: stopped, reported once as stopped, then forgotten.
    e.ctl.setDesired([e.inst('a', {}, { GREETING: 'hi' })]);
    const bStopped = await e.ctl.waitInstance('b', (i) => i.state === 'stopped', 'stopped');
    assert.equal(bStopped.exitCode, 0);
    await e.ctl.waitFor('b forgotten', (r) =>
      r.generation === 2 && !r.instances.some((i) => i.id === 'b') ? true : undefined,
    );
    assert.equal(isProcessAlive(b.pid!), false);
    assert.deepEqual(
      agent.observed().map((i) => i.id),
      ['a'],
    );

    await agent.stop({ stopInstances: true });
    assert.equal(isProcessAlive(a.pid!), false);
    assert.deepEqual(
      JSON.parse(readFileSync(join(e.dataDir, 'agent', 'instances.json'), 'utf8')).instances,
      [],
    );
    assert.equal(e.ctl.reports.at(-1)?.instances.find((i) => i.id === 'a')?.state, 'stopped');
  });

  it('a crashed instance is restarted on the same port with restarts incremented', async (t) => {
    const e = await setup(t);
    const agent = e.newAgent();
    await agent.start();
    e.ctl.setDesired([
      e.inst('c', {}, { CRASH_AFTER_MS: '500', CRASH_ONCE_FILE: join(e.dir, 'crashed-once') }),
    ]);
    const first = await e.ctl.waitInstance(
      'c',
      (i) => i.pid !== undefined && i.port !== undefined,
      'spawned',
    );
    const back = await e.ctl.waitInstance('c', (i) => up(i) && i.restarts === 1, 'restarted and healthy');
    assert.equal(back.port, first.port, 'same port across restarts');
    assert.notEqual(back.pid, first.pid);
    assert.equal(isProcessAlive(first.pid!), false);
    const backoff = e.ctl.reports
      .flatMap((r) => r.instances)
      .find((i) => i.id === 'c' && i.state === 'backoff');
    assert.ok(backoff, 'reported backoff while waiting to restart');
    assert.equal(backoff.exitCode, 3);
    assert.equal(backoff.healthy, false);
    assert.equal((await getJson(back.port!)).pid, back.pid);
    assert.match(readFileSync(join(e.dataDir, 'logs', 'c.log'), 'utf8'), /crashing[\s\S]*listening on/);
  });

  it('stop: SIGTERM for a graceful app; SIGKILL after drainTimeoutMs for one ignoring SIGTERM', async (t) => {
    const e = await setup(t);
    const agent = e.newAgent();
    await agent.start();
    const g = e.inst('g');
    const i = e.inst('i', { drainTimeoutMs: 800 }, { IGNORE_TERM: '1' });
    e.ctl.setDesired([g, i]);
    const gUp = await e.ctl.waitInstance('g', up, 'healthy');
    const iUp = await e.ctl.waitInstance('i', up, 'healthy');
    const t0 = Date.now();
    e.ctl.setDesired([
      { ...g, desired: 'stopped' },
      { ...i, desired: 'stopped' },
    ]);
    await e.ctl.waitInstance('g', (x) => x.state === 'stopping' || x.state === 'stopped', 'stopping');
    const gDone = await e.ctl.waitInstance('g', (x) => x.state === 'stopped', 'stopped');
    assert.equal(gDone.exitCode, 0);
    assert.equal(gDone.signal, null);
    assert.equal(gDone.healthy, false);
    assert.ok(Date.now() - t0 < 800, 'graceful app stops before the drain timeout');
    const iDone = await e.ctl.waitInstance('i', (x) => x.state === 'stopped', 'stopped');
    const took = Date.now() - t0;
    assert.equal(iDone.signal, 'SIGKILL');
    assert.ok(took >= 800, `killed after ${took} ms`);
    assert.ok(took < 5000, `killed after ${took} ms`);
    assert.equal(isProcessAlive(gUp.pid!), false);
    assert.equal(isProcessAlive(iUp.pid!), false);
    assert.match(readFileSync(join(e.dataDir, 'logs', 'g.log'), 'utf8'), /got SIGTERM, exiting/);
    assert.match(readFileSync(join(e.dataDir, 'logs', 'i.log'), 'utf8'), /got SIGTERM, ignoring it/);
    // Desired `stopped` instances stay listed as stopped and are not restarted.
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(
      agent
        .observed()
        .map((x) => `${x.id}:${x.state}`)
        .sort(),
      ['g:stopped', 'i:stopped'],
    );
    // …and wanted running again, they start anew.
    e.ctl.setDesired([g, { ...i, desired: 'stopped' }]);
    const gAgain = await e.ctl.waitInstance('g', (x) => up(x) && x.pid !== gUp.pid, 'running again');
    assert.ok(gAgain.pid);
  });

  it('preStop: runs in the release dir with the instance env before the SIGTERM; a slow one is cut at its timeout', async (t) => {
    const e = await setup(t);
    const agent = e.newAgent();
    await agent.start();
    const marker = join(e.dir, 'prestop.txt');
    const a = e.inst('a', {
      preStop: {
        command: `echo "$NINES_INSTANCE_ID $(ls app.mjs)" >> '${marker}'; sleep 0.3`,
        timeoutMs: 5000,
      },
    });
    const b = e.inst('b', { preStop: { command: 'sleep 30', timeoutMs: 300 } });
    e.ctl.setDesired([a, b]);
    await e.ctl.waitInstance('a', up, 'healthy');
    await e.ctl.waitInstance('b', up, 'healthy');
    const t0 = Date.now();
    e.ctl.setDesired([
      { ...a, desired: 'stopped' },
      { ...b, desired: 'stopped' },
    ]);
    await e.ctl.waitInstance('a', (x) => x.state === 'stopped', 'stopped');
    assert.ok(Date.now() - t0 >= 300, 'the SIGTERM waited for the preStop hook');
    assert.equal(readFileSync(marker, 'utf8'), 'a app.mjs\n');
    await e.ctl.waitInstance('b', (x) => x.state === 'stopped', 'stopped');
    assert.ok(Date.now() - t0 < 5000, 'the slow preStop was cut at its timeout');
    const log = readFileSync(join(e.dataDir, 'logs', 'a.log'), 'utf8');
    assert.ok(log.indexOf('preStop:') < log.indexOf('got SIGTERM'), log);
  });

  it('adoption: a new agent on the same dataDir adopts running instances instead of restarting them', async (t) => {
    const e = await setup(t);
    const first = e.newAgent();
    await first.start();
    e.ctl.setDesired([e.inst('a')]);
    const a = await e.ctl.waitInstance('a', up, 'healthy');
    await first.stop({ stopInstances: false });
    assert.ok(isProcessAlive(a.pid!), 'left running');
    assert.equal((await getJson(a.port!)).pid, a.pid);

    const mark = e.ctl.reports.length;
    const second = e.newAgent();
    await second.start();
    // Adopted at start, from disk, before the controller answers.
    const adopted = await waitObserved(second, 'a', (i) => i.pid === a.pid, 'adopted', 2000);
    assert.equal(adopted.port, a.port);
    assert.ok(up(adopted), 'healthy as soon as start() resolves');
    const reported = await e.ctl.waitFor('adopted and healthy', (r) =>
      e.ctl.reports.indexOf(r) >= mark ? r.instances.find((i) => i.id === 'a' && up(i)) : undefined,
    );
    assert.ok(
      e.ctl.reports.slice(mark).every((r) => r.instances.every(up)),
      `never reported unhealthy across the agent restart: ${JSON.stringify(e.ctl.reports.slice(mark))}`,
    );
    assert.equal(reported.pid, a.pid);
    assert.equal(reported.port, a.port);
    assert.equal(reported.restarts, 0);
    assert.equal(readdirSync(e.pidDir).length, 1, 'no second process was started');

    // It is watched although it is not our child: a kill -9 is noticed and it comes back on its port.
    process.kill(a.pid!, 'SIGKILL');
    const back = await e.ctl.waitInstance('a', (i) => up(i) && i.pid !== a.pid, 'restarted after kill');
    assert.equal(back.port, a.port);
    assert.equal(back.restarts, 1);
  });

  it('kill -9 of the agent process: the apps survive and the next agent adopts them', async (t) => {
    const e = await setup(t);
    const runner = join(e.dir, 'agent-runner.mjs');
    writeFileSync(
      runner,
      `const { Agent } = await import(${JSON.stringify(new URL('./index.js', import.meta.url).href)});
const { pino } = await import(${JSON.stringify(import.meta.resolve('pino'))});
const agent = new Agent({ ...JSON.parse(process.env.AGENT_CFG), logger: pino({ level: 'silent' }) });
await agent.start();
setInterval(() => {}, 60_000);
`,
    );
    const cfg = {
      controllerUrl: e.ctl.url,
      token: e.ctl.token,
      dataDir: e.dataDir,
      name: 'host-a',
      zone: 'zone-1',
      labels: {},
      address: '127.0.0.1',
    };
    const proc = spawn(process.execPath, [runner], {
      env: { ...process.env, AGENT_CFG: JSON.stringify(cfg) },
      stdio: 'inherit',
    });
    t.after(() => {
      proc.kill('SIGKILL');
    });
    e.ctl.setDesired([e.inst('a')]);
    const a = await e.ctl.waitInstance('a', up, 'healthy under the agent process');
    proc.kill('SIGKILL');
    await once(proc, 'exit');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(isProcessAlive(a.pid!), 'the app outlives its agent');
    assert.equal((await getJson(a.port!)).pid, a.pid);

    const mark = e.ctl.reports.length;
    const next = e.newAgent();
    await next.start();
    const adopted = await e.ctl.waitInstance('a', up, 'adopted', undefined, mark);
    assert.equal(adopted.pid, a.pid);
    assert.equal(adopted.port, a.port);
    assert.equal(adopted.restarts, 0);
    assert.ok(
      e.ctl.reports.slice(mark).every((r) => r.instances.every(up)),
      'no unhealthy blip',
    );
    await next.stop({ stopInstances: true });
    assert.equal(isProcessAlive(a.pid!), false, 'an adopted instance is stopped too');
  });

  it('static stability: with the controller gone, a restarted agent runs its cached desired state', async (t) => {
    const e = await setup(t);
    const first = e.newAgent();
    await first.start();
    e.ctl.setDesired([e.inst('a')]);
    const a = await e.ctl.waitInstance('a', up, 'healthy');
    await first.stop({ stopInstances: true });
    assert.equal(isProcessAlive(a.pid!), false);
    await e.ctl.close();

    const second = e.newAgent();
    await second.start();
    assert.equal(second.hostId, 'host-1', 'host id remembered from host.json');
    const again = await waitObserved(second, 'a', up, 'running from the cached desired state');
    assert.notEqual(again.pid, a.pid);
    assert.equal((await getJson(again.port!)).env.NINES_HOST_ID, 'host-1');
  });

  it('provisioning: a bad checksum or a missing artifact puts the instance in failed, nothing runs', async (t) => {
    const e = await setup(t);
    const agent = e.newAgent();
    await agent.start();
    const badSha = { ...e.release, version: '2.0.0', sha256: '0'.repeat(64) };
    e.ctl.artifacts.set(badSha.url, e.ctl.artifacts.get(e.release.url)!);
    const missing = { ...e.release, version: '3.0.0', url: '/v1/services/web/releases/3.0.0/artifact' };
    e.ctl.setDesired([e.inst('bad', { release: badSha }), e.inst('gone', { release: missing })]);
    const bad = await e.ctl.waitInstance('bad', (i) => i.state === 'failed', 'failed');
    assert.match(
      bad.message ?? '',
      /^NINES_E_ARTIFACT_CHECKSUM: .*expected sha256 0{64}, actual [0-9a-f]{64}/,
    );
    const gone = await e.ctl.waitInstance('gone', (i) => i.state === 'failed', 'failed');
    assert.match(gone.message ?? '', /^NINES_E_AGENT_PROVISION: .*404/);
    assert.equal(existsSync(join(e.dataDir, 'releases', 'web', '2.0.0')), false);
    assert.deepEqual(readdirSync(e.pidDir), []);
    assert.deepEqual(readdirSync(join(e.dataDir, 'tmp')), []);
  });

  it('readiness follows the probe: starting until rise passes, unhealthy after fall failures', async (t) => {
    const e = await setup(t);
    const agent = e.newAgent();
    await agent.start();
    e.ctl.setDesired([e.inst('h', {}, { UNHEALTHY: '1' })]);
    const started = await e.ctl.waitInstance('h', (i) => i.pid !== undefined, 'spawned');
    await new Promise((r) => setTimeout(r, 800));
    const still = agent.observed()[0]!;
    assert.equal(still.state, 'starting');
    assert.equal(still.healthy, false);
    await getJson(started.port!, '/health/ok').catch(() => undefined);
    await e.ctl.waitInstance('h', up, 'healthy');
    const t0 = Date.now();
    const mark = e.ctl.reports.length;
    await getJson(started.port!, '/health/fail').catch(() => undefined);
    const sick = await e.ctl.waitInstance('h', (i) => !i.healthy, 'unhealthy', undefined, mark);
    assert.equal(sick.state, 'running', 'a failing probe does not restart the process');
    assert.ok(Date.now() - t0 < 2000, `reported after ${Date.now() - t0} ms`);
    assert.equal(sick.pid, started.pid);
  });
});
