import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { StatusView } from '../controller/status.js';
import type { DeployEventRecord, DeployRecord, ReleaseRecord } from '../controller/store/types.js';
import { packDirectory, sha256File } from '../core/artifact.js';
import { NinesError } from '../core/errors.js';
import type { Client } from './client.js';
import { type Out, table } from './output.js';

/** Pack `path` if it is a directory, then upload it as `version` of `service`. */
export async function release(
  client: Client,
  service: string,
  path: string,
  version: string,
): Promise<ReleaseRecord> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new NinesError('NINES_E_VALIDATION', `${path} does not exist`);
  let file = path;
  let sha256: string;
  let tmp: string | undefined;
  if (st.isDirectory()) {
    tmp = await mkdtemp(join(tmpdir(), 'nines-release-'));
    file = join(tmp, `${basename(path)}-${version}.tgz`);
    sha256 = (await packDirectory(path, file)).sha256;
  } else {
    sha256 = await sha256File(file);
  }
  try {
    const res = await client.upload<{ release: ReleaseRecord }>(
      `/v1/services/${encodeURIComponent(service)}/releases?version=${encodeURIComponent(version)}`,
      file,
      sha256,
    );
    return res.release;
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

const TERMINAL = new Set(['succeeded', 'failed', 'reverted']);

/** Follow a deploy's events until it ends, printing each step; resolves with the final record. */
export async function followDeploy(
  client: Client,
  deploy: DeployRecord,
  out: Out,
  opts: { timeoutMs?: number } = {},
): Promise<DeployRecord> {
  const until = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  let after = 0;
  let current = deploy;
  while (Date.now() < until) {
    const r = await client.get<{ deploy: DeployRecord; events: DeployEventRecord[] }>(
      `/v1/deploys/${encodeURIComponent(deploy.id)}/events?after=${after}&wait=20`,
    );
    for (const e of r.events) {
      after = Math.max(after, e.seq);
      out.progress(e);
    }
    current = r.deploy;
    if (TERMINAL.has(current.state)) return current;
  }
  throw new NinesError(
    'NINES_E_TIMEOUT',
    `gave up waiting for deploy ${deploy.id} after ${opts.timeoutMs ?? 30 * 60_000} ms; it goes on (nines deploys)`,
  );
}

export function deployResultLine(d: DeployRecord): string {
  const took = d.startedAt && d.finishedAt ? ` in ${((d.finishedAt - d.startedAt) / 1000).toFixed(1)} s` : '';
  const seen =
    d.requests === null || d.failedRequests === null
      ? ''
      : ` · ${d.failedRequests} of ${d.requests.toLocaleString('en-US')} requests failed (seen by the proxies)`;
  if (d.state === 'succeeded') {
    return `done: ${d.service} ${d.fromVersion ?? '∅'} → ${d.toVersion}${took}${seen} (${d.id})`;
  }
  return `${d.state}: ${d.reason ?? 'no reason recorded'}${took}${seen} (${d.id})`;
}

export function renderStatus(s: StatusView): string {
  const lines: string[] = [];
  for (const svc of s.services) {
    const mine = s.instances.filter((i) => i.service === svc.name);
    const ready = mine.filter((i) => i.route === 'ready' && i.healthy).length;
    lines.push(
      `service ${svc.name}: release ${svc.currentRelease ?? 'none'}, ${ready}/${svc.desiredInstances} ready` +
        (svc.mode !== 'live' ? `, mode ${svc.mode.toUpperCase()}` : '') +
        (svc.lockedBy ? `, deploy ${svc.lockedBy} in progress` : ''),
    );
    lines.push(
      `  releases: ${svc.releases.map((r) => `${r.version}${r.stable ? '' : ' (unproven)'}`).join(', ') || 'none'}`,
    );
    if (mine.length > 0) {
      lines.push(
        table(
          ['INSTANCE', 'VERSION', 'HOST', 'STATE', 'HEALTH', 'ROUTE', 'PORT', 'RESTARTS'],
          mine.map((i) => [
            i.id,
            i.version,
            `${i.host}${i.zone ? `/${i.zone}` : ''}`,
            i.state,
            i.healthy ? 'healthy' : 'unhealthy',
            i.route,
            i.port === null ? '-' : String(i.port),
            String(i.restarts),
          ]),
          '  ',
        ),
      );
    }
  }
  if (s.services.length === 0) lines.push('no services');
  lines.push(`hosts: ${s.hosts.length}, proxies reporting: ${s.proxies.length}`);
  return lines.join('\n');
}

export function renderDeploys(list: DeployRecord[]): string {
  return table(
    ['DEPLOY', 'KIND', 'STRATEGY', 'FROM', 'TO', 'STATE', 'BY', 'STARTED', 'DURATION', 'FAILED', 'REASON'],
    list.map((d) => [
      d.id,
      d.kind,
      d.strategy,
      d.fromVersion ?? '∅',
      d.toVersion,
      d.state,
      d.createdBy,
      new Date(d.createdAt).toISOString().replace('T', ' ').slice(0, 19),
      d.startedAt && d.finishedAt ? `${((d.finishedAt - d.startedAt) / 1000).toFixed(1)}s` : '-',
      d.requests === null ? '-' : `${d.failedRequests}/${d.requests}`,
      d.reason ?? '',
    ]),
  );
}
