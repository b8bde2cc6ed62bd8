import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '../cli/client.js';
import { verifyWebhookSignature } from '../controller/alerting/channels/webhook.js';
import type { StoredAlert } from '../controller/alerting/store.js';
import { cleanup, cli, freePort, type Proc, sleep, spawnCli, tempDir } from './harness.js';
import { Receiver } from './receivers.js';

/**
 * Issue 6, "a host whose agent is stopped": a real controller and a real agent process on its own data
 * dir; the agent is frozen (SIGSTOP — the host stops reporting, as a hung or cut-off machine does), the
 * controller calls the host down after its host-down interval and the `host_down` rule pages a signed
 * webhook with the documented body; `nines alerts ack <prefix>` acknowledges it (the CLI → the API), the
 * receiver hears `acknowledged`; the agent resumes and the alert resolves — one notification each.
 */
const SECRET = 'e2e-host-down-secret-0123456789';

describe('alerting: a host whose agent is stopped', () => {
  const root = tempDir();
  const ctlDir = join(root, 'controller');
  const procs: Proc[] = [];
  let agent: Proc | undefined;
  let hooks: Receiver;
  let client: Client;

  before(async () => {
    hooks = await new Receiver(200).listen();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    procs.push(await spawnCli(['--data-dir', ctlDir, 'controller', '--port', String(port)]));
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    assert.equal(jt.code, 0, jt.stderr);
    const token = (JSON.parse(jt.stdout) as { token: string }).token;
    agent = await spawnCli([
      '--data-dir',
      join(root, 'agent-a'),
      'agent',
      '--controller',
      url,
      '--join-token',
      token,
      '--zone',
      'a',
      '--name',
      'host-a',
    ]);
    procs.push(agent);
    client = new Client({ url, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
  });
  after(async () => {
    const pid = agent?.proc.pid;
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {}
    }
    for (const p of procs.reverse()) await p.kill9();
    cleanup(root);
    await hooks.close();
  });

  const bodies = () =>
    hooks.on('/hook').map((g) => ({ ...g, json: JSON.parse(g.body) as Record<string, unknown> }));
  async function until<T>(what: string, ms: number, f: () => T | undefined | false | Promise<T | undefined>) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await sleep(200);
    }
  }
  const hostUp = async () =>
    (
      await client.get<{ samples: { labels: Record<string, string>; value: number }[] }>(
        '/v1/signals?signal=host_up',
      )
    ).samples.find((s) => s.labels.hostname === 'host-a')?.value;

  test('host_up == 0 pages once, the CLI acknowledges, the host coming back resolves', async () => {
    await client.put('/v1/alerting/config', {
      alerts: {
        host_down: {
          signal: 'host_up',
          condition: '== 0',
          for: '2s',
          severity: 'critical',
          labels: { team: 'ops' },
          summary: '{{host}} in zone {{zone}} stopped reporting',
        },
      },
      channels: { hook: { kind: 'webhook', url: `${hooks.base}/hook`, secret: SECRET } },
      alerting: { notify: ['hook'], groupWait: 0, groupInterval: 0 }, // resolved at once, not after 5 min
    });
    await until('host-a reporting', 20_000, async () => (await hostUp()) === 1);
    await sleep(3000);
    assert.equal(hooks.got.length, 0, 'a reporting host pages nobody');

    const pid = agent?.proc.pid;
    assert.ok(pid);
    const stoppedAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    // Host-down interval 15 s + `for` 2 s + a tick or two.
    const firing = await until('the firing webhook', 40_000, () => bodies()[0]);
    const took = Date.now() - stoppedAt;
    assert.ok(took >= 15_000, `not before the host-down interval (${took} ms)`);
    assert.ok(
      verifyWebhookSignature(
        SECRET,
        firing.headers['x-nines-signature'] as string,
        firing.body,
        Date.now() / 1000,
      ),
      'signed',
    );
    const key = firing.json.dedupKey as string;
    assert.match(key, /^[0-9a-f]{32}$/);
    assert.equal(firing.headers['x-nines-dedup-key'], key);
    const { startsAt, timestamp, ackUrl, value, ...rest } = firing.json;
    assert.deepEqual(rest, {
      version: '1',
      dedupKey: key,
      transition: 'firing',
      rule: 'host_down',
      summary: 'host-a in zone a stopped reporting',
      severity: 'critical',
      labels: { alertname: 'host_down', host: 'host-a', team: 'ops', zone: 'a' },
      annotations: {},
      endsAt: null,
      url: null,
    });
    assert.equal(value, 0);
    assert.ok(Date.parse(startsAt as string) >= stoppedAt, 'fired after the agent stopped');
    assert.ok(Date.parse(timestamp as string) >= Date.parse(startsAt as string));
    assert.match(ackUrl as string, /\/v1\/alerts\/ack\?token=v1\./);

    // Acknowledge by the CLI with a unique prefix of the key.
    const ack = await cli(ctlDir, 'alerts', 'ack', key.slice(0, 10));
    assert.equal(ack.code, 0, ack.stdout + ack.stderr);
    const { alert } = await client.get<{ alert: StoredAlert }>(`/v1/alerts/${key}`);
    assert.equal(alert.state, 'firing');
    assert.equal(alert.acknowledged, true);
    await until('the acknowledged webhook', 10_000, () =>
      bodies().find((b) => b.json.transition === 'acknowledged'),
    );
    const again = await cli(ctlDir, 'alerts', 'ack', key);
    assert.equal(again.code, 0, `acknowledging again changes nothing: ${again.stderr}`);

    process.kill(pid, 'SIGCONT');
    await until('the resolved webhook', 30_000, () => bodies().find((b) => b.json.transition === 'resolved'));
    await sleep(2000);
    assert.deepEqual(
      bodies().map((b) => b.json.transition),
      ['firing', 'acknowledged', 'resolved'],
      'one notification per transition',
    );
    assert.equal(await hostUp(), 1);
  });
});
