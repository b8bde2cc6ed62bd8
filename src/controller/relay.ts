import type { FastifyReply, FastifyRequest } from 'fastify';
import { Agent, request } from 'undici';
import { NinesError } from '../core/errors.js';

/**
 * A follower relays what people ask of it (the CLI, the dashboard, Prometheus: bearer tokens of role
 * admin, read or metrics) to the leader, so every controller serves the whole API — behind a load
 * balancer too — and not only the reads the shared store can answer. Agents and proxies are not relayed:
 * they fail over to the leader themselves (core/failover.ts), and their long polls belong on it.
 * The leader authenticates the relayed request again; one hop only (a relayed request that meets a
 * follower, during a takeover, gets NINES_E_NOT_LEADER like any other).
 */
export const RELAYED_BY = 'x-nines-relayed-by';
export const SERVED_BY = 'x-nines-served-by';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

export function mayRelay(req: FastifyRequest): boolean {
  const p = req.principal;
  if (!p || p.hostId !== undefined) return false;
  if (p.role !== 'admin' && p.role !== 'read' && p.role !== 'metrics') return false;
  return req.headers[RELAYED_BY] === undefined && req.headers.upgrade === undefined;
}

export class LeaderRelay {
  // The dashboard's event stream and long polls stay open: no body timeout; the head comes quickly.
  private readonly http = new Agent({ headersTimeout: 60_000, bodyTimeout: 0, keepAliveTimeout: 10_000 });

  constructor(private readonly selfId: () => string) {}

  async relay(req: FastifyRequest, reply: FastifyReply, leader: string): Promise<FastifyReply> {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    }
    headers[RELAYED_BY] = this.selfId();
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const abort = new AbortController();
    // The response's close, not the request's: a request emits 'close' once its body has been read.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(leader + req.url, {
        method: req.method as 'GET',
        headers,
        dispatcher: this.http,
        signal: abort.signal,
        ...(hasBody ? { body: req.raw } : {}),
      });
    } catch (err) {
      throw new NinesError(
        'NINES_E_NOT_LEADER',
        `this controller is a follower and could not reach the leader ${leader}: ${(err as Error).message}`,
        { leader },
      );
    }
    reply.code(res.statusCode);
    for (const [k, v] of Object.entries(res.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k)) reply.header(k, v);
    }
    reply.header(SERVED_BY, leader);
    return reply.send(res.body);
  }

  close(): Promise<void> {
    return this.http.close();
  }
}
