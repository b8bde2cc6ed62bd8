import nodemailer from 'nodemailer';
import {
  type AttemptOutcome,
  DEFAULT_RETRY,
  deliverWithRetry,
  type RetryDeps,
  type RetryPolicy,
} from './delivery.js';
import { type Channel, type DeliveryResult, type Notification, stateWord } from './types.js';

export interface EmailConfig {
  name: string;
  host: string;
  port: number;
  /** Implicit TLS (port 465). Otherwise STARTTLS is used when the server offers it. */
  secure?: boolean;
  /** Refuse to send without STARTTLS. */
  requireTLS?: boolean;
  auth?: { user: string; pass: string };
  from: string;
  to: readonly string[];
  timeoutMs?: number;
  retry?: RetryPolicy;
}

export function emailSubject(n: Notification): string {
  return `[${stateWord(n)}] ${n.summary}`.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function emailText(n: Notification): string {
  const lines = [
    `${stateWord(n)}: ${n.summary}`,
    '',
    `Severity: ${n.severity}`,
    `Rule: ${n.ruleId}`,
    `Since: ${iso(n.startsAt)}`,
  ];
  if (n.endsAt !== undefined) lines.push(`Resolved: ${iso(n.endsAt)}`);
  if (n.value !== undefined) lines.push(`Value: ${n.value}`);
  lines.push('', 'Labels:');
  for (const k of Object.keys(n.labels).sort()) lines.push(`  ${k}=${n.labels[k]}`);
  if (n.ackUrl !== undefined && n.transition === 'firing') lines.push('', `Acknowledge: ${n.ackUrl}`);
  if (n.url !== undefined) lines.push(`Details: ${n.url}`);
  lines.push('', `Dedup key: ${n.dedupKey}`);
  return `${lines.join('\n')}\n`;
}

export function htmlEscape(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export function emailHtml(n: Notification): string {
  const color = n.transition === 'firing' ? '#c0392b' : n.transition === 'resolved' ? '#27ae60' : '#e67e22';
  const rows = Object.keys(n.labels)
    .sort()
    .map((k) => `<tr><td>${htmlEscape(k)}</td><td>${htmlEscape(n.labels[k] ?? '')}</td></tr>`)
    .join('');
  const ack =
    n.ackUrl !== undefined && n.transition === 'firing'
      ? `<p><a href="${htmlEscape(n.ackUrl)}">Acknowledge</a></p>`
      : '';
  return [
    '<!doctype html><html><body>',
    `<h2 style="color:${color}">${htmlEscape(stateWord(n))}: ${htmlEscape(n.summary)}</h2>`,
    `<p>Severity: <b>${htmlEscape(n.severity)}</b><br>Rule: <code>${htmlEscape(n.ruleId)}</code><br>Since: ${iso(n.startsAt)}</p>`,
    `<table>${rows}</table>`,
    ack,
    `<p style="color:#888">Dedup key: ${htmlEscape(n.dedupKey)}</p>`,
    '</body></html>',
  ].join('\n');
}

export function emailChannel(cfg: EmailConfig, deps: RetryDeps = {}): Channel {
  const timeout = cfg.timeoutMs ?? 15_000;
  const transport = nodemailer.createTransport({
    host: cfg.host,
    port: cfg.port,
    secure: cfg.secure ?? false,
    requireTLS: cfg.requireTLS ?? false,
    ...(cfg.auth === undefined ? {} : { auth: cfg.auth }),
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  return {
    kind: 'email',
    name: cfg.name,
    send(n: Notification): Promise<DeliveryResult> {
      return deliverWithRetry(
        cfg.name,
        async (): Promise<AttemptOutcome> => {
          try {
            await transport.sendMail({
              from: cfg.from,
              to: [...cfg.to],
              subject: emailSubject(n),
              text: emailText(n),
              html: emailHtml(n),
              headers: { 'X-Nines-Dedup-Key': n.dedupKey },
            });
            return { ok: true, status: 250, retryable: false };
          } catch (err) {
            const e = err as Error & { responseCode?: number; code?: string };
            // SMTP 5xx is permanent (bad address, refused); 4xx and connection errors are transient.
            const permanent = e.responseCode !== undefined && e.responseCode >= 500;
            return {
              ok: false,
              ...(e.responseCode === undefined ? {} : { status: e.responseCode }),
              error: e.code ? `${e.code}: ${e.message}` : e.message,
              retryable: !permanent,
            };
          }
        },
        cfg.retry ?? DEFAULT_RETRY,
        deps,
      );
    },
  };
}
