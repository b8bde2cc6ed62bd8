import { useEffect, useState } from 'preact/hooks';
import { ApiError, call } from '../api.js';
import { Empty, ErrorNote } from '../components.js';
import { type DrillRecordView, type DrillScheduleView, drillRow, scheduleText } from '../drill-model.js';
import { clock } from '../model.js';

const REFRESH_MS = 10_000;

/** Drill results (manual and scheduled) and the drill schedules (docs/drills.md). Read tokens see it all. */
export function DrillsPage(props: { token: string; now: number }) {
  const [drills, setDrills] = useState<DrillRecordView[] | null>(null);
  const [schedules, setSchedules] = useState<DrillScheduleView[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<string | null>(null);

  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const [d, s] = await Promise.all([
          call<{ drills: DrillRecordView[] }>(props.token, 'GET', '/v1/drills?limit=100'),
          call<{ schedules: DrillScheduleView[] }>(props.token, 'GET', '/v1/drill-schedules'),
        ]);
        if (stop) return;
        setDrills(d.drills);
        setSchedules(s.schedules);
        setError(null);
      } catch (e) {
        if (!stop) setError(e instanceof ApiError ? e.message : String(e));
      }
      if (!stop) timer = setTimeout(load, REFRESH_MS);
    };
    void load();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [props.token]);

  const shown = drills?.find((d) => d.id === open);
  return (
    <>
      <h1>Drills</h1>
      <ErrorNote error={error} />
      <section aria-labelledby="drill-results-h">
        <h2 id="drill-results-h">Results</h2>
        {drills === null ? (
          <p class="muted">Loading…</p>
        ) : drills.length === 0 ? (
          <Empty>
            No drills yet. Run one with <code>nines drill instance-kill --service NAME</code>.
          </Empty>
        ) : (
          <div class="scroll">
            <table class="history" id="drills">
              <caption class="sr-only">Drill results, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Drill</th>
                  <th scope="col">When</th>
                  <th scope="col">Service</th>
                  <th scope="col">Scenario</th>
                  <th scope="col">Result</th>
                  <th scope="col">Failed/sent</th>
                  <th scope="col">p99 during</th>
                  <th scope="col">Detect</th>
                  <th scope="col">Recover</th>
                  <th scope="col">Alerts</th>
                  <th scope="col">By</th>
                </tr>
              </thead>
              <tbody>
                {drills.map((d) => {
                  const r = drillRow(d);
                  return (
                    <tr key={d.id} data-drill={d.id} class={d.id === open ? 'selected' : ''}>
                      <td>
                        <button
                          type="button"
                          class="btn quiet mono"
                          aria-expanded={d.id === open}
                          onClick={() => setOpen(d.id === open ? null : d.id)}
                        >
                          {d.id}
                        </button>
                      </td>
                      <td>
                        <time dateTime={new Date(d.startedAt).toISOString()}>
                          {clock(d.startedAt, props.now)}
                        </time>
                      </td>
                      <td>{r.service}</td>
                      <td>{r.scenario}</td>
                      <td class={`result state-${r.outcome === 'passed' ? 'succeeded' : 'failed'}`}>
                        {r.outcome}
                      </td>
                      <td>{r.failed}</td>
                      <td>{r.p99During}</td>
                      <td>{r.detect}</td>
                      <td>{r.recover}</td>
                      <td>{r.alerts}</td>
                      <td>{r.by}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        {shown ? <DrillDetail d={shown} /> : null}
      </section>
      <section aria-labelledby="drill-schedules-h">
        <h2 id="drill-schedules-h">Schedules</h2>
        {schedules.length === 0 ? (
          <Empty>
            No scheduled drills (<code>drills:</code> in nines.yaml).
          </Empty>
        ) : (
          <table class="history" id="drill-schedules">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Service</th>
                <th scope="col">Scenario</th>
                <th scope="col">Schedule</th>
                <th scope="col">Last run</th>
                <th scope="col">Next</th>
              </tr>
            </thead>
            <tbody>
              {schedules.map((s) => (
                <tr key={s.name}>
                  <td>{s.name}</td>
                  <td>{s.spec.service}</td>
                  <td>{s.spec.scenario}</td>
                  <td>{scheduleText(s.spec)}</td>
                  <td>{s.lastRunAt === null ? '—' : clock(s.lastRunAt, props.now)}</td>
                  <td>
                    {!s.spec.enabled
                      ? 'paused'
                      : s.nextDueAt === null
                        ? '—'
                        : new Date(s.nextDueAt).toISOString().replace('T', ' ').slice(0, 16)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}

function DrillDetail(props: { d: DrillRecordView }) {
  const { d } = props;
  const r = d.result;
  const row = drillRow(d);
  return (
    <div class="card" id="drill-detail">
      <h2>
        {d.scenario} of {d.service}: {d.outcome}
      </h2>
      {row.why ? <p class="note bad">{row.why}</p> : null}
      {r.phases ? (
        <table class="history">
          <thead>
            <tr>
              <th scope="col">Phase</th>
              <th scope="col">Sent</th>
              <th scope="col">Failed</th>
              <th scope="col">p50 (ms)</th>
              <th scope="col">p99 (ms)</th>
            </tr>
          </thead>
          <tbody>
            {(['before', 'during', 'after'] as const).map((k) => {
              const p = r.phases?.[k];
              return p ? (
                <tr key={k}>
                  <th scope="row">{k}</th>
                  <td>{p.sent}</td>
                  <td>{p.failed}</td>
                  <td>{p.p50Ms}</td>
                  <td>{p.p99Ms}</td>
                </tr>
              ) : null;
            })}
          </tbody>
        </table>
      ) : null}
      {r.errorRateDuring !== undefined && r.errorRateDuring > 0 ? (
        <p>Error rate during the fault: {(r.errorRateDuring * 100).toFixed(1)} %</p>
      ) : null}
      <h3>Alerts raised</h3>
      {r.alerts === undefined || r.alerts === null ? (
        <p class="muted">Not recorded.</p>
      ) : r.alerts.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul id="drill-alerts">
          {r.alerts.map((a) => (
            <li key={a.id}>
              <strong>{a.name}</strong> ({a.severity}) — {a.summary}: fired{' '}
              {((a.firedAt - d.startedAt) / 1000).toFixed(1)} s into the drill
              {a.resolvedAt === null
                ? ', still firing at the end'
                : `, resolved at ${((a.resolvedAt - d.startedAt) / 1000).toFixed(1)} s`}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
