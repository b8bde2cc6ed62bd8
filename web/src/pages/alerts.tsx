import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, call } from '../api.js';
import { ActionButton, Empty, ErrorNote } from '../components.js';
import {
  ago,
  budgetLeft,
  clock,
  formatDuration,
  formatMatcher,
  fromLocalInput,
  incidentsOf,
  locationState,
  matchersFor,
  parseMatchers,
  percent,
  permission,
  sortAlerts,
  toLocalInput,
  unackedFiring,
} from '../model.js';
import type { AlertView, CheckView, Role, SilenceView, UptimeRow, UptimeWindow } from '../types.js';

const WINDOWS: UptimeWindow[] = ['24h', '7d', '30d'];
const DEFAULT_OBJECTIVE = 0.999;
const RECENT_SHOWN = 30;

const errText = (e: unknown) => (e instanceof ApiError ? `${e.message} (${e.code})` : String(e));

/** Calls `load` now and every `ms` while the page is shown; returns its last answer and error. */
function usePoll<T>(
  load: () => Promise<T>,
  ms: number,
): { value: T | null; error: string | null; reload: () => void } {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const loadRef = useRef(load);
  loadRef.current = load;
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      loadRef
        .current()
        .then((v) => {
          if (live) {
            setValue(v);
            setError(null);
          }
        })
        .catch((e) => {
          if (live) setError(errText(e));
        });
    void run();
    const t = setInterval(run, ms);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [ms, tick]);
  return { value, error, reload: useCallback(() => setTick((n) => n + 1), []) };
}

interface Props {
  token: string;
  role: Role | null;
  alerts: AlertView[] | null;
  now: number;
  putAlert: (a: AlertView) => void;
}

export function AlertsPage(props: Props) {
  const { token, now } = props;
  // A counter with the text: clicking "Silence…" on the same alert again refills an edited form.
  const [silenceFor, setSilenceFor] = useState<{ text: string; n: number } | null>(null);
  const silences = usePoll(
    () => call<{ silences: SilenceView[] }>(token, 'GET', '/v1/silences').then((r) => r.silences),
    5000,
  );
  const checks = usePoll(
    () => call<{ checks: CheckView[] }>(token, 'GET', '/v1/checks').then((r) => r.checks),
    3000,
  );
  const uptime = usePoll(async () => {
    const [config, ...rows] = await Promise.all([
      call<{ config: { slos?: Record<string, { objective: number }> } }>(token, 'GET', '/v1/alerting/config'),
      ...WINDOWS.map((w) =>
        call<{ rows: UptimeRow[] }>(token, 'GET', `/v1/uptime?window=${w}`).then((r) => r.rows),
      ),
    ]);
    return { slos: config.config.slos ?? {}, byWindow: rows };
  }, 15_000);

  const all = props.alerts === null ? null : sortAlerts(props.alerts);
  const active = all?.filter((a) => a.state === 'firing' || a.state === 'pending') ?? [];
  const recent =
    all?.filter((a) => a.state !== 'firing' && a.state !== 'pending').slice(0, RECENT_SHOWN) ?? [];
  const firing = active.filter((a) => a.state === 'firing').length;

  return (
    <>
      <h1>Alerts and checks</h1>
      <p class="summary-line" id="alerts-summary" aria-live="polite">
        {all === null
          ? 'Loading alerts…'
          : `${firing} firing (${unackedFiring(active)} not acknowledged), ${active.length - firing} pending`}
      </p>

      <section class="card" aria-labelledby="h-active">
        <h2 id="h-active">Firing and pending</h2>
        {all !== null && active.length === 0 ? <Empty>Nothing is firing.</Empty> : null}
        <ul class="alerts">
          {active.map((a) => (
            <AlertItem
              key={a.dedupKey}
              alert={a}
              now={now}
              token={token}
              role={props.role}
              putAlert={props.putAlert}
              onSilence={() => {
                setSilenceFor((p) => ({ text: matchersFor(a), n: (p?.n ?? 0) + 1 }));
                document.getElementById('silence-matchers')?.focus();
              }}
            />
          ))}
        </ul>
      </section>

      <section class="card" aria-labelledby="h-silences">
        <h2 id="h-silences">Silences</h2>
        <SilenceForm
          token={token}
          role={props.role}
          now={now}
          preset={silenceFor}
          onCreated={() => {
            setSilenceFor(null);
            silences.reload();
          }}
        />
        <ErrorNote error={silences.error} />
        <SilenceList
          token={token}
          role={props.role}
          now={now}
          silences={silences.value}
          onExpired={silences.reload}
        />
      </section>

      <section class="card" aria-labelledby="h-checks">
        <h2 id="h-checks">Checks</h2>
        <ErrorNote error={checks.error} />
        <Checks checks={checks.value} now={now} />
      </section>

      <section class="card" aria-labelledby="h-uptime">
        <h2 id="h-uptime">Uptime and error budget</h2>
        <ErrorNote error={uptime.error} />
        <Uptime data={uptime.value} />
      </section>

      <section class="card" aria-labelledby="h-incidents">
        <h2 id="h-incidents">Incidents (30 days)</h2>
        <Incidents rows={uptime.value?.byWindow[2] ?? null} now={now} />
      </section>

      <section class="card" aria-labelledby="h-recent">
        <h2 id="h-recent">Recent alerts</h2>
        {all !== null && recent.length === 0 ? <Empty>No resolved alerts yet.</Empty> : null}
        {recent.length > 0 ? (
          <div class="scroll">
            <table id="recent-alerts">
              <caption>Resolved alerts, newest change first</caption>
              <thead>
                <tr>
                  <th scope="col">Alert</th>
                  <th scope="col">Severity</th>
                  <th scope="col">Fired</th>
                  <th scope="col">Resolved</th>
                  <th scope="col">Fired for</th>
                </tr>
              </thead>
              <tbody>
                {recent.map((a) => (
                  <tr key={a.dedupKey} data-alert={a.dedupKey} data-state={a.state}>
                    <td>{a.summary}</td>
                    <td>
                      <span class={`sev sev-${a.severity}`}>{a.severity}</span>
                    </td>
                    <td>{a.firedAt ? clock(a.firedAt, now) : 'never fired'}</td>
                    <td>{a.resolvedAt ? clock(a.resolvedAt, now) : '—'}</td>
                    <td>{a.firedAt && a.resolvedAt ? formatDuration(a.resolvedAt - a.firedAt) : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </section>
    </>
  );
}

function AlertItem(props: {
  alert: AlertView;
  now: number;
  token: string;
  role: Role | null;
  putAlert: (a: AlertView) => void;
  onSilence: () => void;
}) {
  const { alert: a, now } = props;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const ack = permission(props.role, 'ack');
  const silence = permission(props.role, 'silence');
  const id = `alert-${a.dedupKey}`;
  const acknowledge = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await call<{ alert: AlertView }>(
        props.token,
        'POST',
        `/v1/alerts/${encodeURIComponent(a.dedupKey)}/ack`,
      );
      props.putAlert(r.alert);
    } catch (e) {
      setError(errText(e));
    } finally {
      setBusy(false);
    }
  };
  const since = a.state === 'firing' ? a.firedAt : a.activeSince;
  return (
    <li
      class={`alert alert-${a.state}${a.acknowledged ? ' alert-acked' : ''}`}
      id={id}
      data-alert={a.dedupKey}
      data-rule={a.ruleId}
      data-state={a.state}
      aria-labelledby={`${id}-summary`}
    >
      <div class="alert-head">
        <span class={`sev sev-${a.severity}`}>{a.severity}</span>
        <strong id={`${id}-summary`}>{a.summary}</strong>
      </div>
      <p class="alert-state" id={`${id}-state`}>
        {a.state}
        {since ? ` for ${formatDuration(now - since)}` : ''}
        {a.acknowledged
          ? ` · acknowledged by ${a.acknowledgedBy ?? 'someone'}${a.acknowledgedAt ? ` ${ago(a.acknowledgedAt, now)}` : ''}`
          : a.state === 'firing'
            ? ' · not acknowledged'
            : ''}
        {a.suppressed ? ` · notifications withheld (${a.suppressed})` : ''}
      </p>
      <ul class="labels" aria-label="Labels">
        {Object.entries(a.labels).map(([k, v]) => (
          <li key={k} class="mono">
            {k}={v}
          </li>
        ))}
      </ul>
      <div class="buttons">
        {a.state === 'firing' && !a.acknowledged ? (
          <ActionButton id={`${id}-ack`} perm={ack} busy={busy} onClick={acknowledge}>
            Acknowledge
          </ActionButton>
        ) : null}
        <ActionButton id={`${id}-silence`} perm={silence} kind="danger" onClick={props.onSilence}>
          Silence…
        </ActionButton>
      </div>
      <ErrorNote error={error} />
    </li>
  );
}

function SilenceForm(props: {
  token: string;
  role: Role | null;
  now: number;
  preset: { text: string; n: number } | null;
  onCreated: () => void;
}) {
  const perm = permission(props.role, 'silence');
  const [matchers, setMatchers] = useState('');
  const [ends, setEnds] = useState(() => toLocalInput(Date.now() + 2 * 3_600_000));
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<string | null>(null);
  useEffect(() => {
    if (props.preset !== null) setMatchers(props.preset.text);
  }, [props.preset]);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    const parsed = parseMatchers(matchers);
    if (parsed.error) return setError(parsed.error);
    const endsAt = fromLocalInput(ends);
    if (endsAt === null) return setError('give the end time as a date and time');
    if (endsAt <= Date.now()) return setError('the end time is in the past');
    setBusy(true);
    try {
      const r = await call<{ silence: SilenceView }>(props.token, 'POST', '/v1/silences', {
        matchers: parsed.matchers,
        endsAt: new Date(endsAt).toISOString(),
        ...(comment.trim() ? { comment: comment.trim() } : {}),
      });
      setResult(`Silence ${r.silence.id} created, until ${clock(r.silence.endsAt, Date.now())}`);
      setMatchers('');
      setComment('');
      props.onCreated();
    } catch (err) {
      setError(errText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="silence-form" onSubmit={submit} aria-describedby="silence-help">
      <p id="silence-help" class="muted">
        A silence withholds notifications of the alerts whose labels match every matcher until its end time;
        the alerts still show here. Matchers: <code>name=value</code>, <code>name!=value</code>,{' '}
        <code>name=~regex</code> or <code>name!~regex</code>, one per line or comma-separated.
      </p>
      <label for="silence-matchers">Matchers</label>
      <textarea
        id="silence-matchers"
        rows={2}
        value={matchers}
        disabled={!perm.ok}
        spellcheck={false}
        placeholder="alertname=instance_down, service=web"
        onInput={(e) => setMatchers(e.currentTarget.value)}
      />
      <div class="row">
        <label>
          Ends at
          <input
            id="silence-ends"
            type="datetime-local"
            value={ends}
            disabled={!perm.ok}
            onInput={(e) => setEnds(e.currentTarget.value)}
          />
        </label>
        <label>
          Comment
          <input
            id="silence-comment"
            type="text"
            value={comment}
            maxLength={1024}
            disabled={!perm.ok}
            onInput={(e) => setComment(e.currentTarget.value)}
          />
        </label>
        <ActionButton id="silence-create" type="submit" perm={perm} busy={busy}>
          Create silence
        </ActionButton>
      </div>
      {result ? (
        <p class="note good" role="status" id="silence-result">
          {result}
        </p>
      ) : null}
      <ErrorNote error={error} />
    </form>
  );
}

function SilenceList(props: {
  token: string;
  role: Role | null;
  now: number;
  silences: SilenceView[] | null;
  onExpired: () => void;
}) {
  const perm = permission(props.role, 'silence');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  if (props.silences === null) return <p class="muted">Loading silences…</p>;
  if (props.silences.length === 0) return <Empty>No active or upcoming silences.</Empty>;
  const expire = async (id: string) => {
    setBusy(id);
    setError(null);
    try {
      await call(props.token, 'DELETE', `/v1/silences/${encodeURIComponent(id)}`);
      props.onExpired();
    } catch (e) {
      setError(errText(e));
    } finally {
      setBusy(null);
    }
  };
  return (
    <>
      <ErrorNote error={error} />
      <div class="scroll">
        <table id="silences">
          <caption>Active and upcoming silences</caption>
          <thead>
            <tr>
              <th scope="col">Matchers</th>
              <th scope="col">From</th>
              <th scope="col">Until</th>
              <th scope="col">By</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {props.silences.map((s) => (
              <tr key={s.id} data-silence={s.id}>
                <td class="mono">
                  {s.matchers.map(formatMatcher).join(', ')}
                  {s.comment ? <div class="muted">{s.comment}</div> : null}
                </td>
                <td>{clock(s.startsAt, props.now)}</td>
                <td>{clock(s.endsAt, props.now)}</td>
                <td>{s.createdBy}</td>
                <td>
                  <ActionButton
                    id={`expire-${s.id}`}
                    perm={perm}
                    kind="danger"
                    busy={busy === s.id}
                    onClick={() => void expire(s.id)}
                  >
                    Expire
                  </ActionButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function target(c: CheckView): string {
  if (c.spec.type === 'http') return c.spec.url ?? '';
  if (c.spec.type === 'tcp') return `${c.spec.host ?? ''}:${c.spec.port ?? ''}`;
  return c.spec.name ?? '';
}

function Checks(props: { checks: CheckView[] | null; now: number }) {
  if (props.checks === null) return <p class="muted">Loading checks…</p>;
  if (props.checks.length === 0) return <Empty>No checks: declare them under checks: in nines.yaml.</Empty>;
  return (
    <div class="scroll">
      <table id="checks">
        <caption>Each check's state (a quorum of locations decides) and what every location saw last</caption>
        <thead>
          <tr>
            <th scope="col">Check</th>
            <th scope="col">State</th>
            <th scope="col">Locations</th>
          </tr>
        </thead>
        <tbody>
          {props.checks.map((c) => (
            <tr key={c.name} data-check={c.name} data-state={c.state}>
              <td>
                <strong>{c.name}</strong>
                {c.spec.dependency ? ' (dependency)' : ''}
                <div class="muted mono wrap">
                  {c.spec.type} {target(c)}
                </div>
              </td>
              <td>
                <span class={`st st-${c.state}`}>{c.state}</span>
                {c.since ? <div class="muted">since {clock(c.since, props.now)}</div> : null}
                <div class="muted">{c.message}</div>
              </td>
              <td>
                {c.locations.length === 0 ? (
                  <span class="muted">no results yet</span>
                ) : (
                  <ul class="locations">
                    {c.locations.map((l) => {
                      const st = locationState(l, c.spec.interval, props.now);
                      return (
                        <li key={l.location} data-location={l.name} data-state={st}>
                          <span class={`st st-${st}`}>{st}</span> {l.name}{' '}
                          <span class="muted">
                            {l.ok ? `${Math.round(l.latencyMs)} ms` : l.message} · {ago(l.at, props.now)}
                          </span>
                        </li>
                      );
                    })}
                  </ul>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Uptime(props: {
  data: { slos: Record<string, { objective: number }>; byWindow: UptimeRow[][] } | null;
}) {
  if (props.data === null) return <p class="muted">Loading uptime…</p>;
  const { slos, byWindow } = props.data;
  const names = (byWindow[0] ?? []).map((r) => ({ kind: r.kind, name: r.name, service: r.service }));
  if (names.length === 0) return <Empty>No services or checks yet.</Empty>;
  return (
    <div class="scroll">
      <table id="uptime">
        <caption>
          Availability (up or degraded time over measured time; maintenance left out) and the share of the
          error budget left, per window. Objective: the service's slo, else {percent(DEFAULT_OBJECTIVE)}.
        </caption>
        <thead>
          <tr>
            <th scope="col">Service or check</th>
            <th scope="col">Objective</th>
            {WINDOWS.map((w) => (
              <th scope="col" key={w}>
                {w}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {names.map((n) => {
            const objective =
              slos[n.kind === 'service' ? n.name : (n.service ?? '')]?.objective ?? DEFAULT_OBJECTIVE;
            return (
              <tr key={`${n.kind}:${n.name}`} data-uptime={`${n.kind}:${n.name}`}>
                <th scope="row">
                  {n.name} <span class="muted">({n.kind})</span>
                </th>
                <td>{percent(objective)}</td>
                {WINDOWS.map((w, i) => {
                  const r = byWindow[i]?.find((x) => x.kind === n.kind && x.name === n.name);
                  const left = r ? budgetLeft(r, objective) : null;
                  return (
                    <td key={w} data-window={w}>
                      <div>{percent(r?.availability ?? null)}</div>
                      <div
                        class={
                          left === null
                            ? 'muted'
                            : left < 0
                              ? 'bad-text'
                              : left < 0.25
                                ? 'warn-text'
                                : 'muted'
                        }
                      >
                        {budgetText(left)}
                      </div>
                    </td>
                  );
                })}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** "budget left 75 %", or how many times over the allowed downtime when it is spent. */
function budgetText(left: number | null): string {
  if (left === null) return 'budget: no data';
  if (left >= 0) return `budget left ${percent(left, 1)}`;
  const times = 1 - left;
  return `budget spent: ${times < 10 ? times.toFixed(1) : Math.round(times)}× the allowed downtime`;
}

function Incidents(props: { rows: UptimeRow[] | null; now: number }) {
  if (props.rows === null) return <p class="muted">Loading incidents…</p>;
  const list = incidentsOf(props.rows);
  if (list.length === 0) return <Empty>No incidents in the last 30 days.</Empty>;
  return (
    <div class="scroll">
      <table id="incidents">
        <caption>Times a service or check was down, newest first</caption>
        <thead>
          <tr>
            <th scope="col">What</th>
            <th scope="col">Start</th>
            <th scope="col">End</th>
            <th scope="col">Duration</th>
            <th scope="col">Cause</th>
          </tr>
        </thead>
        <tbody>
          {list.map((i) => (
            <tr
              key={`${i.kind}:${i.subject}:${i.start}`}
              data-incident={i.subject}
              data-open={i.end === null}
            >
              <td>
                {i.subject} <span class="muted">({i.kind})</span>
              </td>
              <td>{clock(i.start, props.now)}</td>
              <td>{i.end === null ? <span class="bad-text">ongoing</span> : clock(i.end, props.now)}</td>
              <td>{formatDuration(i.end === null ? props.now - i.start : i.durationMs)}</td>
              <td class="reason">{i.cause}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
