import { Empty, VersionChip } from '../components.js';
import { ago, formatBytes, readyCount, rollbackTarget, versionSlots } from '../model.js';
import type { StatusView } from '../types.js';

export function ServicesPage(props: { status: StatusView; now: number }) {
  const { status, now } = props;
  const slots = versionSlots(status.services, status.instances);
  return (
    <>
      <h1>Services</h1>
      {status.services.length === 0 ? <Empty>No services yet: declare them in nines.yaml.</Empty> : null}
      {status.services.map((s) => {
        const ready = readyCount(s.name, status.instances);
        const short = ready < s.desiredInstances;
        const target = rollbackTarget(s);
        return (
          <section key={s.name} class="card" aria-labelledby={`svc-${s.name}`} data-service={s.name}>
            <h2 id={`svc-${s.name}`}>{s.name}</h2>
            <dl class="kv wide">
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
