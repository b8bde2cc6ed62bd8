import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, call, tokenStore } from './api.js';
import { useLive, useNow } from './live.js';
import { parseRoute, type Route, roleLabel, unackedFiring } from './model.js';
import { AlertsPage } from './pages/alerts.js';
import { DeploysPage } from './pages/deploys.js';
import { DrillsPage } from './pages/drills.js';
import { EventsPage } from './pages/events.js';
import { FleetPage } from './pages/fleet.js';
import { ServicesPage } from './pages/services.js';
import type { Whoami } from './types.js';

export function App() {
  const [token, setToken] = useState<string | null>(() => tokenStore.get());
  const [who, setWho] = useState<Whoami | null>(null);
  const [signInError, setSignInError] = useState<string | null>(null);

  const signOut = useCallback((why?: string) => {
    tokenStore.clear();
    setToken(null);
    setWho(null);
    setSignInError(why ?? null);
  }, []);

  // A token from an earlier visit (same tab): find out who it is, or forget it.
  useEffect(() => {
    if (!token || who) return;
    call<Whoami>(token, 'GET', '/v1/whoami')
      .then(setWho)
      .catch((e: ApiError) => {
        if (e.status === 401 || e.status === 403) signOut(`Signed out: ${e.message}`);
        else setSignInError(e.message);
      });
  }, [token, who, signOut]);

  if (!token || !who) {
    return (
      <SignIn
        error={signInError}
        pending={token !== null && !signInError}
        onSignIn={async (t) => {
          setSignInError(null);
          try {
            const w = await call<Whoami>(t, 'GET', '/v1/whoami');
            tokenStore.set(t);
            setToken(t);
            setWho(w);
          } catch (e) {
            setSignInError(e instanceof ApiError ? e.message : String(e));
          }
        }}
      />
    );
  }
  return <Dashboard token={token} who={who} onSignOut={signOut} />;
}

function SignIn(props: { error: string | null; pending: boolean; onSignIn: (t: string) => Promise<void> }) {
  const [value, setValue] = useState('');
  return (
    <main id="main" class="signin">
      <h1>nines</h1>
      <form
        class="card"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) void props.onSignIn(value.trim());
        }}
      >
        <h2>Sign in</h2>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={value}
          aria-describedby="token-help"
          onInput={(e) => setValue(e.currentTarget.value)}
        />
        <p id="token-help" class="muted">
          An admin or read-only token. <code>nines up</code> writes the admin token to{' '}
          <code>.nines/admin-token</code>. It is kept in this tab only (sessionStorage).
        </p>
        <button class="btn primary" type="submit" id="sign-in">
          Sign in
        </button>
        {props.pending ? <p class="muted">Checking the saved token…</p> : null}
        {props.error ? (
          <p class="note bad" role="alert">
            {props.error}
          </p>
        ) : null}
      </form>
    </main>
  );
}

const PAGES: Array<{ page: Route['page']; label: string }> = [
  { page: 'fleet', label: 'Fleet' },
  { page: 'services', label: 'Services' },
  { page: 'deploys', label: 'Deploys' },
  { page: 'alerts', label: 'Alerts' },
  { page: 'events', label: 'Events' },
  { page: 'drills', label: 'Drills' },
];

function useRoute(): [Route, (hash: string) => void] {
  const [hash, setHash] = useState(() => location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const navigate = useCallback((h: string) => {
    location.hash = h;
  }, []);
  return [parseRoute(hash), navigate];
}

function Dashboard(props: { token: string; who: Whoami; onSignOut: (why?: string) => void }) {
  const { token, who, onSignOut } = props;
  const [route, navigate] = useRoute();
  const onAuthError = useCallback((e: ApiError) => onSignOut(`Signed out: ${e.message}`), [onSignOut]);
  const { data, loadDeploy, putAlert } = useLive(token, onAuthError);
  const firing = unackedFiring(data.alerts ?? []);
  const now = useNow(1000, data.skew);
  const label = PAGES.find((p) => p.page === route.page)?.label ?? '';

  useEffect(() => {
    document.title = `${label} · nines`;
    // Move focus to the page for keyboard and screen-reader users after a navigation.
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [label]);

  return (
    <>
      {/* A button, not a #main link: the hash is the page route. */}
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <span class="brand">nines</span>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.page}>
                <a href={`#/${p.page}`} aria-current={route.page === p.page ? 'page' : undefined}>
                  {p.label}
                  {p.page === 'alerts' && firing > 0 ? (
                    <span class="badge" id="firing-badge">
                      {' '}
                      {firing}
                      <span class="sr-only"> firing, not acknowledged</span>
                    </span>
                  ) : null}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class={`conn conn-${data.conn}`} title={data.connDetail} id="conn">
          {data.conn === 'live' ? '● live' : data.conn === 'connecting' ? '○ connecting…' : '○ reconnecting…'}
        </span>
        <span class="who" id="who">
          {who.name} ({roleLabel(who.role)})
        </span>
        <button type="button" class="btn quiet" onClick={() => onSignOut()}>
          Sign out
        </button>
      </header>
      {who.role !== 'admin' ? (
        <p class="banner info" id="readonly-banner">
          Signed in with a {roleLabel(who.role)} token: you see everything; actions are disabled.
        </p>
      ) : null}
      <main id="main" tabIndex={-1}>
        {!data.status ? (
          <p class="muted">Loading…</p>
        ) : route.page === 'fleet' ? (
          <FleetPage status={data.status} now={now} token={token} />
        ) : route.page === 'services' ? (
          <ServicesPage status={data.status} now={now} token={token} role={who.role} />
        ) : route.page === 'deploys' ? (
          <DeploysPage
            token={token}
            role={who.role}
            status={data.status}
            deploys={data.deploys}
            deployEvents={data.deployEvents}
            loadDeploy={loadDeploy}
            now={now}
            live={data.conn === 'live'}
            route={route}
            navigate={navigate}
          />
        ) : route.page === 'alerts' ? (
          <AlertsPage token={token} role={who.role} alerts={data.alerts} now={now} putAlert={putAlert} />
        ) : route.page === 'drills' ? (
          <DrillsPage token={token} now={now} />
        ) : (
          <EventsPage events={data.events} now={now} />
        )}
      </main>
    </>
  );
}
