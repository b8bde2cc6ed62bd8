import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { Agent } from '../../agent/agent.js';
import { packDirectory } from '../../core/artifact.js';
import { Controller } from '../controller.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/types.js';

/**
 * CPU autoscaling end to end in one process: a real controller, a real agent, and a real app process
 * that burns CPU. The agent measures the instance's CPU from /proc and reports it; the autoscaler (every
 * 500 ms here) scales the service up; the reconciler starts the new instance. Bounded to 30 s.
 */

const dir = mkdtempSync(join(tmpdir(), 'nines-autoscale-cpu-'));
let store: Store;
let controller: Controller;
let agent: Agent;
let admin = '';

// Busy 45 ms of every 50: most of a core on an idle machine, far above a 10 % target on a loaded one.
const BURNER = `
const http = require('node:http');
setInterval(() => { const end = Date.now() + 45; while (Date.now() < end) {} }, 50);
http.createServer((_q, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
`;

async function call(method: string, path: string, o: { json?: unknown; body?: Buffer; type?: string } = {}) {
  const res = await fetch(controller.url + path, {
    method,
    headers: {
      authorization: `Bearer ${admin}`,
      ...(o.json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(o.type ? { 'content-type': o.type } : {}),
    },
    ...(o.json !== undefined ? { body: JSON.stringify(o.json) } : o.body ? { body: o.body } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  store = await openSqliteStore({ file: join(dir, 'nines.db') });
  controller = new Controller({
    store,
    dataDir: join(dir, 'controller'),
    logger: pino({ level: 'silent' }),
    host: '127.0.0.1',
    port: 0,
    autoscaleIntervalMs: 500,
  });
  const tokens = await controller.bootstrapTokens();
  admin = tokens.admin;
  await controller.start();
  agent = new Agent({
    controllerUrl: controller.url,
    token: tokens.node,
    dataDir: join(dir, 'agent'),
    name: 'cpu-host',
    zone: 'a',
    labels: {},
    address: '127.0.0.1',
    logger: pino({ level: 'silent' }),
    pollWaitS: 2,
    hostSignalsMs: 300,
  });
  await agent.start();
});

after(async () => {
  await agent?.stop({ stopInstances: true });
  await controller?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a CPU-burning service scales up on its cpu target', { timeout: 30_000 }, async () => {
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'server.js'), BURNER);
  await packDirectory(app, join(dir, 'app.tgz'));
  const spec = {
    command: 'node server.js',
    instances: 1,
    health: { path: '/', interval: '200ms', timeout: '1s', rise: 1, fall: 3 },
    scaling: {
      min: 1,
      max: 2,
      autoscale: { metric: 'cpu', target: 10, scaleUpStep: 1, scaleDownStabilization: '60s' },
    },
  };
  assert.equal((await call('PUT', '/v1/services/burn', { json: spec })).status, 201);
  const up = await call('POST', '/v1/services/burn/releases?version=v1', {
    body: await readFile(join(dir, 'app.tgz')),
    type: 'application/gzip',
  });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const d = await call('POST', '/v1/services/burn/deploys', { json: { version: 'v1' } });
  const id = d.body.deploy.id as string;
  await until(
    'the deploy',
    async () => {
      const s = (await call('GET', `/v1/deploys/${id}`)).body.deploy.state as string;
      if (s === 'failed' || s === 'reverted') assert.fail(`deploy ${s}`);
      return s === 'succeeded' ? s : undefined;
    },
    15_000,
  );

  // The agent reports the instance's CPU …
  const cpu = await until(
    'a CPU sample of the instance',
    async () => agent.observed().find((o) => o.state === 'running' && o.cpu !== undefined)?.cpu,
    10_000,
  );
  assert.ok(cpu > 10, `the burner uses ${cpu} % of a core`);
  // … and the autoscaler acts on it: 1 → 2 (max), and the second instance runs.
  const event = await until(
    'a scale-up',
    async () =>
      (await store.listEvents({ kind: 'service.autoscaled', subject: 'burn' })).find((e) =>
        /scale up 1 → 2/.test(e.message),
      ),
    10_000,
  );
  assert.match(event.message, /per instance, target 10/);
  assert.equal((await store.getService('burn'))?.spec.instances, 2);
  await until(
    'the second instance running',
    async () => (agent.observed().filter((o) => o.state === 'running').length === 2 ? true : undefined),
    10_000,
  );
});
