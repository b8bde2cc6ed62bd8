import { useEffect, useState } from 'preact/hooks';
import { ApiError, call } from '../api.js';
import { ActionButton, Empty, ErrorNote, Sparkline, VersionChip } from '../components.js';
import { ago, formatBytes, permission, readyCount, rollbackTarget, versionSlots } from '../model.js';
import type { RatePoint, Role, ServiceCharts, ServiceMode, ServiceView, StatusView } from '../types.js';

const CHART_MINUTES = 15;
const CHART_EVERY_MS = 5000;

/** The last CHART_MINUTES of every service's rates, refreshed every CHART_EVERY_MS while shown. */
function useServiceCharts(token: string): { charts: ServiceCharts | null; error: string | null } {
  const [charts, setCharts] = useState<ServiceCharts | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    const load = () =>
      call<ServiceCharts>(token, 'GET', `/v1/signals/services?minutes=${CHART_MINUTES}&stepSeconds=10`)
        .then((c) => {
          if (live) {
            setCharts(c);
            setError(null);
          }
        })
        .catch((e) => {
          if (live) setError(e instanceof ApiError ? `charts: ${e.message} (${e.code})` : String(e));
        });
    void load();
    const t = setInterval(load, CHART_EVERY_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [token]);
  return { charts, error };
}

const fmtRate = (v: number) => `${v < 10 ? v.toFixed(1) : Math.round(v)} req/s`;
const fmtShare = (v: number) => `${(v * 100).toFixed(v < 0.1 ? 2 : 1)} %`;
const fmtMs = (v: number) => `${v * 1000 < 10 ? (v * 1000).toFixed(1) : Math.round(v * 1000)} ms`;

function Charts(props: { service: string; points: RatePoint[] | undefined; minutes: number }) {
  const pts = props.points ?? [];
  const id = `charts-${props.service}`;
  return (
    <section class="charts" aria-labelledby={`${id}-h`} id={id}>
      <h3 id={`${id}-h`}>Last {props.minutes} minutes</h3>
      {pts.length === 0 ? (
        <p class="muted">No traffic seen by the proxies yet.</p>
      ) : (
        <div class="spark-row">
          <Sparkline
            id={`${id}-rate`}
            label="Requests"
            points={pts.map((p) => ({ at: p.at, value: p.requestsPerSecond }))}
            format={fmtRate}
            floor={1}
          />
          <Sparkline
            id={`${id}-5xx`}
            label="5xx share"
            points={pts.map((p) => ({ at: p.at, value: p.errorRatio }))}
            format={fmtShare}
            floor={0.01}
            tone="bad"
          />
          <Sparkline
            id={`${id}-p99`}
            label="p99"
            points={pts.map((p) => ({ at: p.at, value: p.p99Seconds }))}
            format={fmtMs}
            floor={0.01}
          />
        </div>
      )}
    </section>
  );
}

const MODES: Array<{ mode: ServiceMode; label: string }> = [
  { mode: 'live', label: 'live' },
  { mode: 'read-only', label: 'read-only (writes get 503, reads pass)' },
  { mode: 'maintenance', label: 'maintenance (503 page)' },
  { mode: 'pause', label: 'pause (hold requests briefly)' },
];

/** The service's mode, and a switch for admins; the proxies apply it within milliseconds. */
function ModeSwitch(props: { service: ServiceView; token: string; role: Role | null }) {
  const { service, token } = props;
  const [choice, setChoice] = useState<ServiceMode>(service.mode);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const perm = permission(props.role, 'mode');
  const apply = async () => {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const r = await call<{ proxies: number; appliedInMs: number | null }>(
        token,
        'PUT',
        `/v1/services/${encodeURIComponent(service.name)}/mode`,
        { mode: choice },
      );
      setResult(
        r.appliedInMs === null
          ? `${service.name} is ${choice} (not yet confirmed by every proxy)`
          : `${service.name} is ${choice}: applied by ${r.proxies} prox${r.proxies === 1 ? 'y' : 'ies'} in ${r.appliedInMs} ms`,
      );
    } catch (err) {
      setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err));
    } finally {
      setBusy(false);
    }
  };
  const id = `mode-${service.name}`;
  return (
    <div class="mode-switch">
      <label for={`${id}-select`}>Mode</label>{' '}
      <select
        id={`${id}-select`}
        value={choice}
        disabled={!perm.ok}
        onChange={(e) => setChoice((e.currentTarget as HTMLSelectElement).value as ServiceMode)}
      >
        {MODES.map((m) => (
          <option key={m.mode} value={m.mode}>
            {m.label}
          </option>
        ))}
      </select>{' '}
      <ActionButton
        id={id}
        perm={perm}
        busy={busy}
        onClick={apply}
        kind={choice === 'live' ? 'primary' : 'danger'}
      >
        Set mode
      </ActionButton>
      {result ? (
        <p class="note good" role="status" id={`${id}-result`}>
          {result}
        </p>
      ) : null}
      <ErrorNote error={error} />
    </div>
  );
}

export function ServicesPage(props: { status: StatusView; now: number; token: string; role: Role | null }) {
  const { status, now } = props;
  const slots = versionSlots(status.services, status.instances);
  const { charts, error } = useServiceCharts(props.token);
  return (
    <>
      <h1>Services</h1>
      <ErrorNote error={error} />
      {status.services.length === 0 ? <Empty>No services yet: declare them in nines.yaml.</Empty> : null}
      {status.services.map((s) => {
        const ready = readyCount(s.name, status.instances);
        const short = ready < s.desiredInstances;
        const target = rollbackTarget(s);
        return (
          <section key={s.name} class="card" aria-labelledby={`svc-${s.name}`} data-service={s.name}>
            <h2 id={`svc-${s.name}`}>{s.name}</h2>
            <dl class="kv wide">
              <dt>Mode</dt>
              <dd class={s.mode === 'live' ? 'good-text' : 'warn-text'} id={`svc-${s.name}-mode`}>
                {s.mode}
              </dd>
              <dt>Current release</dt>
              <dd>
                {s.currentRelease ? (
                  <VersionChip version={s.currentRelease} slot={slots.get(s.currentRelease)} />
                ) : (
                  'none yet'
                )}
              </dd>
              <dt>Instances</dt>
              <dd class={short ? 'warn-text' : 'good-text'}>
                {ready} of {s.desiredInstances} ready
              </dd>
              <dt>Deploy lock</dt>
              <dd>
                {s.lockedBy ? (
                  s.lockedBy.startsWith('d-') ? (
                    <a href={`#/deploys/${encodeURIComponent(s.lockedBy)}`}>held by {s.lockedBy}</a>
                  ) : (
                    `held by ${s.lockedBy}`
                  )
                ) : (
                  'free'
                )}
              </dd>
              <dt>Rollback target</dt>
              <dd>{target ?? 'none (no other stable release)'}</dd>
            </dl>
            <Charts
              service={s.name}
              points={charts?.services.find((c) => c.service === s.name)?.points}
              minutes={charts?.minutes ?? CHART_MINUTES}
            />
            <ModeSwitch service={s} token={props.token} role={props.role} />
            <div class="scroll">
              <table>
                <caption>Releases of {s.name}, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Version</th>
                    <th scope="col">sha256</th>
                    <th scope="col">Size</th>
                    <th scope="col">Stable</th>
                    <th scope="col">Created</th>
                    <th scope="col">
                      <span class="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {s.releases.map((r) => (
                    <tr key={r.version}>
                      <td>
                        <VersionChip
                          version={r.version}
                          slot={slots.get(r.version)}
                          suffix={r.version === s.currentRelease ? '(current)' : ''}
                        />
                      </td>
                      <td class="mono" title={r.sha256}>
                        {r.sha256.slice(0, 12)}
                      </td>
                      <td>{formatBytes(r.size)}</td>
                      <td>{r.stable ? 'yes' : 'no'}</td>
                      <td>{ago(r.createdAt, now)}</td>
                      <td>
                        {r.version !== s.currentRelease ? (
                          <a
                            href={`#/deploys?service=${encodeURIComponent(s.name)}&version=${encodeURIComponent(r.version)}`}
                          >
                            Deploy {r.version}…
                          </a>
                        ) : null}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        );
      })}
    </>
  );
}
