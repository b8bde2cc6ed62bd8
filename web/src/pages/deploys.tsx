import { useEffect, useState } from 'preact/hooks';
import { ApiError, call } from '../api.js';
import { ActionButton, Empty, ErrorNote, VersionChip } from '../components.js';
import {
  clock,
  clockMs,
  type DeployControl,
  deployControls,
  deployDuration,
  eventTone,
  formatSeconds,
  isActive,
  permission,
  renderChanges,
  resultLine,
  rollbackTarget,
  versionSlots,
} from '../model.js';
import {
  DEPLOY_STRATEGIES,
  type DeployEvent,
  type DeployPlan,
  type DeployRecord,
  type DeployStrategy,
  type ReleaseDiff,
  type Role,
  type StatusView,
} from '../types.js';

interface Props {
  token: string;
  role: Role | null;
  status: StatusView;
  deploys: DeployRecord[];
  deployEvents: Record<string, DeployEvent[]>;
  loadDeploy: (id: string) => Promise<DeployRecord>;
  now: number;
  /** The live stream is connected (else the timeline polls). */
  live: boolean;
  route: { deployId?: string; service?: string; version?: string };
  navigate: (hash: string) => void;
}

export function DeploysPage(props: Props) {
  const { status, deploys, now } = props;
  const slots = versionSlots(status.services, status.instances);
  // The deploy shown in the timeline: the one in the URL, else the running one, else the latest.
  const shownId = props.route.deployId ?? deploys.find(isActive)?.id ?? deploys[0]?.id;
  return (
    <>
      <h1>Deploys</h1>
      <StartDeploy {...props} />
      {shownId ? (
        <DeployDetail key={shownId} {...props} deployId={shownId} slots={slots} />
      ) : (
        <Empty>No deploys yet.</Empty>
      )}
      <section aria-labelledby="history-h">
        <h2 id="history-h">History</h2>
        <div class="scroll">
          <table class="history">
            <caption class="sr-only">Deploys, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Deploy</th>
                <th scope="col">Service</th>
                <th scope="col">From → to</th>
                <th scope="col">Result</th>
                <th scope="col">Who</th>
                <th scope="col">When</th>
                <th scope="col">Took</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {deploys.map((d) => {
                const took = deployDuration(d, now);
                return (
                  <tr key={d.id} class={d.id === shownId ? 'selected' : ''} data-deploy={d.id}>
                    <td>
                      <a href={`#/deploys/${encodeURIComponent(d.id)}`} class="mono">
                        {d.id}
                      </a>
                      {d.kind !== 'deploy' ? <span class="muted"> ({d.kind})</span> : null}
                    </td>
                    <td>{d.service}</td>
                    <td>
                      {d.fromVersion ? (
                        <VersionChip version={d.fromVersion} slot={slots.get(d.fromVersion)} />
                      ) : (
                        '∅'
                      )}{' '}
                      → <VersionChip version={d.toVersion} slot={slots.get(d.toVersion)} />
                    </td>
                    <td class={`state-${d.state}`}>{d.state === 'succeeded' ? 'done' : d.state}</td>
                    <td>{d.createdBy}</td>
                    <td>{clock(d.createdAt, now)}</td>
                    <td>{took === null ? '—' : formatSeconds(took)}</td>
                    <td class="reason">{d.reason ?? ''}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </section>
    </>
  );
}

function stepText(s: { start: number; stop: number }): string {
  const parts = [s.start ? `start ${s.start} new` : '', s.stop ? `drain and stop ${s.stop} old` : ''];
  return parts.filter(Boolean).join(', ');
}

function StartDeploy(props: Props) {
  const { status, token } = props;
  const [service, setService] = useState(props.route.service ?? status.services[0]?.name ?? '');
  const svc = status.services.find((s) => s.name === service);
  const defaultVersion = (s = svc) =>
    s?.releases.find((r) => r.version !== s.currentRelease)?.version ?? s?.releases[0]?.version ?? '';
  const [version, setVersion] = useState(props.route.version ?? defaultVersion());
  // '' = the strategy the release's config names.
  const [strategy, setStrategy] = useState<DeployStrategy | ''>('');
  const [plan, setPlan] = useState<DeployPlan | null>(null);
  const [planError, setPlanError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (props.route.service) setService(props.route.service);
    if (props.route.version) setVersion(props.route.version);
  }, [props.route.service, props.route.version]);

  // The plan is the server's: the same planner the engine runs, on the same counts. It follows the fleet.
  const fleetKey = JSON.stringify([svc?.lockedBy, svc?.currentRelease, status.instances.length]);
  useEffect(() => {
    setPlanError(null);
    if (!service || !version) {
      setPlan(null);
      return;
    }
    let gone = false;
    call<DeployPlan>(
      token,
      'GET',
      `/v1/services/${encodeURIComponent(service)}/deploy-plan?version=${encodeURIComponent(version)}${strategy ? `&strategy=${strategy}` : ''}`,
    )
      .then((p) => !gone && setPlan(p))
      .catch((e: Error) => {
        if (gone) return;
        setPlan(null);
        setPlanError(e.message);
      });
    return () => {
      gone = true;
    };
  }, [token, service, version, strategy, fleetKey]);

  const nothing = plan !== null && plan.service === service && plan.to === version && plan.nothing;
  const rolePerm = permission(props.role, 'deploy', { lockedBy: svc?.lockedBy ?? null });
  const perm =
    rolePerm.ok && nothing
      ? { ok: false, reason: `Nothing to do: ${service} already runs ${version} on every instance.` }
      : rolePerm;
  const start = async (e: Event) => {
    e.preventDefault();
    if (!perm.ok || !service || !version) return;
    setBusy(true);
    setError(null);
    try {
      const r = await call<{ deploy: DeployRecord }>(
        token,
        'POST',
        `/v1/services/${encodeURIComponent(service)}/deploys`,
        strategy ? { version, strategy } : { version },
      );
      props.navigate(`#/deploys/${encodeURIComponent(r.deploy.id)}`);
    } catch (err) {
      setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err));
    } finally {
      setBusy(false);
    }
  };

  const target = svc ? rollbackTarget(svc) : null;
  const rbPerm = target
    ? permission(props.role, 'rollback', { lockedBy: svc?.lockedBy ?? null })
    : { ok: false, reason: `${service} has no other stable release to roll back to` };
  const rollback = async () => {
    if (!rbPerm.ok || !svc) return;
    setBusy(true);
    setError(null);
    try {
      const r = await call<{ deploy: DeployRecord }>(
        token,
        'POST',
        `/v1/services/${encodeURIComponent(svc.name)}/rollback`,
        {},
      );
      props.navigate(`#/deploys/${encodeURIComponent(r.deploy.id)}`);
    } catch (err) {
      setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="start-h">
      <h2 id="start-h">Start a deploy</h2>
      <form class="deploy-form" onSubmit={start}>
        <label>
          Service
          <select
            id="deploy-service"
            value={service}
            onChange={(e) => {
              const name = e.currentTarget.value;
              setService(name);
              setVersion(defaultVersion(status.services.find((s) => s.name === name)));
            }}
          >
            {status.services.map((s) => (
              <option key={s.name} value={s.name}>
                {s.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Release
          <select id="deploy-version" value={version} onChange={(e) => setVersion(e.currentTarget.value)}>
            {(svc?.releases ?? []).map((r) => (
              <option key={r.version} value={r.version}>
                {r.version}
                {r.version === svc?.currentRelease ? ' (current)' : ''}
                {r.stable ? '' : ' (not yet stable)'}
              </option>
            ))}
          </select>
        </label>
        <label>
          Strategy
          <select
            id="deploy-strategy"
            value={strategy}
            onChange={(e) => setStrategy(e.currentTarget.value as DeployStrategy | '')}
          >
            <option value="">as configured{plan && !strategy ? ` (${plan.strategy})` : ''}</option>
            {DEPLOY_STRATEGIES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <div class="plan" id="deploy-plan" aria-live="polite">
          {plan ? (
            <>
              <p>
                <strong>Plan:</strong> {plan.from ?? '∅'} → {plan.to}, {plan.text}
              </p>
              <ol class="steps">
                {plan.steps.map((s, k) => (
                  <li key={k}>{stepText(s)}</li>
                ))}
                {plan.lines.map((line) => (
                  <li key={line}>{line}</li>
                ))}
              </ol>
              {plan.warnings.map((w) => (
                <p key={w} class="note warn">
                  {w}
                </p>
              ))}
            </>
          ) : planError ? (
            <p class="note bad">Cannot plan: {planError}</p>
          ) : (
            <p class="muted">Pick a service and a release to see the plan.</p>
          )}
        </div>
        <div class="buttons">
          <ActionButton id="start-deploy" type="submit" perm={perm} busy={busy}>
            Start {plan?.strategy ?? 'rolling'} deploy
          </ActionButton>
          <ActionButton id="rollback" kind="danger" perm={rbPerm} busy={busy} onClick={rollback}>
            {target ? `Roll back ${service} to ${target}` : 'Roll back'}
          </ActionButton>
        </div>
        <ErrorNote error={error} />
      </form>
    </section>
  );
}

function DeployDetail(props: Props & { deployId: string; slots: Map<string, number> }) {
  const { deployId, now } = props;
  const [error, setError] = useState<string | null>(null);
  const listed = props.deploys.find((d) => d.id === deployId);
  const [fetched, setFetched] = useState<DeployRecord | null>(null);
  const deploy = listed ?? fetched;
  const events = props.deployEvents[deployId] ?? [];
  const active = deploy ? isActive(deploy) : true;
  const { loadDeploy } = props;

  useEffect(() => {
    let gone = false;
    loadDeploy(deployId)
      .then((d) => !gone && setFetched(d))
      .catch((e: Error) => !gone && setError(e.message));
    return () => {
      gone = true;
    };
  }, [deployId, loadDeploy]);

  // The stream carries the steps; if it is down while the deploy runs, look every 2 s instead.
  useEffect(() => {
    if (!active || props.live) return;
    const t = setInterval(() => {
      loadDeploy(deployId).catch(() => {});
    }, 2000);
    return () => clearInterval(t);
  }, [deployId, active, props.live, loadDeploy]);

  if (!deploy) {
    return (
      <section class="card" aria-labelledby="detail-h">
        <h2 id="detail-h">Deploy {deployId}</h2>
        {error ? <ErrorNote error={error} /> : <p class="muted">Loading…</p>}
      </section>
    );
  }
  return (
    <section class="card" aria-labelledby="detail-h" data-deploy-detail={deploy.id}>
      <h2 id="detail-h">
        {deploy.kind === 'rollback' ? 'Rollback' : 'Deploy'} of {deploy.service}:{' '}
        {deploy.fromVersion ? (
          <VersionChip version={deploy.fromVersion} slot={props.slots.get(deploy.fromVersion)} />
        ) : (
          '∅'
        )}{' '}
        → <VersionChip version={deploy.toVersion} slot={props.slots.get(deploy.toVersion)} />
      </h2>
      <p class="muted">
        <span class="mono">{deploy.id}</span> · {deploy.strategy} · started by {deploy.createdBy} at{' '}
        {clock(deploy.createdAt, now)}
      </p>
      <ol class="timeline" aria-live="polite" aria-relevant="additions" aria-label={`Steps of ${deploy.id}`}>
        {events.map((e) => (
          <li key={e.seq} class={`tone-${eventTone(e.type)}`} data-type={e.type}>
            <time dateTime={new Date(e.at).toISOString()}>{clockMs(e.at)}</time>
            <span class="kind">{e.type}</span>
            <span class="msg">{e.message}</span>
          </li>
        ))}
      </ol>
      <ConfigChanges token={props.token} deploy={deploy} />
      <DeployControls token={props.token} role={props.role} deploy={deploy} />
      <p class={`result state-${deploy.state}`} role="status" id="deploy-result">
        {resultLine(deploy, now)}
      </p>
    </section>
  );
}

const CONTROL_LABEL: Record<DeployControl, string> = {
  promote: 'Promote',
  pause: 'Pause',
  resume: 'Resume',
  abort: 'Abort and revert',
};

/** What the deploy changes in the service's config, field by field (the controller diffs the releases). */
function ConfigChanges(props: { token: string; deploy: DeployRecord }) {
  const { service, fromVersion, toVersion } = props.deploy;
  const [diff, setDiff] = useState<ReleaseDiff | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let gone = false;
    const q = fromVersion ? `?from=${encodeURIComponent(fromVersion)}` : '';
    call<ReleaseDiff>(
      props.token,
      'GET',
      `/v1/services/${encodeURIComponent(service)}/releases/${encodeURIComponent(toVersion)}/diff${q}`,
    )
      .then((d) => !gone && setDiff(d))
      .catch((e: Error) => !gone && setError(e.message));
    return () => {
      gone = true;
    };
  }, [props.token, service, fromVersion, toVersion]);
  if (error) return <ErrorNote error={error} />;
  if (!diff) return null;
  return (
    <details class="config-diff" open={diff.changes.length > 0 && diff.changes.length <= 12}>
      <summary>
        Config changes {diff.from ? `${diff.from} → ${diff.to}` : `of ${diff.to}`}:{' '}
        {diff.changes.length === 0 ? 'none' : diff.changes.length}
      </summary>
      {diff.changes.length > 0 && (
        <ul class="mono" aria-label="Config changes">
          {renderChanges(diff.changes).map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      )}
    </details>
  );
}

/** Pause (at the next step), resume, or abort (revert) the deploy in flight. */
function DeployControls(props: { token: string; role: Role | null; deploy: DeployRecord }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const controls = deployControls(props.deploy);
  if (controls.length === 0) return null;
  const perm = permission(props.role, 'deploy');
  const act = async (c: DeployControl) => {
    setBusy(true);
    setError(null);
    try {
      await call(props.token, 'POST', `/v1/deploys/${encodeURIComponent(props.deploy.id)}/${c}`, {});
    } catch (err) {
      setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <fieldset class="actions controls">
      <legend class="sr-only">Deploy controls</legend>
      {controls.map((c) => (
        <ActionButton
          key={c}
          id={`deploy-${c}`}
          kind={c === 'abort' ? 'danger' : 'primary'}
          perm={perm}
          busy={busy}
          onClick={() => act(c)}
        >
          {CONTROL_LABEL[c]}
        </ActionButton>
      ))}
      <ErrorNote error={error} />
    </fieldset>
  );
}
