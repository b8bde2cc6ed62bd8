import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { request } from 'undici';
import { verifyWebhookSignature } from '../controller/alerting/channels/webhook.js';
import type { StoredAlert } from '../controller/alerting/store.js';
import type { StatusView } from '../controller/status.js';
import { cleanup, cli, fixture, serviceYaml, sleep, startUp, tempDir, type Up } from './harness.js';
import { Receiver } from './receivers.js';

/**
 * Issue 6, alerting end to end: a real `nines up`, an instance made unhealthy for real (SIGSTOP: its
 * process stays, its health probe times out), notifications to real local receivers — a webhook
 * (HMAC verified), fake-but-real Slack and PagerDuty endpoints (payload shapes asserted) and an SMTP
 * server — fired once, resolved once, escalated, and acknowledged through the signed link.
 */

const SECRET = 'e2e-webhook-secret-0123456789';
const ROUTING_KEY = 'R0123456789abcdef0123456789abcdef';

interface Mail {
  to: string[];
  raw: string;
}

describe('alerting under a real nines up', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  let http: Receiver;
  let smtp: SMTPServer;
  let smtpPort = 0;
  const mails: Mail[] = [];
  const stopped = new Set<number>();

  before(async () => {
    http = await new Receiver(200).listen();
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString('utf8'),
          });
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    smtpPort = (smtp.server.address() as { port: number }).port;
  });

  after(async () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {}
    }
    cleanup(root, up);
    await http.close();
    await new Promise<void>((r) => smtp.close(() => r()));
  });

  const webhooks = () =>
    http.on('/hook').map((g) => ({ ...g, json: JSON.parse(g.body) as Record<string, unknown> }));
  const pd = () => http.on('/pd').map((g) => JSON.parse(g.body) as Record<string, unknown>);
  const slack = () => http.on('/slack').map((g) => JSON.parse(g.body) as { text: string; blocks: unknown[] });
  async function until<T>(what: string, ms: number, f: () => T | undefined | false): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await sleep(100);
    }
  }

  test('unhealthy instance → one firing, escalation, one resolve; ack via the signed link stops escalation', async () => {
    const extra = `alerts:
  instance_down:
    signal: instance_healthy
    where: { service: web }
    condition: "< 1"
    for: 1s
    severity: critical
    summary: "{{instance}} of {{service}} is unhealthy"
    escalation: ops
channels:
  hook: { kind: webhook, url: "${http.base}/hook", secret: "${SECRET}" }
  pd: { kind: pagerduty, routingKey: "${ROUTING_KEY}", url: "${http.base}/pd" }
  slack: { kind: slack, url: "${http.base}/slack" }
  mail: { kind: email, host: 127.0.0.1, port: ${smtpPort}, from: "nines@example.com", to: ["oncall@example.com"] }
escalations:
  ops:
    levels:
      - notify: [channel:slack]
        after: 6s
      - notify: [channel:mail]
        after: 4s
alerting:
  notify: [hook, pd]
  groupWait: 0s
  groupInterval: 0s
  deployGrace: 0s
`;
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('graceful'), instances: 2, extra }),
    });
    const status = await up.client.get<StatusView>('/v1/status');
    const victim = status.instances[0];
    assert.ok(victim?.pid);
    await sleep(2000);
    assert.equal(http.got.length, 0, 'a healthy fleet notifies nobody');

    // ── episode 1: fire, escalate to level 2, resolve ──────────────────────────────────────────────
    process.kill(victim.pid, 'SIGSTOP');
    stopped.add(victim.pid);
    const firing = await until('the firing webhook', 20_000, () => webhooks()[0]);
    assert.ok(
      verifyWebhookSignature(
        SECRET,
        firing.headers['x-nines-signature'] as string,
        firing.body,
        Date.now() / 1000,
      ),
      'webhook HMAC verifies',
    );
    assert.equal(firing.json.transition, 'firing');
    assert.equal(firing.json.summary, `${victim.id} of web is unhealthy`);
    assert.equal(firing.json.severity, 'critical');
    const key = firing.json.dedupKey as string;
    assert.match(key, /^[0-9a-f]{32}$/);
    assert.equal(firing.headers['x-nines-dedup-key'], key);

    const trigger = await until('PagerDuty trigger', 5000, () => pd()[0]);
    assert.equal(trigger.routing_key, ROUTING_KEY);
    assert.equal(trigger.event_action, 'trigger');
    assert.equal(trigger.dedup_key, key);
    const payload = trigger.payload as Record<string, unknown>;
    assert.equal(payload.source, victim.id);
    assert.equal(payload.severity, 'critical');
    assert.equal(payload.summary, `${victim.id} of web is unhealthy`);
    assert.equal(payload.component, 'web');

    const s1 = await until('Slack (escalation level 1)', 5000, () => slack()[0]);
    assert.match(s1.text, /^\[FIRING\] /);
    assert.ok(Array.isArray(s1.blocks) && s1.blocks.length >= 2);
    const mail = await until('email (escalation level 2, after 6 s without ack)', 15_000, () => mails[0]);
    assert.deepEqual(mail.to, ['oncall@example.com']);
    assert.match(mail.raw, /Subject: \[FIRING\]/);

    process.kill(victim.pid, 'SIGCONT');
    stopped.delete(victim.pid);
    await until('the resolved webhook', 20_000, () =>
      webhooks().find((w) => w.json.transition === 'resolved'),
    );
    await until('PagerDuty resolve', 5000, () => pd().find((e) => e.event_action === 'resolve'));
    await sleep(2500);
    assert.deepEqual(
      webhooks().map((w) => w.json.transition),
      ['firing', 'resolved'],
      'fired once, resolved once',
    );
    assert.deepEqual(
      pd().map((e) => e.event_action),
      ['trigger', 'resolve'],
    );
    assert.deepEqual((pd()[1] as Record<string, unknown>).dedup_key, key);
    // The delivery log: one row per transition and channel, each with its attempts.
    const detail = await up.client.get<{
      events: { type: string }[];
      deliveries: {
        transition: string;
        channel: string;
        state: string;
        attempts: { status: number | null }[];
      }[];
    }>(`/v1/alerts/${key}`);
    // (A pending may precede: instances are unhealthy for a moment while they start.)
    assert.deepEqual(detail.events.map((e) => e.type).slice(-3), ['pending', 'firing', 'resolved']);
    const rows = detail.deliveries.map((d) => `${d.transition.split('@')[0]}→${d.channel}:${d.state}`).sort();
    assert.deepEqual(rows, [
      'escalation:0.0→slack:sent',
      'escalation:0.1→mail:sent',
      'firing→hook:sent',
      'firing→pd:sent',
      'resolved→hook:sent',
      'resolved→pd:sent',
    ]);
    assert.ok(detail.deliveries.every((d) => d.attempts.length >= 1));

    // ── episode 2: fire again, acknowledge through the signed link, no more escalation ──────────────
    const slackBefore = slack().length;
    const mailsBefore = mails.length;
    process.kill(victim.pid, 'SIGSTOP');
    stopped.add(victim.pid);
    const again = await until('the second firing', 20_000, () => webhooks()[2]);
    assert.equal(again.json.transition, 'firing');
    assert.equal(again.json.dedupKey, key, 'the same alert keeps its dedup key across episodes');
    const link = again.json.ackUrl as string;
    assert.ok(link.startsWith(`${up.info.apiUrl}/v1/alerts/ack?token=`), link);

    // GET (what a mail scanner does) only shows the confirm page; no bearer token needed.
    const page = await request(link);
    assert.equal(page.statusCode, 200);
    assert.match(await page.body.text(), /<form method="post"/);
    assert.equal(
      (await up.client.get<{ alert: StoredAlert }>(`/v1/alerts/${key}`)).alert.acknowledged,
      false,
    );
    // A tampered token is refused.
    const bad = await request(`${link.slice(0, -3)}AAA`, { method: 'POST' });
    assert.equal(bad.statusCode, 401);
    assert.equal(((await bad.body.json()) as { error: { code: string } }).error.code, 'NINES_E_ACK_INVALID');
    const ack = await request(link, { method: 'POST' });
    assert.equal(ack.statusCode, 200);
    assert.match(await ack.body.text(), /Acknowledged/);

    await until('PagerDuty acknowledge', 5000, () => pd().find((e) => e.event_action === 'acknowledge'));
    const listed = await cli(dataDir, 'alerts', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const mine = (JSON.parse(listed.stdout) as { alerts: StoredAlert[] }).alerts.find(
      (a) => a.dedupKey === key,
    );
    assert.equal(mine?.state, 'firing');
    assert.equal(mine?.acknowledged, true);
    assert.equal(mine?.acknowledgedBy, 'signed link');

    // Level 2 would have come 6 s after the firing; wait past it: no level-2 mail. Slack (level 1, who
    // was paged) hears that it was acknowledged.
    await sleep(7000);
    assert.equal(mails.length, mailsBefore, 'no level-2 page after the ack');
    assert.deepEqual(
      slack()
        .slice(slackBefore)
        .map((s) => s.text.split(']')[0]),
      ['[FIRING', '[ACKNOWLEDGED'],
    );

    process.kill(victim.pid, 'SIGCONT');
    stopped.delete(victim.pid);
    await until(
      'the second resolve',
      20_000,
      () => webhooks().filter((w) => w.json.transition === 'resolved')[1],
    );
    await sleep(1500);
    assert.deepEqual(
      webhooks().map((w) => w.json.transition),
      ['firing', 'resolved', 'firing', 'acknowledged', 'resolved'],
    );
    assert.deepEqual(
      pd().map((e) => e.event_action),
      ['trigger', 'resolve', 'trigger', 'acknowledge', 'resolve'],
    );
  });

  test('CLI: silences add/list/rm, oncall, channels test, and clear errors', async () => {
    assert.ok(up, 'needs the platform of the previous test');
    const add = await cli(
      dataDir,
      'silences',
      'add',
      'service=web',
      'instance=~"web-.*"',
      '--for',
      '1h',
      '--comment',
      'e2e',
      '--json',
    );
    assert.equal(add.code, 0, add.stderr);
    const id = (JSON.parse(add.stdout) as { silence: { id: string } }).silence.id;
    const list = await cli(dataDir, 'silences');
    assert.match(list.stdout, new RegExp(id));
    assert.match(list.stdout, /instance=~"web-\.\*"/);
    assert.equal((await cli(dataDir, 'silences', 'rm', id)).code, 0);
    const gone = await cli(dataDir, 'silences', 'rm', id);
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, /NINES_E_SILENCE_NOT_FOUND/);
    const badMatcher = await cli(dataDir, 'silences', 'add', 'service', '--for', '1h');
    assert.equal(badMatcher.code, 2);
    assert.match(badMatcher.stderr, /NINES_E_VALIDATION.*a matcher is name=value/);

    const before = http.on('/hook').length;
    const t = await cli(dataDir, 'channels', 'test', 'hook');
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /hook: delivered\n {2}attempt 1: 200/);
    assert.equal(http.on('/hook').length, before + 1);
    const unknown = await cli(dataDir, 'channels', 'test', 'nope');
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /NINES_E_CHANNEL_NOT_FOUND: no channel named "nope" \(channels: hook, pd, slack, mail\)/,
    );
    http.script.set('/hook', [{ status: 400 }]);
    const refused = await cli(dataDir, 'channels', 'test', 'hook');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /NINES_E_DELIVERY_FAILED/);

    const oc = await cli(dataDir, 'oncall');
    assert.equal(oc.code, 0, oc.stderr);
    assert.match(oc.stdout, /escalation ops \(repeat 0\):\n {2}1\. channel:slack/);

    // Config as code covers alerting: no drift after up; a changed section shows in plan and diff.
    const file = join(root, readdirSync(root).find((f) => /^nines-\d+\.yaml$/.test(f)) ?? 'missing');
    const clean = await cli(dataDir, 'diff', '-f', file);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    const changed = join(root, 'changed.yaml');
    writeFileSync(changed, readFileSync(file, 'utf8').replace('groupWait: 0s', 'groupWait: 5s'));
    const drift = await cli(dataDir, 'diff', '-f', changed);
    assert.equal(drift.code, 1);
    assert.match(drift.stdout, /^~ alerting: alerting differ/m);
    assert.match(drift.stdout, /^ {4}~ alerting\.groupWait: 0 → 5000$/m);
    const driftJson = await cli(dataDir, '--json', 'diff', '-f', changed);
    assert.equal(driftJson.code, 1);
    assert.deepEqual((JSON.parse(driftJson.stdout) as { alerting: unknown }).alerting, [
      { path: 'alerting.groupWait', from: 0, to: 5000 },
    ]);

    const ackUnknown = await cli(dataDir, 'alerts', 'ack', 'ffffffffffff');
    assert.equal(ackUnknown.code, 2);
    assert.match(ackUnknown.stderr, /NINES_E_ALERT_NOT_FOUND/);
  });
});
