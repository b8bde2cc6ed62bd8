import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a local receiver got. */
export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/**
 * A real HTTP receiver on 127.0.0.1:0 for notification tests (webhook, Slack, PagerDuty): records every
 * request and answers from a per-path script (default 200 / PagerDuty-style 202 when `status` is set).
 */
export class Receiver {
  readonly server: Server;
  readonly got: Received[] = [];
  readonly script = new Map<string, { status: number; headers?: Record<string, string>; body?: string }[]>();
  base = '';
  private waiters: (() => void)[] = [];

  constructor(private readonly defaultStatus = 200) {
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
        const next = this.script.get(url)?.shift() ?? { status: this.defaultStatus, body: 'ok' };
        res.writeHead(next.status, next.headers ?? {});
        res.end(next.body ?? '');
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  on(path: string): Received[] {
    return this.got.filter((g) => g.url === path);
  }

  /** Resolves once `pred` holds over what was received (checked after each request), or rejects after ms. */
  async waitFor(pred: (got: Received[]) => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.got)) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out after ${ms} ms waiting for ${what}; got ${this.got.length} requests`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
