import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join, relative } from 'node:path';

/**
 * Drill `dependency-down` on one host: the declared dependency's host:port becomes unreachable for the
 * drilled service's processes (and for this agent's own check probes, so the dependency check sees
 * the outage like the service does), and for nothing else.
 *
 * How: a cgroup v2 directory `nines-drill-<fault>` under the agent's own cgroup; the service's instance
 * process groups and the agent move into it (processes the agent starts meanwhile — a replacement
 * instance — inherit it); one nftables table rejects TCP from sockets of that cgroup to the
 * dependency's addresses and port with a reset (`socket cgroupv2`). Restoring deletes the table and
 * moves every process back where it was. Established connections to the dependency are reset once
 * (`ss -K`), since the kernel ties a socket to the cgroup it was opened in.
 *
 * Needs root, `nft` and `ss`, and the cgroup v2 hierarchy mounted at or under /sys/fs/cgroup (nft
 * resolves cgroup paths there); otherwise the fault is refused and nothing changed.
 */

export interface Endpoint {
  host: string;
  port: number;
}

export interface Block {
  /** What was done, for the drill report. */
  message: string;
  addresses: string[];
  pids: number[];
  /** Undo everything; idempotent. */
  restore(): Promise<void>;
}

const CGROUP_ROOT = '/sys/fs/cgroup';

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    let p: ReturnType<typeof spawn>;
    try {
      p = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ code: -1, out: (err as Error).message });
      return;
    }
    let out = '';
    p.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('error', (err) => resolve({ code: -1, out: err.message }));
    p.on('close', (code) => resolve({ code: code ?? -1, out: out.trim() }));
    // A command that exits before reading its input must not crash the agent (EPIPE).
    p.stdin?.on('error', () => {});
    if (input !== undefined) p.stdin?.end(input);
  });
}

/** Where the cgroup v2 hierarchy is mounted (`/proc/self/mounts`), or undefined. Pure. */
export function cgroup2Mount(mounts: string): string | undefined {
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2' && dir !== undefined) return dir;
  }
  return undefined;
}

/**
 * A process's cgroup v2 path (`0::/a/b` in /proc/PID/cgroup), outside any drill cgroup: a process in
 * `/a/nines-drill-x` belongs in `/a` (where a restore puts it back). Pure.
 */
export function cgroup2Path(procCgroup: string): string | undefined {
  for (const line of procCgroup.split('\n')) {
    if (!line.startsWith('0::')) continue;
    const parts = line.slice(3).trim().split('/');
    while (parts.length > 1 && (parts.at(-1) ?? '').startsWith('nines-drill-')) parts.pop();
    return parts.join('/') || '/';
  }
  return undefined;
}

/** The nftables script of a block. Pure (tested). */
export function nftScript(
  table: string,
  cgroupRel: string,
  level: number,
  targets: ReadonlyArray<{ address: string; port: number }>,
): string {
  const rules = targets.map(
    (t) =>
      `    ${isIP(t.address) === 6 ? 'ip6' : 'ip'} daddr ${t.address} tcp dport ${t.port} socket cgroupv2 level ${level} "${cgroupRel}" reject with tcp reset`,
  );
  return [
    `table inet ${table} {`,
    '  chain out {',
    '    type filter hook output priority 0; policy accept;',
    ...rules,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Every pid in the process group `pgid` (an instance is one process group). */
async function processGroup(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid pgrp …; comm may contain spaces and parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[2]) === pgid) out.push(Number(name));
  }
  return out.includes(pgid) ? out : [pgid, ...out];
}

/** The drill cgroup and table of one fault; `owner` (the host id) lets an agent find its own leftovers. */
function names(owner: string, faultId: string): { dir: string; table: string } {
  const safe = `${owner}-${faultId}`.replace(/[^A-Za-z0-9]/g, '_');
  return { dir: `nines-drill-${safe}`, table: `nines_drill_${safe}` };
}

/**
 * Removes what a drill of this host left behind (the agent was killed during the outage): the nftables
 * tables and cgroups named for `owner`, processes moved back to the agent's cgroup. Returns what it
 * removed. Only this host's: other agents on the same machine (tests) keep theirs.
 */
export async function cleanupStale(owner: string): Promise<string[]> {
  const mount = cgroup2Mount(await readFile('/proc/self/mounts', 'utf8').catch(() => ''));
  const own = cgroup2Path(await readFile('/proc/self/cgroup', 'utf8').catch(() => ''));
  if (mount === undefined || own === undefined) return [];
  const prefix = names(owner, '').dir;
  const removed: string[] = [];
  const base = join(mount, own);
  for (const d of await readdir(base).catch(() => [] as string[])) {
    if (!d.startsWith(prefix)) continue;
    await run('nft', ['delete', 'table', 'inet', `nines_drill_${d.slice('nines-drill-'.length)}`]);
    const procs = (await readFile(join(base, d, 'cgroup.procs'), 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean);
    for (const pid of procs) await writeFile(join(base, 'cgroup.procs'), `${pid}\n`).catch(() => {});
    await rmdir(join(base, d)).catch(() => {});
    removed.push(d);
  }
  return removed;
}

export async function blockDependency(o: {
  /** The host id: names the cgroup and the table, so a restarted agent finds its leftovers. */
  owner: string;
  id: string;
  endpoints: Endpoint[];
  /** Instance process-group leaders of the drilled service on this host. */
  pids: number[];
}): Promise<Block> {
  const mount = cgroup2Mount(await readFile('/proc/self/mounts', 'utf8').catch(() => ''));
  if (mount === undefined || !(mount === CGROUP_ROOT || mount.startsWith(`${CGROUP_ROOT}/`))) {
    throw new Error(`needs the cgroup v2 hierarchy mounted under ${CGROUP_ROOT} (found ${mount ?? 'none'})`);
  }
  const own = cgroup2Path(await readFile('/proc/self/cgroup', 'utf8').catch(() => ''));
  if (own === undefined) throw new Error('this agent is not in a cgroup v2 hierarchy');
  const nft = await run('nft', ['--version']);
  if (nft.code !== 0) throw new Error(`needs nftables (nft): ${nft.out}`);

  const targets: Array<{ address: string; port: number }> = [];
  for (const e of o.endpoints) {
    const addrs = isIP(e.host) ? [e.host] : (await lookup(e.host, { all: true })).map((a) => a.address);
    for (const address of addrs) targets.push({ address, port: e.port });
  }
  if (targets.length === 0) throw new Error('the dependency resolves to no address');
  const n = names(o.owner, o.id);
  const cgPath = join(own, n.dir);
  const dir = join(mount, cgPath);
  const level = cgPath.split('/').filter(Boolean).length;
  const table = n.table;
  const script = nftScript(table, relative(CGROUP_ROOT, dir), level, targets);

  await mkdir(dir);
  const origin = new Map<number, string>();
  let restored = false;
  const restore = async () => {
    if (restored) return;
    restored = true;
    await run('nft', ['delete', 'table', 'inet', table]);
    const inside = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map(Number);
    for (const pid of inside) {
      await writeFile(join(mount, origin.get(pid) ?? own, 'cgroup.procs'), `${pid}\n`).catch(() =>
        writeFile(join(mount, own, 'cgroup.procs'), `${pid}\n`).catch(() => {}),
      );
    }
    await rmdir(dir).catch(() => {});
  };
  try {
    const moved: number[] = [];
    const groups = await Promise.all(o.pids.map(processGroup));
    for (const pid of [process.pid, ...groups.flat()]) {
      const from = cgroup2Path(await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => ''));
      if (from === undefined) continue;
      origin.set(pid, from);
      await writeFile(join(dir, 'cgroup.procs'), `${pid}\n`);
      moved.push(pid);
    }
    const applied = await run('nft', ['-f', '-'], script);
    if (applied.code !== 0) throw new Error(`nft: ${applied.out}`);
    // Connections opened before the move stay in their old cgroup: reset them once.
    for (const t of targets) await run('ss', ['-K', '-t', 'dst', t.address, 'dport', '=', `:${t.port}`]);
    const what = targets
      .map((t) => (isIP(t.address) === 6 ? `[${t.address}]:${t.port}` : `${t.address}:${t.port}`))
      .join(', ');
    return {
      message: `dependency ${what} blocked for ${moved.length - 1} service process(es) and this agent's probes`,
      addresses: targets.map((t) => `${t.address}:${t.port}`),
      pids: moved.filter((p) => p !== process.pid),
      restore,
    };
  } catch (err) {
    await restore();
    throw err;
  }
}
