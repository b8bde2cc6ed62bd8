import type { ProxyInstanceStatus, ProxyServiceCounters, RoutingSnapshot } from '../core/protocol.js';

/**
 * Pure planning of the HAProxy adapter: from the controller's routing snapshot and what HAProxy's
 * Runtime API shows (`show stat`), the runtime commands that move HAProxy towards the snapshot, and
 * the report the controller gets — the same `ProxyReport` a nines proxy sends, so the deploy
 * engine's drain sequence (stop routing → wait for "drained" → SIGTERM) works through HAProxy.
 *
 * The drain of an instance, step by step (one step per sync round, each confirmed by `show stat`):
 *   ready → `set server B/S state drain` (no new requests; in-flight ones finish)
 *   drain, nothing in flight → `set server B/S state maint` (HAProxy closes its idle connections)
 *   maint, nothing in flight, no idle connection → reported `drained`
 *   gone from the snapshot → `del server B/S`
 * Only servers whose name starts with the adapter's prefix are touched; the operator's own servers
 * in the same backend are left alone.
 */

/** One server row of `show stat`, the fields the adapter uses. */
export interface HaServer {
  backend: string;
  name: string;
  /** `ip:port` as HAProxy reports it (`addr` column); empty when unknown. */
  addr: string;
  /** e.g. `UP`, `UP 1/2`, `DOWN`, `DOWN 1/2`, `no check`, `DRAIN`, `MAINT`, `MAINT (via …)`, `NOLB`. */
  status: string;
  /** User weight (`uweight`, falls back to `weight`). */
  weight: number;
  /** Current sessions (streams) on the server. */
  scur: number;
  /** Requests queued for the server. */
  qcur: number;
  /** Idle + safe connections kept open for reuse (0 when the columns are absent). */
  idle: number;
}

export interface HaBackend {
  name: string;
  /** Cumulative HTTP requests (`req_tot`) and 5xx answers (`hrsp_5xx`) of the backend. */
  requests: number;
  failed: number;
}

export interface HaStat {
  servers: HaServer[];
  backends: HaBackend[];
}

export interface AdapterOptions {
  /** nines service name → HAProxy backend name. */
  backends: Record<string, string>;
  /** Server names the adapter owns start with this. Default `nines-`. */
  prefix: string;
  /** Add servers with HAProxy health checks (interval/rise/fall from the service's health check). */
  check: boolean;
}

export interface Plan {
  commands: string[];
  instances: ProxyInstanceStatus[];
  services: ProxyServiceCounters[];
}

export type AdminState = 'ready' | 'drain' | 'maint';

export function adminState(status: string): AdminState {
  const s = status.toUpperCase();
  if (s.startsWith('MAINT')) return 'maint';
  if (s.startsWith('DRAIN') || s.startsWith('NOLB')) return 'drain';
  return 'ready';
}

/** Whether HAProxy would send new requests to the server as far as health goes. */
export function isUp(status: string): boolean {
  return /^(UP|no check)/i.test(status);
}

/** HAProxy server names allow letters, digits, `_ . : -`; anything else becomes `_`. */
export function serverName(prefix: string, instanceId: string): string {
  return `${prefix}${instanceId}`.replace(/[^A-Za-z0-9_.:-]/g, '_');
}

/**
 * nines weights are relative shares (default 1, 0 = out of rotation); HAProxy's are 0..256. The
 * largest weight of a service maps to 100 so ratios such as a 5 % canary survive the rounding.
 */
export function haWeight(weight: number, maxWeight: number): number {
  if (!(weight > 0) || !(maxWeight > 0)) return 0;
  return Math.min(256, Math.max(1, Math.round((weight / maxWeight) * 100)));
}

export function plan(snapshot: RoutingSnapshot | null, stat: HaStat, o: AdapterOptions): Plan {
  const commands: string[] = [];
  const instances: ProxyInstanceStatus[] = [];
  const services: ProxyServiceCounters[] = [];
  const byKey = new Map<string, HaServer>();
  for (const s of stat.servers) byKey.set(`${s.backend}/${s.name}`, s);
  const wanted = new Set<string>();

  for (const svc of snapshot?.services ?? []) {
    const backend = o.backends[svc.name];
    if (backend === undefined) continue;
    const be = stat.backends.find((b) => b.name === backend);
    if (be !== undefined) services.push({ name: svc.name, requests: be.requests, failed: be.failed });
    const maxWeight = Math.max(0, ...svc.instances.map((i) => (i.state === 'ready' ? i.weight : 0)));
    for (const inst of svc.instances) {
      const name = serverName(o.prefix, inst.id);
      const key = `${backend}/${name}`;
      wanted.add(key);
      const cur = byKey.get(key);
      const addr = `${inst.address}:${inst.port}`;
      if (inst.state === 'ready') {
        const weight = haWeight(inst.weight, maxWeight);
        if (cur === undefined) {
          const check = o.check
            ? ` check inter ${svc.health.intervalMs} rise ${svc.health.rise} fall ${svc.health.fall}`
            : '';
          // A dynamic server starts in maintenance: weight first, then ready, so it never takes
          // traffic at the wrong weight.
          commands.push(`add server ${key} ${addr} weight ${weight}${check}`);
          if (o.check) commands.push(`enable health ${key}`);
          commands.push(`set server ${key} state ready`);
          instances.push({ id: inst.id, up: false, inflight: 0, drained: false });
          continue;
        }
        if (cur.addr !== '' && cur.addr !== addr) {
          commands.push(`set server ${key} addr ${inst.address} port ${inst.port}`);
        }
        if (cur.weight !== weight) commands.push(`set weight ${key} ${weight}`);
        const state = adminState(cur.status);
        if (state !== 'ready') commands.push(`set server ${key} state ready`);
        instances.push({
          id: inst.id,
          up: state === 'ready' && cur.addr === addr && isUp(cur.status),
          inflight: cur.scur + cur.qcur,
          drained: false,
        });
        continue;
      }
      // draining or maintenance
      if (cur === undefined) {
        instances.push({ id: inst.id, up: false, inflight: 0, drained: true });
        continue;
      }
      const state = adminState(cur.status);
      const busy = cur.scur + cur.qcur;
      if (state === 'ready') {
        commands.push(`set server ${key} state ${inst.state === 'maintenance' ? 'maint' : 'drain'}`);
      } else if (state === 'drain' && busy === 0) {
        commands.push(`set server ${key} state maint`);
      }
      instances.push({
        id: inst.id,
        up: false,
        inflight: busy,
        drained: state === 'maint' && busy === 0 && cur.idle === 0,
      });
    }
  }

  // Servers of ours that the snapshot no longer has (stopped and forgotten, or their host was lost).
  const managed = new Set(Object.values(o.backends));
  for (const s of stat.servers) {
    const key = `${s.backend}/${s.name}`;
    if (!managed.has(s.backend) || !s.name.startsWith(o.prefix) || wanted.has(key)) continue;
    const state = adminState(s.status);
    if (state !== 'maint') commands.push(`set server ${key} state maint`);
    else if (s.scur + s.qcur === 0) commands.push(`del server ${key}`);
  }
  return { commands, instances, services };
}

/** Parse `show stat` CSV (header line `# pxname,svname,…`). */
export function parseShowStat(csv: string): HaStat {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines.find((l) => l.startsWith('# '));
  if (header === undefined) throw new Error(`show stat: no header in ${JSON.stringify(csv.slice(0, 200))}`);
  const cols = header.slice(2).split(',');
  const idx = (n: string) => cols.indexOf(n);
  const at = (row: string[], n: string) => {
    const i = idx(n);
    return i < 0 ? '' : (row[i] ?? '');
  };
  const num = (row: string[], n: string) => {
    const v = Number(at(row, n));
    return Number.isFinite(v) ? v : 0;
  };
  const servers: HaServer[] = [];
  const backends: HaBackend[] = [];
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    const row = line.split(',');
    const px = at(row, 'pxname');
    const sv = at(row, 'svname');
    if (sv === 'FRONTEND') continue;
    if (sv === 'BACKEND') {
      backends.push({ name: px, requests: num(row, 'req_tot'), failed: num(row, 'hrsp_5xx') });
      continue;
    }
    const uweight = at(row, 'uweight');
    servers.push({
      backend: px,
      name: sv,
      addr: at(row, 'addr'),
      status: at(row, 'status'),
      weight: uweight === '' ? num(row, 'weight') : Number(uweight),
      scur: num(row, 'scur'),
      qcur: num(row, 'qcur'),
      idle: num(row, 'idle_conn_cur') + num(row, 'safe_conn_cur'),
    });
  }
  return { servers, backends };
}

/** Whether a Runtime API answer to `command` means it was applied. */
export function commandSucceeded(command: string, answer: string): boolean {
  const a = answer.trim();
  if (command.startsWith('add server ')) return /New server registered/i.test(a);
  if (command.startsWith('del server ')) return /Server deleted/i.test(a);
  // `set server … addr` answers with what changed ("IP changed from … to …", "no need to change …").
  if (/^set server \S+ addr /.test(command)) return /changed|no need/i.test(a) || a === '';
  return a === '';
}
