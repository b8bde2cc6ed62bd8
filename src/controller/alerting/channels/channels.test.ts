import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { emailChannel } from './email.js';
import { pagerDutyChannel } from './pagerduty.js';
import { slackChannel } from './slack.js';
import type { Notification } from './types.js';
import { verifyWebhookSignature, webhookChannel } from './webhook.js';

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A local receiver on 127.0.0.1:0 answering from a per-path script of responses. */
class Receiver {
  server: Server;
  got: Received[] = [];
  script = new Map<string, { status: number; headers?: Record<string, string>; body?: string }[]>();
  base = '';
  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = req.url ?? '/';
        this.got.push({
          method: req.method ?? '',
          url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          at: Date.now(),
        });
        const next = this.script.get(url)?.shift() ?? { status: 200, body: 'ok' };
        res.writeHead(next.status, next.headers ?? {});
        res.end(next.body ?? '');
      });
    });
  }
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  on(path: string): Received[] {
    return this.got.filter((g) => g.url === path);
  }
}

const fast = { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50, maxRetryAfterMs: 5_000 };

const n: Notification = {
  dedupKey: '0123456789abcdef0123456789abcdef',
  transition: 'firing',
  ruleId: 'disk_full',
  summary: 'Disk / on h1 below 10 %',
  severity: 'critical',
  labels: { alertname: 'disk_full', host: 'h1', service: 'web', env: 'prod' },
  annotations: { runbook: 'https://runbooks/disk' },
  startsAt: Date.UTC(2026, 10, 22, 6, 0, 0),
  value: 0.05,
  ackUrl: 'https://nines.example/v1/alerts/ack?token=abc',
  timestamp: Date.UTC(2026, 10, 22, 6, 1, 0),
};

describe('channels on real sockets', () => {
  const rx = new Receiver();
  before(() => rx.start());
  after(() => new Promise<void>((r) => rx.server.close(() => r())));

  it('webhook: JSON POST with a verifiable Stripe-style signature', async () => {
    const ch = webhookChannel({ name: 'hook', url: `${rx.base}/hook`, secret: 's3cret', retry: fast });
    const res = await ch.send(n);
    assert.equal(res.ok, true);
    assert.equal(res.attempts.length, 1);
    assert.equal(res.attempts[0]?.status, 200);
    const [req] = rx.on('/hook');
    assert.ok(req);
    assert.equal(req.method, 'POST');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['x-nines-dedup-key'], n.dedupKey);
    const sig = String(req.headers['x-nines-signature']);
    assert.match(sig, /^t=\d+,v1=[0-9a-f]{64}$/);
    assert.ok(verifyWebhookSignature('s3cret', sig, req.body, Math.floor(Date.now() / 1000)));
    assert.ok(!verifyWebhookSignature('wrong', sig, req.body, Math.floor(Date.now() / 1000)));
    assert.ok(!verifyWebhookSignature('s3cret', sig, `${req.body} `, Math.floor(Date.now() / 1000)));
    assert.ok(!verifyWebhookSignature('s3cret', sig, req.body, Math.floor(Date.now() / 1000) + 301), 'stale');
    assert.deepEqual(JSON.parse(req.body), {
      version: '1',
      dedupKey: n.dedupKey,
      transition: 'firing',
      rule: 'disk_full',
      summary: 'Disk / on h1 below 10 %',
      severity: 'critical',
      labels: { alertname: 'disk_full', host: 'h1', service: 'web', env: 'prod' },
      annotations: { runbook: 'https://runbooks/disk' },
      startsAt: '2026-11-22T06:00:00.000Z',
      endsAt: null,
      value: 0.05,
      ackUrl: 'https://nines.example/v1/alerts/ack?token=abc',
      url: null,
      timestamp: '2026-11-22T06:01:00.000Z',
    });
  });

  it('Slack: text + section, context with labels, acknowledge button', async () => {
    const ch = slackChannel({ name: 'slack', url: `${rx.base}/slack`, retry: fast });
    assert.equal((await ch.send(n)).ok, true);
    const body = JSON.parse(rx.on('/slack')[0]?.body ?? '{}');
    assert.equal(body.text, '[FIRING] Disk / on h1 below 10 %');
    assert.equal(body.blocks.length, 3);
    assert.equal(body.blocks[0].type, 'section');
    assert.equal(body.blocks[0].text.type, 'mrkdwn');
    assert.match(body.blocks[0].text.text, /\*\[FIRING\] Disk \/ on h1 below 10 %\*/);
    assert.deepEqual(body.blocks[1], {
      type: 'context',
      elements: [{ type: 'mrkdwn', text: '`alertname=disk_full` `env=prod` `host=h1` `service=web`' }],
    });
    assert.deepEqual(body.blocks[2], {
      type: 'actions',
      elements: [
        {
          type: 'button',
          text: { type: 'plain_text', text: 'Acknowledge' },
          url: 'https://nines.example/v1/alerts/ack?token=abc',
          action_id: 'nines_ack',
          style: 'primary',
        },
      ],
    });
  });

  it('PagerDuty Events v2: trigger with payload, then resolve with dedup_key only', async () => {
    rx.script.set('/pd', [
      { status: 202, body: '{"status":"success","message":"Event processed","dedup_key":"x"}' },
      { status: 202, body: '{"status":"success"}' },
    ]);
    const ch = pagerDutyChannel({
      name: 'pd',
      routingKey: 'R0UTINGKEY0123456789012345678901',
      url: `${rx.base}/pd`,
      retry: fast,
    });
    assert.equal((await ch.send(n)).ok, true);
    assert.equal((await ch.send({ ...n, transition: 'resolved', endsAt: n.timestamp + 60_000 })).ok, true);
    const [trig, res] = rx.on('/pd').map((r) => JSON.parse(r.body));
    assert.deepEqual(trig, {
      routing_key: 'R0UTINGKEY0123456789012345678901',
      event_action: 'trigger',
      dedup_key: n.dedupKey,
      payload: {
        summary: 'Disk / on h1 below 10 %',
        source: 'h1',
        severity: 'critical',
        timestamp: '2026-11-22T06:01:00.000Z',
        class: 'disk_full',
        component: 'web',
        group: 'prod',
        custom_details: {
          labels: { alertname: 'disk_full', host: 'h1', service: 'web', env: 'prod' },
          annotations: { runbook: 'https://runbooks/disk' },
          value: 0.05,
          firing_since: '2026-11-22T06:00:00.000Z',
        },
      },
      client: 'nines',
    });
    assert.deepEqual(res, {
      routing_key: 'R0UTINGKEY0123456789012345678901',
      event_action: 'resolve',
      dedup_key: n.dedupKey,
    });
  });

  it('429 with Retry-After, then 202: retried after the given delay, every attempt recorded', async () => {
    rx.script.set('/busy', [
      { status: 429, headers: { 'retry-after': '1' }, body: 'slow down' },
      { status: 202, body: '{}' },
    ]);
    const ch = pagerDutyChannel({ name: 'pd-busy', routingKey: 'k', url: `${rx.base}/busy`, retry: fast });
    const res = await ch.send(n);
    assert.equal(res.ok, true);
    assert.deepEqual(
      res.attempts.map((a) => a.status),
      [429, 202],
    );
    assert.equal(res.attempts[0]?.retryInMs, 1000);
    assert.match(res.attempts[0]?.error ?? '', /HTTP 429/);
    const [a, b] = rx.on('/busy');
    assert.ok(b!.at - a!.at >= 990, `waited ${b!.at - a!.at} ms`);
  });

  it('503 with an HTTP-date Retry-After is honoured too; 400 is not retried', async () => {
    rx.script.set('/date', [
      { status: 503, headers: { 'retry-after': new Date(Date.now() + 2000).toUTCString() } },
      { status: 200 },
    ]);
    const res = await webhookChannel({ name: 'h', url: `${rx.base}/date`, retry: fast }).send(n);
    assert.equal(res.ok, true);
    assert.ok((res.attempts[0]?.retryInMs ?? 0) >= 500, `waited ${res.attempts[0]?.retryInMs}`);
    rx.script.set('/bad', [{ status: 400, body: 'invalid routing key' }]);
    const bad = await webhookChannel({ name: 'h', url: `${rx.base}/bad`, retry: fast }).send(n);
    assert.equal(bad.ok, false);
    assert.equal(bad.attempts.length, 1);
    assert.match(bad.error ?? '', /400/);
  });

  it('gives up after N attempts on a dead endpoint, recording each error', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const res = await webhookChannel({ name: 'dead', url: `http://127.0.0.1:${port}/`, retry: fast }).send(n);
    assert.equal(res.ok, false);
    assert.equal(res.attempts.length, 3);
    assert.ok(res.attempts.every((a) => /ECONNREFUSED/.test(a.error ?? '')));
    assert.match(res.error ?? '', /gave up after 3 attempts/);
  });

  it('times out a receiver that never answers', async () => {
    const hang = createServer(() => {});
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hang.address() as AddressInfo).port}/`;
    const res = await webhookChannel({
      name: 'slow',
      url,
      timeoutMs: 200,
      retry: { ...fast, maxAttempts: 1 },
    }).send(n);
    hang.closeAllConnections();
    await new Promise<void>((r) => hang.close(() => r()));
    assert.equal(res.ok, false);
    assert.match(res.attempts[0]?.error ?? '', /timeout|Timeout/);
  });
});

describe('email over SMTP (local smtp-server)', () => {
  const mails: { from: string; to: string[]; raw: string }[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        cb();
      });
    },
  });
  let port = 0;
  before(async () => {
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    port = (smtp.server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => smtp.close(() => r())));

  it('sends subject with state + summary, text and HTML bodies', async () => {
    const ch = emailChannel({
      name: 'mail',
      host: '127.0.0.1',
      port,
      from: 'nines@example.com',
      to: ['oncall@example.com'],
      retry: fast,
    });
    const res = await ch.send(n);
    assert.equal(res.ok, true, res.error);
    assert.equal(mails.length, 1);
    const m = mails[0]!;
    assert.equal(m.from, 'nines@example.com');
    assert.deepEqual(m.to, ['oncall@example.com']);
    const raw = m.raw.replace(/=\r?\n/g, ''); // undo quoted-printable soft breaks
    assert.match(raw, /^Subject: \[FIRING\] Disk \/ on h1 below 10 %\r?$/m);
    assert.match(raw, /X-Nines-Dedup-Key: 0123456789abcdef0123456789abcdef/);
    assert.match(raw, /Content-Type: text\/plain/);
    assert.match(raw, /Content-Type: text\/html/);
    assert.match(raw, /Severity: critical/);
    assert.match(raw, /host=h1/);
    assert.match(
      raw,
      /Acknowledge: https:\/\/nines\.example\/v1\/alerts\/ack\?token=3Dabc|Acknowledge: https:\/\/nines\.example\/v1\/alerts\/ack\?token=abc/,
    );
    assert.match(
      raw,
      /<h2 style=3D"color:#c0392b">FIRING: Disk \/ on h1 below 10 %<\/h2>|<h2 style="color:#c0392b">/,
    );
    const resolved = await ch.send({ ...n, transition: 'resolved', endsAt: n.timestamp + 60_000 });
    assert.equal(resolved.ok, true);
    assert.match(mails[1]!.raw, /^Subject: \[RESOLVED\] Disk \/ on h1 below 10 %\r?$/m);
  });
});
