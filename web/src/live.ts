import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { type ApiError, call, openStream } from './api.js';
import { mergeBySeq, mergeEvents } from './model.js';
import type { AlertView, DeployEvent, DeployRecord, EventRecord, StatusView } from './types.js';

export type ConnState = 'connecting' | 'live' | 'down';

export interface LiveData {
  status: StatusView | null;
  deploys: DeployRecord[];
  events: EventRecord[];
  deployEvents: Record<string, DeployEvent[]>;
  /** Pending and firing alerts plus recent others (null until the first answer). */
  alerts: AlertView[] | null;
  conn: ConnState;
  connDetail: string;
  /** server clock − browser clock, ms (from the stream's timestamps). */
  skew: number;
}

const initial: LiveData = {
  status: null,
  deploys: [],
  events: [],
  deployEvents: {},
  alerts: null,
  conn: 'connecting',
  connDetail: '',
  skew: 0,
};

/**
 * Everything the pages show, kept current: a first load over REST, then the live stream
 * (GET /v1/stream) merges status, deploys, events and deploy step events as they happen.
 */
export function useLive(token: string, onAuthError: (e: ApiError) => void) {
  const [data, setData] = useState<LiveData>(initial);
  const authRef = useRef(onAuthError);
  authRef.current = onAuthError;

  const merge = useCallback((patch: (d: LiveData) => Partial<LiveData>) => {
    setData((d) => ({ ...d, ...patch(d) }));
  }, []);

  const addDeployEvents = useCallback(
    (deployId: string, events: DeployEvent[]) =>
      merge((d) => ({
        deployEvents: { ...d.deployEvents, [deployId]: mergeBySeq(d.deployEvents[deployId] ?? [], events) },
      })),
    [merge],
  );

  const refresh = useCallback(async () => {
    const [status, deploys, events, alerts] = await Promise.all([
      call<StatusView>(token, 'GET', '/v1/status'),
      call<{ deploys: DeployRecord[] }>(token, 'GET', '/v1/deploys'),
      call<{ events: EventRecord[] }>(token, 'GET', '/v1/events?limit=1000'),
      call<{ alerts: AlertView[] }>(token, 'GET', '/v1/alerts?all=1'),
    ]);
    merge((d) => ({
      alerts: d.alerts ?? alerts.alerts,
      status: d.status ?? status,
      deploys: d.deploys.length ? d.deploys : deploys.deploys,
      events: mergeEvents(d.events, events.events),
    }));
  }, [token, merge]);

  useEffect(() => {
    refresh().catch((err: ApiError) => {
      if (err.status === 401 || err.status === 403) authRef.current(err);
    });
    return openStream(token, {
      onState: (conn, detail) => merge(() => ({ conn, connDetail: detail ?? '' })),
      onAuthError: (err) => authRef.current(err),
      onMessage: (event, payload) => {
        if (event === 'status') {
          const status = payload as StatusView;
          merge(() => ({ status, skew: status.now ? status.now - Date.now() : 0 }));
        } else if (event === 'deploys') {
          merge(() => ({ deploys: (payload as { deploys: DeployRecord[] }).deploys }));
        } else if (event === 'events') {
          const events = (payload as { events: EventRecord[] }).events;
          merge((d) => ({ events: mergeEvents(d.events, events) }));
        } else if (event === 'alerts') {
          merge(() => ({ alerts: (payload as { alerts: AlertView[] }).alerts }));
        } else if (event === 'deploy-events') {
          const p = payload as { deployId: string; events: DeployEvent[] };
          addDeployEvents(p.deployId, p.events);
        }
      },
    });
  }, [token, merge, refresh, addDeployEvents]);

  /** Load one deploy with all its steps (the stream only carries steps from now on). */
  const loadDeploy = useCallback(
    async (id: string) => {
      const r = await call<{ deploy: DeployRecord; events: DeployEvent[] }>(
        token,
        'GET',
        `/v1/deploys/${encodeURIComponent(id)}`,
      );
      merge((d) => ({
        deploys: d.deploys.some((x) => x.id === id)
          ? d.deploys.map((x) => (x.id === id && rank(r.deploy) >= rank(x) ? r.deploy : x))
          : [r.deploy, ...d.deploys],
      }));
      addDeployEvents(id, r.events);
      return r.deploy;
    },
    [token, merge, addDeployEvents],
  );

  /** An alert as an action answered it (the stream confirms within a poll). */
  const putAlert = useCallback(
    (a: AlertView) =>
      merge((d) => ({
        alerts: d.alerts?.some((x) => x.dedupKey === a.dedupKey)
          ? d.alerts.map((x) => (x.dedupKey === a.dedupKey ? a : x))
          : [a, ...(d.alerts ?? [])],
      })),
    [merge],
  );

  return { data, loadDeploy, putAlert };
}

/** How far a deploy record has got: a later answer never replaces a record that got further. */
function rank(d: DeployRecord): number {
  return d.state === 'pending' ? 0 : d.state === 'running' ? 1 : 2;
}

/** Re-render every `ms` for relative times and uptimes. */
export function useNow(ms = 1000, skew = 0): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now + skew;
}
