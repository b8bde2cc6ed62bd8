/**
 * Test helpers for the agent (used by *.test.ts only): a small real controller implementing the agent
 * protocol over HTTP, a test app written to disk, and process cleanup by pid.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { packDirectory } from '../core/artifact.js';
import type {
  AgentRegister,
  AgentReport,
  ArtifactRef,
  DesiredInstance,
  HostDesiredState,
  ObservedInstance,
} from '../core/protocol.js';

export class FakeController {
  readonly token = 'test-token';
  hostId = 'host-1';
  generation = 0;
  instances: DesiredInstance[] = [];
  readonly registers: AgentRegister[] = [];
  readonly reports: AgentReport[] = [];
  readonly downloads = new Map<string, number>();
  readonly artifacts = new Map<string, Buffer>();
  readonly polls: { after: number; wait: number }[] = [];
  unauthorized = 0;
  private readonly wakeups = new Set<() => void>();
  private readonly reportWaiters = new Set<() => void>();
  private server!: Server;
  url = '';

  static async start(): Promise<FakeController> {
    const c = new FakeController();
    c.server = createServer((req, res) => {
      c.handle(req, res).catch((err: Error) => {
        res.statusCode = 500;
        res.end(JSON.stringify({ error: { code: 'NINES_E_INTERNAL', message: err.message } }));
      });
    });
    await new Promise<void>((resolve) => c.server.listen(0, '127.0.0.1', resolve));
    c.url = `http://127.0.0.1:${(c.server.address() as AddressInfo).port}`;
    return c;
  }

  async close(): Promise<void> {
    for (const w of this.wakeups) w();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  setDesired(instances: DesiredInstance[]): void {
    this.instances = instances;
    this.generation++;
    for (const w of [...this.wakeups]) w();
  }

  /** Packs `dir` as release `version` of `service` and serves it. */
  async addRelease(service: string, version: string, dir: string, outFile: string): Promise<ArtifactRef> {
    const { sha256, size } = await packDirectory(dir, outFile);
    const url = `/v1/services/${service}/releases/${version}/artifact`;
    this.artifacts.set(url, readFileSync(outFile));
    return { version, sha256, size, url };
  }

  /** Resolves once the agent has sent `n` long polls. */
  async waitPolls(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.polls.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} polls`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The instance as the agent last reported it. */
  latest(id: string): ObservedInstance | undefined {
    return this.reports.at(-1)?.instances.find((i) => i.id === id);
  }

  /** Resolves with the first non-undefined value of `fn` over the reports (past and future). */
  async waitFor<T>(
    what: string,
    fn: (r: AgentReport) => T | undefined,
    timeoutMs = 15_000,
    fromIndex = 0,
  ): Promise<T> {
    let seen = fromIndex;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (; seen < this.reports.length; seen++) {
        const v = fn(this.reports[seen]!);
        if (v !== undefined) return v;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; last report: ${JSON.stringify(this.reports.at(-1))}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(left, 500));
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.reportWaiters.add(done);
      });
    }
  }

  /** Waits for a report (from report number `fromIndex` on) showing instance `id` matching `pred`. */
  waitInstance(
    id: string,
    pred: (i: ObservedInstance) => boolean,
    what: string,
    timeoutMs?: number,
    fromIndex = 0,
  ): Promise<ObservedInstance> {
    return this.waitFor(
      `${id}: ${what}`,
      (r) => {
        const i = r.instances.find((x) => x.id === id);
        return i && pred(i) ? i : undefined;
      },
      timeoutMs,
      fromIndex,
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      this.unauthorized++;
      return send(res, 401, { error: { code: 'NINES_E_AUTH_REQUIRED', message: 'no token' } });
    }
    const body = await readBody(req);
    if (req.method === 'POST' && u.pathname === '/v1/agent/register') {
      this.registers.push(JSON.parse(body) as AgentRegister);
      return send(res, 200, { hostId: this.hostId });
    }
    if (req.method === 'POST' && u.pathname === '/v1/agent/report') {
      this.reports.push(JSON.parse(body) as AgentReport);
      for (const w of [...this.reportWaiters]) {
        this.reportWaiters.delete(w);
        w();
      }
      res.statusCode = 204;
      return void res.end();
    }
    if (req.method === 'GET' && u.pathname === '/v1/agent/desired') {
      const after = Number(u.searchParams.get('after') ?? 0);
      const wait = Number(u.searchParams.get('wait') ?? 0);
      this.polls.push({ after, wait });
      for (const w of [...this.reportWaiters]) {
        this.reportWaiters.delete(w);
        w();
      }
      if (u.searchParams.get('hostId') !== this.hostId) {
        return send(res, 404, { error: { code: 'NINES_E_HOST_NOT_FOUND', message: 'unknown host' } });
      }
      if (this.generation <= after) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, wait * 1000);
          const wakeups = this.wakeups;
          function done(): void {
            clearTimeout(t);
            wakeups.delete(done);
            resolve();
          }
          this.wakeups.add(done);
        });
      }
      const state: HostDesiredState = {
        hostId: this.hostId,
        generation: this.generation,
        instances: this.instances,
      };
      return send(res, 200, state);
    }
    const art = this.artifacts.get(u.pathname);
    if (req.method === 'GET' && art) {
      this.downloads.set(u.pathname, (this.downloads.get(u.pathname) ?? 0) + 1);
      res.setHeader('content-type', 'application/gzip');
      return void res.end(art);
    }
    return send(res, 404, { error: { code: 'NINES_E_NOT_FOUND', message: `${req.method} ${u.pathname}` } });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed) return;
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A small app: HTTP on $PORT with /healthz. Behaviour from env: PID_DIR (records its pid there),
 * CRASH_AFTER_MS (exits 3 after that long; only the first run when CRASH_ONCE_FILE is set),
 * IGNORE_TERM=1, UNHEALTHY=1; POST /health/fail and /health/ok toggle health.
 */
export const TEST_APP = `
import { createServer } from 'node:http';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const env = process.env;
if (env.PID_DIR) writeFileSync(join(env.PID_DIR, String(process.pid)), '');
let healthy = env.UNHEALTHY !== '1';
const server = createServer((req, res) => {
  if (req.url === '/healthz') { res.statusCode = healthy ? 200 : 503; return res.end(healthy ? 'ok' : 'sick'); }
  if (req.url === '/health/fail') { healthy = false; return res.end('now failing'); }
  if (req.url === '/health/ok') { healthy = true; return res.end('now ok'); }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid, cwd: process.cwd(), env: {
    PORT: env.PORT, NINES_INSTANCE_ID: env.NINES_INSTANCE_ID, NINES_SERVICE: env.NINES_SERVICE,
    NINES_RELEASE: env.NINES_RELEASE, NINES_HOST_ID: env.NINES_HOST_ID, GREETING: env.GREETING,
    SECRET_OF_AGENT: env.SECRET_OF_AGENT } }));
});
server.listen(Number(env.PORT), '127.0.0.1', () => console.log('listening on ' + env.PORT + ' pid ' + process.pid));
if (env.CRASH_AFTER_MS) {
  const once = env.CRASH_ONCE_FILE;
  if (!once || !existsSync(once)) {
    if (once) writeFileSync(once, '');
    setTimeout(() => { console.log('crashing'); process.exit(3); }, Number(env.CRASH_AFTER_MS));
  }
}
process.on('SIGTERM', () => {
  if (env.IGNORE_TERM === '1') { console.log('got SIGTERM, ignoring it'); return; }
  console.log('got SIGTERM, exiting');
  server.close();
  setTimeout(() => process.exit(0), 20);
});
`;

export function writeTestApp(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'app.mjs'), TEST_APP);
}

/** The command that runs the test app with this very node binary. */
export const TEST_APP_COMMAND = `'${process.execPath}' app.mjs`;

/** SIGKILLs every process whose pid the test apps recorded in `pidDir`. */
export function killRecorded(pidDir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(pidDir);
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number(n);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
