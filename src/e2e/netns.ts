import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { cliPath, type Proc } from './harness.js';

/**
 * Network namespaces for multi-host tests: one namespace per host with its own address on a bridge
 * in the root namespace, where the controller and the proxy run. Cutting a host's link (its veth end
 * on the bridge down) is a host or zone outage as the rest of the fleet sees it: packets vanish, no
 * resets. Needs root and `ip`; `skipReason()` says why not when they are missing.
 */

export function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns, veth)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'needs iproute2 (`ip`)';
  }
  return undefined;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export interface LabHost {
  name: string;
  zone: string;
  ns: string;
  address: string;
  /** The veth end on the bridge (root namespace): down = the host is cut off. */
  link: string;
}

export class Lab {
  readonly id = randomInt(0x1000, 0xffff).toString(16);
  /** 10.<net>.0.0/16: random, so parallel labs do not collide. */
  readonly net = randomInt(100, 250);
  readonly bridge: string;
  readonly gateway: string;
  readonly hosts: LabHost[] = [];
  private zones: string[] = [];

  constructor() {
    this.bridge = `n9b${this.id}`;
    this.gateway = `10.${this.net}.0.1`;
  }

  setup(): void {
    ip('link', 'add', this.bridge, 'type', 'bridge');
    ip('addr', 'add', `${this.gateway}/16`, 'dev', this.bridge);
    ip('link', 'set', this.bridge, 'up');
  }

  addHost(name: string, zone: string): LabHost {
    if (!this.zones.includes(zone)) this.zones.push(zone);
    const n = this.hosts.length + 1;
    const h: LabHost = {
      name,
      zone,
      ns: `n9-${this.id}-${name}`,
      address: `10.${this.net}.${this.zones.indexOf(zone) + 1}.${n + 1}`,
      link: `n9${this.id}h${n}`,
    };
    const inner = `n9${this.id}i${n}`;
    ip('netns', 'add', h.ns);
    ip('link', 'add', h.link, 'type', 'veth', 'peer', 'name', inner);
    ip('link', 'set', inner, 'netns', h.ns);
    ip('link', 'set', h.link, 'master', this.bridge);
    ip('link', 'set', h.link, 'up');
    ip('-n', h.ns, 'addr', 'add', `${h.address}/16`, 'dev', inner);
    ip('-n', h.ns, 'link', 'set', inner, 'up');
    ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    this.hosts.push(h);
    return h;
  }

  host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no lab host ${name}`);
    return h;
  }

  /** Cut (down) or restore (up) the links of these hosts. */
  setLinks(hosts: readonly LabHost[], up: boolean): void {
    for (const h of hosts) ip('link', 'set', h.link, up ? 'up' : 'down');
  }

  /** Remove every namespace and the bridge (veths go with their namespace). */
  destroy(): void {
    for (const h of this.hosts) {
      // The root end first: a namespace torn down lazily by the kernel would leave it behind.
      try {
        ip('link', 'del', h.link);
      } catch {}
      try {
        ip('netns', 'del', h.ns);
      } catch {}
    }
    try {
      ip('link', 'del', this.bridge);
    } catch {}
  }
}

/** `nines …` inside a host's namespace (via `ip netns exec`); waits for its `ready:` line. */
export async function spawnCliIn(ns: string, args: string[], timeoutMs = 30_000): Promise<Proc> {
  const proc: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, cliPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString();
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const ready = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      rej(new Error(`${args.join(' ')} in ${ns} not ready after ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const check = () => {
      const m = /^ready: (.*)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1] ?? '');
      }
    };
    proc.stdout?.on('data', check);
    exited.then(() => {
      clearTimeout(timer);
      rej(new Error(`${args.join(' ')} in ${ns} exited:\n${out}`));
    });
  });
  return {
    proc,
    ready,
    output: () => out,
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    async stop(ms = 30_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(t);
    },
  };
}
