import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { DrillRecord } from '../controller/store/types.js';
import { duration, type NinesConfig } from '../core/config.js';
import type { DrillSchedule } from '../core/drill-schedule.js';
import { NinesError } from '../core/errors.js';
import { type DrillReport, renderReport, runDrill, SCENARIOS, type Scenario } from '../drill/drill.js';
import { Client, resolveTarget } from './client.js';
import type { CliKit } from './haproxy.js';
import { EXIT, table } from './output.js';

function ms(v: string, flag: string): number {
  const r = duration.safeParse(/^\d+$/.test(v) ? Number(v) : v);
  if (!r.success) throw new NinesError('NINES_E_VALIDATION', `${flag} ${v}: a duration like 500ms, 5s or 1m`);
  return r.data;
}

function int(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new NinesError('NINES_E_VALIDATION', `${flag} must be a whole number`);
  return n;
}

/** The proxy of a local `nines up` (its up.json), unless --proxy says where. */
async function proxyUrl(dataDir: string, given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  try {
    const info = JSON.parse(await readFile(join(resolve(dataDir), 'up.json'), 'utf8')) as {
      proxyUrl?: string;
    };
    if (typeof info.proxyUrl === 'string') return info.proxyUrl;
  } catch {}
  throw new NinesError('NINES_E_VALIDATION', 'give the nines proxy to load with --proxy http://HOST:PORT');
}

/**
 * The `drills:` part of `nines apply`/`nines up`: the controller's drill schedules become the file's
 * (a file without `drills:` leaves them alone, so schedules made through the API survive).
 */
export async function applyDrillSchedules(
  client: Client,
  config: Pick<NinesConfig, 'drills'>,
  out: { line(s: string): void },
): Promise<{ put: string[]; deleted: string[] }> {
  const put: string[] = [];
  const deleted: string[] = [];
  if (config.drills === undefined) return { put, deleted };
  const { schedules } = await client.get<{ schedules: Array<{ name: string; spec: DrillSchedule }> }>(
    '/v1/drill-schedules',
  );
  const live = new Map(schedules.map((s) => [s.name, s.spec]));
  for (const [name, spec] of Object.entries(config.drills)) {
    const cur = live.get(name);
    if (cur !== undefined && JSON.stringify(sortKeys(cur)) === JSON.stringify(sortKeys(spec))) continue;
    await client.put(`/v1/drill-schedules/${encodeURIComponent(name)}`, spec);
    put.push(name);
    out.line(`drill schedule ${name}: ${cur ? 'updated' : 'created'}`);
  }
  for (const name of live.keys()) {
    if (config.drills[name] !== undefined) continue;
    await client.delete(`/v1/drill-schedules/${encodeURIComponent(name)}`);
    deleted.push(name);
    out.line(`drill schedule ${name}: removed (not in the file)`);
  }
  return { put, deleted };
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

export function registerDrillCommands(program: Command, kit: CliKit): void {
  program
    .command('drill <scenario>')
    .description(`rehearse a failure under bounded load and measure it: ${SCENARIOS.join(', ')}`)
    .requiredOption('--service <name>', 'the service to drill (load goes only to its own proxy route)')
    .option('--proxy <url>', 'nines proxy base URL (default: the proxy of a local `nines up`)')
    .option('--rate <n>', 'requests per second (1–2000)', '50')
    .option('--connections <n>', 'keep-alive connections (1–256)', '8')
    .option('--before <duration>', 'load before the fault (baseline)', '3s')
    .option('--after <duration>', 'load after recovery', '3s')
    .option('--recover-timeout <duration>', 'give up waiting for recovery after this', '60s')
    .option('--max-failed <n>', 'pass only if at most this many requests failed', '0')
    .option('--max-p99 <duration>', 'pass only if every phase’s p99 latency is at most this')
    .option(
      '--version <v>',
      'deploy: the version to deploy and come back from (default: newest other stable)',
    )
    .option(
      '--outage <duration>',
      'controller-loss: how long agents and proxies cannot reach the controller (default 5s); host-loss, zone-outage: how long the hosts are gone (default 30s); dependency-down: how long the dependency is gone (default 10s)',
    )
    .option('--host <host>', 'host-loss: the host to lose (default: one running the service)')
    .option('--zone <zone>', 'zone-outage: the zone to lose (default: one running the service)')
    .option(
      '--dependency <check>',
      'dependency-down: the dependency check (declared with dependency: true) to take down',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  nines drill instance-kill --service web\n  nines drill deploy --service web --rate 200 --json\n' +
        '  nines drills --service web        # the results kept by the controller',
    )
    .action(
      kit.action(
        async (
          out,
          o,
          scenario: string,
          opts: {
            service: string;
            proxy?: string;
            rate: string;
            connections: string;
            before: string;
            after: string;
            recoverTimeout: string;
            maxFailed: string;
            maxP99?: string;
            version?: string;
            outage?: string;
            host?: string;
            zone?: string;
            dependency?: string;
          },
        ) => {
          if (!(SCENARIOS as readonly string[]).includes(scenario)) {
            throw new NinesError(
              'NINES_E_VALIDATION',
              `unknown drill "${scenario}": one of ${SCENARIOS.join(', ')}`,
            );
          }
          const api = new Client(await resolveTarget(o));
          const report: DrillReport = await runDrill(api, {
            scenario: scenario as Scenario,
            service: opts.service,
            proxyUrl: await proxyUrl(o.dataDir ?? '.nines', opts.proxy),
            rate: int(opts.rate, '--rate'),
            connections: int(opts.connections, '--connections'),
            beforeMs: ms(opts.before, '--before'),
            afterMs: ms(opts.after, '--after'),
            recoverTimeoutMs: ms(opts.recoverTimeout, '--recover-timeout'),
            maxFailed: int(opts.maxFailed, '--max-failed'),
            ...(opts.maxP99 !== undefined ? { maxP99Ms: ms(opts.maxP99, '--max-p99') } : {}),
            ...(opts.version !== undefined ? { version: opts.version } : {}),
            ...(opts.outage !== undefined ? { outageMs: ms(opts.outage, '--outage') } : {}),
            ...(opts.host !== undefined ? { host: opts.host } : {}),
            ...(opts.zone !== undefined ? { zone: opts.zone } : {}),
            ...(opts.dependency !== undefined ? { dependency: opts.dependency } : {}),
            progress: (l) => out.line(l),
          });
          const rec = await api.post<DrillRecord>('/v1/drills', {
            service: report.service,
            scenario: report.scenario,
            outcome: report.passed ? 'passed' : 'failed',
            startedAt: report.startedAt,
            finishedAt: report.finishedAt,
            result: report,
          });
          out.result({ id: rec.id, ...report }, renderReport(report, rec.id));
          return report.passed ? EXIT.ok : EXIT.failed;
        },
      ),
    );

  program
    .command('drills [id]')
    .description('drill results kept by the controller, newest first (one in full with its id)')
    .option('--service <name>', 'only this service')
    .option('--limit <n>', 'at most this many', '20')
    .action(
      kit.action(async (out, o, id: string | undefined, opts: { service?: string; limit: string }) => {
        const api = new Client(await resolveTarget(o));
        if (id !== undefined) {
          const d = await api.get<DrillRecord>(`/v1/drills/${encodeURIComponent(id)}`);
          const err = (d.result as { error?: { code: string; message: string } }).error;
          out.result(
            d,
            err !== undefined
              ? `drill ${d.scenario} of ${d.service} (${d.id}): did not run (${d.createdBy}) — ${err.code}: ${err.message}`
              : renderReport(d.result as unknown as DrillReport, d.id),
          );
          return EXIT.ok;
        }
        const q = new URLSearchParams({ limit: String(int(opts.limit, '--limit')) });
        if (opts.service) q.set('service', opts.service);
        const { drills } = await api.get<{ drills: DrillRecord[] }>(`/v1/drills?${q}`);
        const rows = drills.map((d) => {
          const r = d.result as unknown as Partial<DrillReport>;
          return [
            d.id,
            new Date(d.startedAt).toISOString().replace('T', ' ').slice(0, 19),
            d.service,
            d.scenario,
            d.outcome,
            `${r.failed ?? '?'}/${r.sent ?? '?'}`,
            r.timeToRecoverMs == null ? '—' : `${r.timeToRecoverMs} ms`,
          ];
        });
        out.result(
          { drills },
          drills.length === 0
            ? 'no drills yet'
            : table(['id', 'started', 'service', 'scenario', 'outcome', 'failed/sent', 'recover'], rows),
        );
        return EXIT.ok;
      }),
    );

  program
    .command('drill-schedules')
    .description('scheduled drills (drills: in nines.yaml), run by the leading controller')
    .action(
      kit.action(async (out, o) => {
        const api = new Client(await resolveTarget(o));
        const { schedules } = await api.get<{
          schedules: Array<{
            name: string;
            spec: DrillSchedule;
            lastRunAt: number | null;
            lastDrillId: string | null;
            nextDueAt: number | null;
          }>;
        }>('/v1/drill-schedules');
        const t = (v: number | null) =>
          v === null ? '—' : new Date(v).toISOString().replace('T', ' ').slice(0, 16);
        const rows = schedules.map((s) => [
          s.name,
          s.spec.service,
          s.spec.scenario,
          s.spec.every !== undefined ? `every ${s.spec.every / 1000}s` : `cron ${s.spec.cron}`,
          t(s.lastRunAt),
          s.lastDrillId ?? '—',
          s.spec.enabled ? t(s.nextDueAt) : 'paused',
        ]);
        out.result(
          { schedules },
          schedules.length === 0
            ? 'no scheduled drills'
            : table(['name', 'service', 'scenario', 'schedule', 'last run', 'last drill', 'next'], rows),
        );
        return EXIT.ok;
      }),
    );
}
