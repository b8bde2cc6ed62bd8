import type { Logger } from 'pino';
import { Agent } from 'undici';
import { Failover } from '../core/failover.js';
import type { ProxyReport } from '../core/protocol.js';
import type { Proxy as NinesProxy } from './proxy.js';
import { parseSnapshot } from './snapshot.js';

/**
 * What the link drives: the nines proxy, or the HAProxy adapter (src/haproxy), which follows the same
 * snapshots and reports the same way. `snapshotVersion` (default: the applied version) is what the
 * next poll asks to be newer than — a target that received a snapshot but could not apply it yet must
 * not have the controller answer the same snapshot again at once.
 */
export type LinkTarget = Pick<NinesProxy, 'report' | 'applySnapshot' | 'onReportChange'> & {
  snapshotVersion?(): number;
};

export interface ControllerLinkOptions {
  /** e.g. `http://127.0.0.1:7070` (a path prefix is kept), or several controllers to fail over between. */
  baseUrl: string | readonly string[];
  token: string;
  /** PEM CA bundle for an https controller signed by a private CA. */
  ca?: string;
  proxy: LinkTarget;
  logger: Logger;
  /** Long-poll wait the controller is asked for, in seconds. Default 25. */
  waitSeconds?: number;
  /** Heartbeat: the report is sent at least this often. Default 1000. */
  reportIntervalMs?: number;
  /** Cap of the back-off after controller errors. Default 2000. */
  maxBackoffMs?: number;
}

/**
 * The proxy's side of the protocol: long-polls the routing snapshot and applies it, and reports the
 * proxy's view (applied version, instance up/in-flight/drained) on every change and as a heartbeat.
 * When the controller is unreachable it backs off and retries; the proxy keeps serving its last
 * snapshot, so a lost controller changes nothing on the data path.
 */
export class ControllerLink {
  private readonly proxy: LinkTarget;
  private readonly logger: Logger;
  private readonly pool: Agent;
  private readonly endpoints: Failover;
  private readonly authorization: string;
  private readonly waitSeconds: number;
  private readonly reportIntervalMs: number;
  private readonly maxBackoffMs: number;
  private running = false;
  private abort: AbortController | null = null;
  private pollLoop: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;
  private reportDirty = false;
  private pollFailures = 0;
  private reportFailing = false;
  private sleepTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;

  constructor(opts: ControllerLinkOptions) {
    this.proxy = opts.proxy;
    this.logger = opts.logger;
    this.endpoints = new Failover(opts.baseUrl, {
      onSwitch: (from, to, why) => this.logger.warn({ from, to, why }, 'proxy link: switching controller'),
    });
    this.pool = new Agent({
      connections: 4,
      pipelining: 1,
      ...(opts.ca ? { connect: { ca: opts.ca } } : {}),
    });
    this.authorization = `Bearer ${opts.token}`;
    this.waitSeconds = opts.waitSeconds ?? 25;
    this.reportIntervalMs = opts.reportIntervalMs ?? 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 2000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.unsubscribe = this.proxy.onReportChange(() => this.sendReport());
    this.pollLoop = this.poll();
    this.sendReport();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.heartbeat !== null) clearTimeout(this.heartbeat);
    this.heartbeat = null;
    this.abort?.abort();
    if (this.sleepTimer !== null) clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.pollLoop;
    await this.sending;
    await this.pool.destroy().catch(() => {});
  }

  // ---- snapshots --------------------------------------------------------------------------------

  private async poll(): Promise<void> {
    while (this.running) {
      const after = this.proxy.snapshotVersion?.() ?? this.proxy.report().appliedVersion;
      const started = Date.now();
      let newer = false;
      try {
        const snapshot = await this.endpoints.run(async (base, signal) => {
          const u = new URL(base);
          const res = await this.pool.request({
            origin: u.origin,
            path: `${u.pathname.replace(/\/+$/, '')}/v1/proxy/snapshot?after=${after}&wait=${this.waitSeconds}`,
            method: 'GET',
            headers: { authorization: this.authorization, accept: 'application/json' },
            headersTimeout: (this.waitSeconds + 10) * 1000,
            bodyTimeout: 30_000,
            signal,
          });
          if (res.statusCode !== 200) {
            const text = await res.body.text().catch(() => '');
            throw httpFailure('snapshot', res.statusCode, text);
          }
          return parseSnapshot(await res.body.json());
        }, this.abort!.signal);
        if (snapshot.version > after) {
          newer = true;
          this.proxy.applySnapshot(snapshot);
        }
        if (this.pollFailures > 0) {
          this.logger.info({ failures: this.pollFailures }, 'proxy link: controller reachable again');
        }
        this.pollFailures = 0;
      } catch (err) {
        if (!this.running) return;
        this.pollFailures++;
        const level = this.pollFailures === 1 || this.pollFailures % 30 === 0 ? 'warn' : 'debug';
        this.logger[level](
          { err: errText(err), failures: this.pollFailures },
          'proxy link: snapshot poll failed; serving the current snapshot',
        );
        await this.sleep(this.backoff());
        continue;
      }
      // A well-behaved controller only answers early with something newer; never spin on one that does not.
      if (!newer && Date.now() - started < 1000) await this.sleep(1000);
    }
  }

  private backoff(): number {
    const base = Math.min(this.maxBackoffMs, 100 * 2 ** Math.min(this.pollFailures - 1, 10));
    return Math.round(base * (0.5 + Math.random() / 2));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (!this.running) return resolve();
      this.wake = resolve;
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = null;
        this.wake = null;
        resolve();
      }, ms);
    });
  }

  // ---- reports ----------------------------------------------------------------------------------

  /** Coalesced: one report in flight at a time; a change during it sends one more afterwards. */
  private sendReport(): void {
    if (!this.running) return;
    if (this.sending !== null) {
      this.reportDirty = true;
      return;
    }
    if (this.heartbeat !== null) clearTimeout(this.heartbeat);
    this.heartbeat = null;
    this.sending = this.postReport(this.proxy.report()).finally(() => {
      this.sending = null;
      if (!this.running) return;
      if (this.reportDirty) {
        this.reportDirty = false;
        this.sendReport();
        return;
      }
      this.heartbeat = setTimeout(() => {
        this.heartbeat = null;
        this.sendReport();
      }, this.reportIntervalMs);
      this.heartbeat.unref();
    });
  }

  private async postReport(report: ProxyReport): Promise<void> {
    try {
      await this.endpoints.run(async (base, signal) => {
        const u = new URL(base);
        const res = await this.pool.request({
          origin: u.origin,
          path: `${u.pathname.replace(/\/+$/, '')}/v1/proxy/report`,
          method: 'POST',
          headers: { authorization: this.authorization, 'content-type': 'application/json' },
          body: JSON.stringify(report),
          headersTimeout: 5000,
          bodyTimeout: 5000,
          signal,
        });
        const text = await res.body.text().catch(() => '');
        if (res.statusCode >= 300) throw httpFailure('report', res.statusCode, text);
      }, this.abort!.signal);
      if (this.reportFailing) this.logger.info('proxy link: reports accepted again');
      this.reportFailing = false;
    } catch (err) {
      if (!this.running) return;
      if (!this.reportFailing) this.logger.warn({ err: errText(err) }, 'proxy link: report failed');
      this.reportFailing = true;
    }
  }
}

/** An error answer, with what failover needs: status, code and the leader a follower names. */
function httpFailure(what: string, status: number, text: string): Error {
  let code: string | undefined;
  let leader: string | null = null;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; details?: { leader?: unknown } } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.details?.leader === 'string') leader = body.error.details.leader;
  } catch {
    // not an error body
  }
  return Object.assign(new Error(`${what}: HTTP ${status}${code ? ` ${code}` : ''} ${text.slice(0, 200)}`), {
    status,
    code,
    leader,
  });
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}
