// nines-test: serial — timing assertions (scripts/run-tests.mjs runs this file alone).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '../cli/client.js';
import type { StatusView } from '../controller/status.js';
import type { DrillReport } from '../drill/drill.js';
import { type Cluster, startCluster, stopCluster } from './cluster.js';
import { cli, fixture, tempDir } from './harness.js';

/**
 * Issue 8, `nines drill host-loss`: two hosts (zones a and b) behind one proxy; the agent of one host
 * kills every instance process on it and falls silent, the controller declares the host down and
 * replaces its instances on the other host, the host comes back — and the load never sees an error.
 * Then the same for a whole zone, and the refusal of a loss that would take every instance down.
 */
describe('nines drill host-loss and zone-outage', () => {
  const root = tempDir();
  let c: Cluster | undefined;
  let ctlDir = '';
  let client: Client;
  let proxyUrl = '';

  before(async () => {
    c = await startCluster(root, ['a', 'b']);
    ({ ctlDir, client, proxyUrl } = c);
    await client.put('/v1/services/web', {
      command: 'node server.js',
      instances: 4,
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
      drainTimeout: 5000,
      healthyDeadline: 15_000,
    });
    for (const v of ['v1', 'v2']) {
      const r = await cli(ctlDir, 'release', 'web', fixture('graceful'), '--version', v);
      assert.equal(r.code, 0, r.stderr);
    }
    const d = await cli(ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
  });
  after(() => stopCluster(c, root));

  // A request reset by an instance killed with its host is retried on a new connection (never a pooled
  // one, which may lead to the host's other dead instance), so meeting a dead instance again is a
  // connect failure, which is redispatched (forward.ts CONNECT_REDISPATCH).
  test('a host lost for 20 s under load: detected, replaced on the other host, host back, 0 failed', async () => {
    const before = await client.get<StatusView>('/v1/status');
    const onB = before.instances.filter((i) => i.host === 'host-b').length;
    assert.ok(
      onB > 0 && onB < 4,
      `instances spread over both hosts: ${JSON.stringify(before.instances.map((i) => i.host))}`,
    );
    const r = await cli(
      ctlDir,
      'drill',
      'host-loss',
      '--service',
      'web',
      '--host',
      'host-b',
      '--outage',
      '20s',
      '--proxy',
      proxyUrl,
      '--rate',
      '100',
      '--before',
      '1s',
      '--after',
      '1s',
      '--json',
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const rep = JSON.parse(r.stdout) as DrillReport;
    assert.equal(rep.failed, 0, JSON.stringify(rep.phases));
    assert.ok(rep.phases.during.sent > 1000, JSON.stringify(rep.phases));
    // The controller declares a host down after 15 s of silence (hostDownAfterMs).
    assert.ok(rep.timeToDetectMs !== null && rep.timeToDetectMs >= 14_000, String(rep.timeToDetectMs));
    assert.ok(
      rep.timeToRecoverMs !== null && rep.timeToRecoverMs >= rep.timeToDetectMs,
      String(rep.timeToRecoverMs),
    );
    const lost = (rep.fault as { instances: string[] }).instances;
    assert.equal(lost.length, onB);

    const after = await client.get<StatusView>('/v1/status');
    const web = after.instances.filter((i) => i.service === 'web' && i.route === 'ready');
    assert.equal(web.length, 4, JSON.stringify(after.instances));
    assert.ok(
      web.every((i) => i.healthy && !lost.includes(i.id)),
      'the lost instances were replaced',
    );
    const hosts = (await client.get<{ hosts: Array<{ name: string; up: boolean }> }>('/v1/hosts')).hosts;
    assert.ok(
      hosts.every((h) => h.up),
      `host-b is back: ${JSON.stringify(hosts)}`,
    );
  });

  test('zone-outage of zone b after a redeploy spread the instances again: 0 failed; losing the last zone is refused', async () => {
    const d = await cli(ctlDir, 'deploy', 'web', 'v2');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    const before = await client.get<StatusView>('/v1/status');
    assert.ok(
      before.instances.some((i) => i.host === 'host-b'),
      'instances on host-b again',
    );
    const r = await cli(
      ctlDir,
      'drill',
      'zone-outage',
      '--service',
      'web',
      '--zone',
      'b',
      '--outage',
      '20s',
      '--proxy',
      proxyUrl,
      '--rate',
      '100',
      '--before',
      '500ms',
      '--after',
      '500ms',
      '--json',
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const rep = JSON.parse(r.stdout) as DrillReport;
    assert.equal(rep.failed, 0, JSON.stringify(rep.phases));
    assert.deepEqual(
      (rep.fault as { hosts: Array<{ host: string }> }).hosts.map((h) => h.host),
      ['host-b'],
    );
    assert.ok(rep.timeToDetectMs !== null && rep.timeToRecoverMs !== null, JSON.stringify(rep));

    // Every instance now runs in zone a: losing it would be an outage, not a drill.
    const refused = await cli(
      ctlDir,
      'drill',
      'zone-outage',
      '--service',
      'web',
      '--zone',
      'a',
      '--proxy',
      proxyUrl,
    );
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /NINES_E_DRILL_REFUSED.*every running instance of web/);
  });
});
