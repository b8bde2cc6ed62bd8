import { promises as dns } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import {
  type AgentCheckResults,
  type AgentChecks,
  type CheckResult,
  type CheckSpec,
  judgeHttp,
} from '../core/checks.js';
import { withDeadline } from '../core/deadline.js';
import { controllerRetryDelayMs } from './backoff.js';
import { sleep } from './poll.js';

/**
 * Runs the black-box checks the controller hands this host (`GET /v1/agent/checks`, long poll) and
 * sends the results back in batches (`POST /v1/agent/checks/results`). Every host is a probe
 * location; the controller decides up/degraded/down from all of them.
 */

const MAX_BODY = 1024 * 1024;
const DAY_MS = 86_400_000;

export interface CheckTransport {
  checks(hostId: string, after: number, waitS: number, signal: AbortSignal): Promise<AgentChecks>;
  checkResults(body: AgentCheckResults, signal: AbortSignal): Promise<void>;
}

export interface CheckRunnerOptions {
  transport: CheckTransport;
  hostId: () => string | undefined;
  logger: Logger;
  signal: AbortSignal;
  /** Long-poll wait in seconds (default 25). */
  pollWaitS?: number;
  /** Results are sent at most this often (default 1000 ms). */
  flushMs?: number;
  /**
   * Probes in flight at once at most (default 256; a probe over the limit is retried within 0.5 s); a
   * check whose last probe still runs is skipped.
   */
  maxConcurrent?: number;
}

/** Results kept while the controller is unreachable (the oldest go first). */
const MAX_BUFFERED = 20_000;

export class CheckRunner {
  private readonly o: CheckRunnerOptions;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<string>();
  private specs = new Map<string, CheckSpec>();
  private specsJson = new Map<string, string>();
  private buffer: CheckResult[] = [];
  private inflight = 0;
  private version = 0;

  constructor(o: CheckRunnerOptions) {
    this.o = o;
  }

  /** The checks this runner currently schedules. */
  get checks(): CheckSpec[] {
    return [...this.specs.values()];
  }

  async run(): Promise<void> {
    await Promise.all([this.pollLoop(), this.flushLoop()]);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** Replaces the set of checks: new ones start, changed ones restart, removed ones stop. */
  setChecks(specs: readonly CheckSpec[]): void {
    const next = new Map(specs.map((s) => [s.name, s]));
    for (const name of this.specs.keys()) {
      if (!next.has(name)) {
        clearTimeout(this.timers.get(name));
        this.timers.delete(name);
        this.specsJson.delete(name);
      }
    }
    this.specs = next;
    for (const s of specs) {
      const json = JSON.stringify(s);
      if (this.specsJson.get(s.name) === json) continue;
      this.specsJson.set(s.name, json);
      clearTimeout(this.timers.get(s.name));
      // Spread the first probes over the interval (stable per name), so 1,000 checks with the same
      // interval do not all fire in the same second, and every location keeps an even load.
      this.arm(s.name, s.interval * spread(s.name));
    }
  }

  private arm(name: string, delayMs: number): void {
    if (this.o.signal.aborted) return;
    const t = setTimeout(() => {
      const spec = this.specs.get(name);
      if (!spec) return;
      this.arm(name, spec.interval);
      void this.fire(spec);
    }, delayMs);
    t.unref?.();
    this.timers.set(name, t);
  }

  private async fire(spec: CheckSpec): Promise<void> {
    if (this.running.has(spec.name)) return;
    if (this.inflight >= (this.o.maxConcurrent ?? 256)) {
      // Too many probes in flight: try again shortly rather than skip a whole interval.
      clearTimeout(this.timers.get(spec.name));
      this.arm(spec.name, 100 + 400 * Math.random());
      return;
    }
    this.running.add(spec.name);
    this.inflight++;
    try {
      const r = await runCheck(spec);
      if (this.specs.get(spec.name) === spec) this.push(r);
    } finally {
      this.running.delete(spec.name);
      this.inflight--;
    }
  }

  private push(r: CheckResult): void {
    this.buffer.push(r);
    if (this.buffer.length > MAX_BUFFERED) this.buffer.splice(0, this.buffer.length - MAX_BUFFERED);
  }

  private async pollLoop(): Promise<void> {
    const signal = this.o.signal;
    let failures = 0;
    while (!signal.aborted) {
      const hostId = this.o.hostId();
      if (!hostId) {
        await sleep(200, signal);
        continue;
      }
      try {
        const a = await this.o.transport.checks(hostId, this.version, this.o.pollWaitS ?? 25, signal);
        if (a.version !== this.version || a.version === 0) {
          this.version = a.version;
          this.setChecks(a.checks);
          this.o.logger.info({ checks: a.checks.length, version: a.version }, 'checks changed');
        }
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        const delay = controllerRetryDelayMs(failures++);
        this.o.logger.debug({ err: (err as Error).message, retryInMs: delay }, 'checks poll failed');
        await sleep(delay, signal);
      }
    }
  }

  private async flushLoop(): Promise<void> {
    const signal = this.o.signal;
    while (!signal.aborted) {
      await sleep(this.o.flushMs ?? 1000, signal);
      const hostId = this.o.hostId();
      if (!hostId || this.buffer.length === 0) continue;
      const batch = this.buffer.splice(0, 5000);
      try {
        await withDeadline(10_000, signal, (s) =>
          this.o.transport.checkResults({ hostId, results: batch }, s),
        );
      } catch (err) {
        if (signal.aborted) break;
        // Put them back in front: the controller orders by time anyway, and nothing is lost on a blip.
        this.buffer.unshift(...batch);
        if (this.buffer.length > MAX_BUFFERED) this.buffer.splice(0, this.buffer.length - MAX_BUFFERED);
        this.o.logger.debug({ err: (err as Error).message }, 'check results not delivered');
      }
    }
  }
}

/** A stable fraction in [0, 1) from a name. */
function spread(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return (h >>> 0) / 2 ** 32;
}

/** One probe. Never throws: every failure is a result with `ok: false` and why. */
export async function runCheck(spec: CheckSpec): Promise<CheckResult> {
  const at = Date.now();
  const t0 = performance.now();
  try {
    switch (spec.type) {
      case 'http':
        return await httpCheck(spec, at, t0);
      case 'tcp':
        await tcpConnect(spec.host, spec.port, spec.timeout);
        return { check: spec.name, at, ok: true, latencyMs: performance.now() - t0, message: 'connected' };
      case 'dns':
        return await dnsCheck(spec, at, t0);
    }
  } catch (err) {
    return { check: spec.name, at, ok: false, latencyMs: performance.now() - t0, message: errMessage(err) };
  }
}

function errMessage(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const m = e?.message ?? String(err);
  return (e?.code && !m.includes(e.code) ? `${e.code}: ${m}` : m).slice(0, 500);
}

async function httpCheck(
  spec: Extract<CheckSpec, { type: 'http' }>,
  at: number,
  t0: number,
): Promise<CheckResult> {
  const url = new URL(spec.url);
  const tls = url.protocol === 'https:';
  const { res, body, certDaysLeft } = await new Promise<{
    res: IncomingMessage;
    body: string;
    certDaysLeft?: number;
  }>((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(
      url,
      {
        method: spec.method,
        headers: { 'user-agent': 'nines-check', ...spec.headers },
        agent: false,
        ...(tls ? { rejectUnauthorized: !spec.insecure, servername: url.hostname } : {}),
      },
      (res) => {
        let certDaysLeft: number | undefined;
        if (tls) {
          const cert = (res.socket as TLSSocket).getPeerCertificate?.();
          const notAfter = cert?.valid_to ? Date.parse(cert.valid_to) : Number.NaN;
          if (Number.isFinite(notAfter)) certDaysLeft = (notAfter - Date.now()) / DAY_MS;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size < MAX_BODY) chunks.push(c);
          size += c.length;
        });
        res.on('end', () =>
          resolve({
            res,
            body: Buffer.concat(chunks).toString('utf8'),
            ...(certDaysLeft !== undefined ? { certDaysLeft } : {}),
          }),
        );
        res.on('error', reject);
      },
    );
    const timer = setTimeout(
      () =>
        req.destroy(Object.assign(new Error(`no answer within ${spec.timeout} ms`), { code: 'ETIMEDOUT' })),
      spec.timeout,
    );
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(spec.body);
  });
  const latencyMs = performance.now() - t0;
  const status = res.statusCode ?? 0;
  const verdict = judgeHttp(spec, {
    status,
    body,
    latencyMs,
    ...(certDaysLeft !== undefined ? { certDaysLeft } : {}),
  });
  return {
    check: spec.name,
    at,
    ok: verdict.ok,
    latencyMs,
    message: verdict.message,
    status,
    ...(certDaysLeft !== undefined ? { certDaysLeft: Math.floor(certDaysLeft * 10) / 10 } : {}),
  };
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function dnsCheck(
  spec: Extract<CheckSpec, { type: 'dns' }>,
  at: number,
  t0: number,
): Promise<CheckResult> {
  const r = new dns.Resolver({ timeout: spec.timeout, tries: 1 });
  if (spec.server) r.setServers([spec.server]);
  let answers: string[];
  switch (spec.record) {
    case 'A':
      answers = await r.resolve4(spec.query);
      break;
    case 'AAAA':
      answers = await r.resolve6(spec.query);
      break;
    case 'CNAME':
      answers = await r.resolveCname(spec.query);
      break;
    case 'MX':
      answers = (await r.resolveMx(spec.query)).map((m) => `${m.priority} ${m.exchange}`);
      break;
    case 'TXT':
      answers = (await r.resolveTxt(spec.query)).map((t) => t.join(''));
      break;
    case 'NS':
      answers = await r.resolveNs(spec.query);
      break;
  }
  const latencyMs = performance.now() - t0;
  const shown = answers.slice(0, 5).join(', ');
  if (spec.expect !== undefined && !answers.some((a) => a.includes(spec.expect ?? ''))) {
    return {
      check: spec.name,
      at,
      ok: false,
      latencyMs,
      message: `no ${spec.record} answer contains ${JSON.stringify(spec.expect)} (got ${shown || 'none'})`,
    };
  }
  if (answers.length === 0)
    return { check: spec.name, at, ok: false, latencyMs, message: `no ${spec.record} answer` };
  return { check: spec.name, at, ok: true, latencyMs, message: shown };
}
