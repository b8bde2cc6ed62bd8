import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { Empty, VersionChip } from '../components.js';
import {
  ago,
  compareVersions,
  type FleetFilter,
  filterInstances,
  fleetTree,
  formatBytes,
  formatDuration,
  HOST_DOWN_MS,
  mixedBanner,
  NO_FILTER,
  uniqueSorted,
  versionSlots,
  versionsRunning,
} from '../model.js';
import type { InstanceView, StatusView } from '../types.js';

interface HostLoad {
  cpu?: number;
  memUsed?: number;
}

/**
 * CPU and memory use per host id, from the agents' host signals (`GET /v1/signals`), every 5 s while
 * the page is shown. Empty when there is no token to ask with or the agents send no host signals.
 */
function useHostLoad(token: string | undefined): Map<string, HostLoad> {
  const [load, setLoad] = useState<Map<string, HostLoad>>(new Map());
  useEffect(() => {
    if (!token) return;
    let live = true;
    type Samples = { samples: Array<{ labels: Record<string, string>; value: number }> };
    const get = () =>
      Promise.all([
        call<Samples>(token, 'GET', '/v1/signals?signal=node_cpu_utilization'),
        call<Samples>(token, 'GET', '/v1/signals?signal=node_memory_available_ratio'),
      ])
        .then(([cpu, mem]) => {
          if (!live) return;
          const m = new Map<string, HostLoad>();
          for (const x of cpu.samples) if (x.labels.host) m.set(x.labels.host, { cpu: x.value });
          for (const x of mem.samples) {
            const h = x.labels.host;
            if (h) m.set(h, { ...m.get(h), memUsed: 1 - x.value });
          }
          setLoad(m);
        })
        // The load line is extra: without it the fleet still shows everything else.
        .catch(() => {});
    void get();
    const t = setInterval(get, 5000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [token]);
  return load;
}

const pct = (v: number | undefined) => (v === undefined ? '–' : `${Math.round(v * 100)} %`);

export function FleetPage(props: { status: StatusView; now: number; token?: string }) {
  const { status, now } = props;
  const load = useHostLoad(props.token);
  const [filter, setFilter] = useState<FleetFilter>(NO_FILTER);
  const slots = versionSlots(status.services, status.instances);
  const services = uniqueSorted(status.instances.map((i) => i.service));
  const zones = uniqueSorted([...status.hosts.map((h) => h.zone), ...status.instances.map((i) => i.zone)]);
  const versions = uniqueSorted(
    status.instances.map((i) => i.version),
    compareVersions,
  );
  const shown = filterInstances(status.instances, filter);
  const tree = fleetTree(status.hosts, status.instances, filter);
  const banners = uniqueSorted(shown.map((i) => i.service))
    .map((s) => {
      const b = mixedBanner(shown.filter((i) => i.service === s));
      return b ? `${s}: ${b}` : null;
    })
    .filter((b): b is string => b !== null);
  const ready = shown.filter((i) => i.desired === 'running' && i.route === 'ready' && i.healthy).length;
  const set = (k: keyof FleetFilter) => (e: { currentTarget: HTMLSelectElement }) =>
    setFilter({ ...filter, [k]: e.currentTarget.value });

  return (
    <>
      <h1>Fleet</h1>
      <form class="filters" aria-label="Filter the fleet" onSubmit={(e) => e.preventDefault()}>
        <label>
          Service
          <select id="filter-service" value={filter.service} onChange={set('service')}>
            <option value="">all</option>
            {services.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Zone
          <select id="filter-zone" value={filter.zone} onChange={set('zone')}>
            <option value="">all</option>
            {zones.map((z) => (
              <option key={z} value={z}>
                {z}
              </option>
            ))}
          </select>
        </label>
        <label>
          Version
          <select id="filter-version" value={filter.version} onChange={set('version')}>
            <option value="">all</option>
            {versions.map((v) => (
              <option key={v} value={v}>
                {v}
              </option>
            ))}
          </select>
        </label>
        {filter !== NO_FILTER ? (
          <button type="button" class="btn quiet" onClick={() => setFilter(NO_FILTER)}>
            Clear filters
          </button>
        ) : null}
      </form>

      <div class="summary" aria-live="polite">
        <p id="fleet-summary" class="line">
          {shown.length} instance{shown.length === 1 ? '' : 's'} ({ready} ready) on{' '}
          {tree.reduce((n, z) => n + z.hosts.length, 0)} host(s) in {tree.length} zone(s)
        </p>
        <ul class="legend line" aria-label="Versions running">
          {versionsRunning(shown).map((v) => (
            <li key={v.version}>
              <VersionChip version={v.version} slot={slots.get(v.version)} suffix={`×${v.count}`} />
            </li>
          ))}
        </ul>
      </div>
      {banners.map((b) => (
        <p key={b} class="banner warn" role="status" data-testid="mixed-banner">
          {b}
        </p>
      ))}

      {tree.length === 0 ? <Empty>No hosts have registered yet.</Empty> : null}
      {tree.map((z) => (
        <section key={z.zone} class="zone" aria-labelledby={`zone-${z.zone}`}>
          <h2 id={`zone-${z.zone}`}>Zone {z.zone}</h2>
          {z.hosts.map(({ host, instances }) => {
            const down = host.lastSeenAt !== null && now - host.lastSeenAt > HOST_DOWN_MS;
            return (
              <article key={host.name} class={`host${down ? ' down' : ''}`} aria-label={`Host ${host.name}`}>
                <h3>
                  {host.name}{' '}
                  <span class="muted">
                    {host.address ? `${host.address} · ` : ''}
                    {down ? 'not reporting, ' : ''}seen {ago(host.lastSeenAt, now)}
                    {load.has(host.id) ? (
                      <span class="host-load" data-host-load={host.id}>
                        {' '}
                        · CPU {pct(load.get(host.id)?.cpu)} · memory {pct(load.get(host.id)?.memUsed)} used
                      </span>
                    ) : null}
                  </span>
                </h3>
                {instances.length === 0 ? (
                  <Empty>No instances.</Empty>
                ) : (
                  <ul class="instances">
                    {instances.map((i) => (
                      <InstanceCard key={i.id} i={i} slot={slots.get(i.version)} now={now} />
                    ))}
                  </ul>
                )}
              </article>
            );
          })}
        </section>
      ))}
    </>
  );
}

function InstanceCard(props: { i: InstanceView; slot: number | undefined; now: number }) {
  const { i, now } = props;
  const starting = i.state === 'starting' || i.state === 'pending';
  const health = i.healthy ? 'healthy' : starting ? 'not yet healthy' : 'unhealthy';
  const uptime = i.startedAt !== null && i.state === 'running' ? formatDuration(now - i.startedAt) : '—';
  return (
    <li class={`inst vb-${props.slot ?? 7}`} data-instance={i.id} data-version={i.version}>
      <div class="inst-head">
        <strong class="mono">{i.id}</strong>
        <VersionChip version={i.version} slot={props.slot} />
      </div>
      <dl class="kv">
        <dt>Service</dt>
        <dd>{i.service}</dd>
        <dt>State</dt>
        <dd class={i.state === 'running' ? '' : 'warn-text'}>{i.state}</dd>
        <dt>Health</dt>
        <dd class={i.healthy ? 'good-text' : starting ? 'warn-text' : 'bad-text'}>
          {health}
          {i.proxyUp ? ', up in proxies' : ''}
        </dd>
        <dt>Route</dt>
        <dd class={i.route === 'draining' ? 'warn-text' : ''}>{i.route}</dd>
        <dt>Port</dt>
        <dd class="mono">{i.port ?? '—'}</dd>
        <dt>Restarts</dt>
        <dd class={i.restarts > 0 ? 'warn-text' : ''}>{i.restarts}</dd>
        <dt>Uptime</dt>
        <dd>{uptime}</dd>
        <dt>CPU</dt>
        <dd data-field="cpu">{i.cpu == null ? '—' : `${i.cpu.toFixed(1)} %`}</dd>
        <dt>Memory</dt>
        <dd data-field="memory">{i.memoryBytes == null ? '—' : formatBytes(i.memoryBytes)}</dd>
      </dl>
    </li>
  );
}
