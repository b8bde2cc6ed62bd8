import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '../cli/client.js';
import type { DeployEventRecord, DeployRecord } from '../controller/store/types.js';
import { cleanup, cli, freePort, type Proc, sleep, spawnCli } from './harness.js';

/**
 * A nines cluster of separate processes for e2e tests that kill or restart one plane (the controller)
 * while the others keep serving: a controller, one agent per zone and one proxy.
 */

export interface Cluster {
  root: string;
  ctlDir: string;
  client: Client;
  proxyUrl: string;
  procs: Proc[];
  startController(): Promise<void>;
  controller(): Proc | undefined;
}

/** A controller, one agent per zone (host `host-<zone>`) and one proxy, as separate processes. */
export async function startCluster(root: string, zones: readonly string[]): Promise<Cluster> {
  const ctlDir = join(root, 'controller');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const procs: Proc[] = [];
  let controller: Proc | undefined;
  const startController = async () => {
    controller = await spawnCli([
      '--data-dir',
      ctlDir,
      'controller',
      '--port',
      String(port),
      '--log-level',
      'debug',
    ]);
    procs.push(controller);
  };
  await startController();
  for (const zone of zones) {
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    assert.equal(jt.code, 0, jt.stderr);
    const token = (JSON.parse(jt.stdout) as { token: string }).token;
    procs.push(
      await spawnCli([
        '--data-dir',
        join(root, `agent-${zone}`),
        'agent',
        '--controller',
        url,
        '--join-token',
        token,
        '--zone',
        zone,
        '--name',
        `host-${zone}`,
      ]),
    );
  }
  const proxy = await spawnCli([
    '--data-dir',
    join(root, 'proxy'),
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
  return {
    root,
    ctlDir,
    client,
    proxyUrl: proxy.ready,
    procs,
    startController,
    controller: () => controller,
  };
}

export async function stopCluster(c: Cluster | undefined, root: string): Promise<void> {
  for (const p of [...(c?.procs ?? [])].reverse()) await p.kill9();
  cleanup(root);
}

export const WEB_SPEC = {
  command: 'node server.js',
  health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
  drainTimeout: 5000,
  healthyDeadline: 15_000,
};

export async function events(client: Client, id: string): Promise<DeployEventRecord[]> {
  return (await client.get<{ events: DeployEventRecord[] }>(`/v1/deploys/${encodeURIComponent(id)}/events`))
    .events;
}

export async function waitDeploy(
  client: Client,
  id: string,
  pred: (d: DeployRecord) => boolean,
  ms = 60_000,
): Promise<DeployRecord> {
  const until = Date.now() + ms;
  for (;;) {
    const { deploy } = await client.get<{ deploy: DeployRecord }>(`/v1/deploys/${encodeURIComponent(id)}`);
    if (pred(deploy)) return deploy;
    if (Date.now() > until) throw new Error(`deploy ${id} is still ${deploy.state}`);
    await sleep(100);
  }
}
