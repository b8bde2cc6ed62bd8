import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { HaproxyRuntime } from './runtime.js';

/** Test support: a real HAProxy from the system packages, started in the foreground and killed by PID. */

export const HAPROXY_BIN = process.env.NINES_HAPROXY_BIN ?? '/usr/sbin/haproxy';

/** Why HAProxy tests cannot run here, or undefined when they can. */
export function haproxySkipReason(): string | undefined {
  return existsSync(HAPROXY_BIN)
    ? undefined
    : `HAProxy is not installed (${HAPROXY_BIN}; apt-get install haproxy, or set NINES_HAPROXY_BIN)`;
}

export interface RunningHaproxy {
  proc: ChildProcess;
  socket: string;
  port: number;
  runtime: HaproxyRuntime;
  output(): string;
  stop(): Promise<void>;
}

export function freeLoopbackPort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => res(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** The configuration an operator would have: one frontend, one empty backend for the adapter. */
export function haproxyConfig(o: { socket: string; port: number; backend: string }): string {
  return `global
  stats socket ${o.socket} mode 600 level admin
  maxconn 2000

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout queue 10s
  option httpchk GET /healthz

frontend fe
  bind 127.0.0.1:${o.port}
  default_backend ${o.backend}

backend ${o.backend}
  balance roundrobin
  # the adapter adds a server per nines instance; until then the backend has none
`;
}

export async function startHaproxy(dir: string, backend = 'be_web'): Promise<RunningHaproxy> {
  const socket = join(dir, 'haproxy-admin.sock');
  const port = await freeLoopbackPort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig({ socket, port, backend }));
  const proc = spawn(HAPROXY_BIN, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  };
  const runtime = new HaproxyRuntime(socket, 2000);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited: ${out}`);
    try {
      await runtime.command('show info');
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`haproxy did not answer on ${socket}: ${(err as Error).message}\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { proc, socket, port, runtime, output: () => out, stop };
}
