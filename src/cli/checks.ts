import type { Command } from 'commander';
import type { AvailabilityAnswer, UptimeRow } from '../controller/checks/reports.js';
import type { CheckView } from '../controller/checks/service.js';
import type { CheckConfig } from '../core/checks.js';
import type { NinesConfig } from '../core/config.js';
import type { Client } from './client.js';
import { EXIT, type Out, table } from './output.js';

/**
 * `nines checks`, `nines uptime`, `nines availability`, and the checks part of `nines apply`/`nines up`.
 * Checks are declarative: apply makes the controller's set equal to the file's (checks only observe,
 * so removing one stops nothing).
 */

export async function applyChecks(
  client: Client,
  config: Pick<NinesConfig, 'checks'>,
  out: Out,
): Promise<{ put: string[]; deleted: string[] }> {
  const { checks } = await client.get<{ checks: CheckView[] }>('/v1/checks');
  const live = new Map(checks.map((c) => [c.name, c.spec]));
  const put: string[] = [];
  const deleted: string[] = [];
  for (const [name, spec] of Object.entries(config.checks ?? {})) {
    const cur = live.get(name);
    if (cur && same(cur, spec)) continue;
    await client.put(`/v1/checks/${encodeURIComponent(name)}`, spec);
    put.push(name);
    out.line(`check ${name}: ${cur ? 'updated' : 'created'}`);
  }
  for (const name of live.keys()) {
    if (config.checks?.[name]) continue;
    await client.delete(`/v1/checks/${encodeURIComponent(name)}`);
    deleted.push(name);
    out.line(`check ${name}: removed (not in the file)`);
  }
  return { put, deleted };
}

function same(a: CheckConfig, b: CheckConfig): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
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

function target(c: CheckConfig): string {
  switch (c.type) {
    case 'http':
      return `${c.method} ${c.url}`;
    case 'tcp':
      return `${c.host}:${c.port}`;
    case 'dns':
      return `${c.record} ${c.query}${c.server ? ` @${c.server}` : ''}`;
  }
}

function pct(a: number | null): string {
  return a === null ? '-' : `${(Math.floor(a * 100_000) / 1000).toFixed(3)}%`;
}

function dur(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

export interface CliHelpers<O> {
  client(o: O): Promise<Client>;
  action<A extends unknown[]>(
    fn: (out: Out, o: O, ...args: A) => Promise<number | undefined>,
  ): (...args: unknown[]) => Promise<void>;
}

/** Adds the commands to the program (main.ts passes its `client` and `action` helpers). */
export function addCheckCommands<O>(program: Command, { client, action }: CliHelpers<O>): void {
  program
    .command('checks')
    .description('black-box checks: state (up / degraded / down by quorum of locations) and each location')
    .addHelpText('after', '\nExample:\n  nines checks --json')
    .action(
      action(async (out, o) => {
        const r = await (await client(o)).get<{ checks: CheckView[] }>('/v1/checks');
        const lines = [
          table(
            ['CHECK', 'TYPE', 'TARGET', 'STATE', 'SINCE', 'LOCATIONS', 'MESSAGE'],
            r.checks.map((c) => [
              c.name + (c.spec.dependency ? ' (dep)' : ''),
              c.spec.type,
              target(c.spec),
              c.state,
              c.since ? new Date(c.since).toISOString().replace('T', ' ').slice(0, 19) : '-',
              `${c.locations.filter((l) => l.ok).length}/${c.locations.length} ok`,
              c.message,
            ]),
          ),
        ];
        for (const c of r.checks) {
          for (const l of c.locations) {
            lines.push(
              `  ${c.name} from ${l.name}: ${l.ok ? 'ok' : 'FAIL'} ${Math.round(l.latencyMs)} ms` +
                `${l.certDaysLeft !== undefined ? `, cert ${Math.floor(l.certDaysLeft)} days` : ''} — ${l.message}`,
            );
          }
        }
        out.result(
          r,
          r.checks.length === 0 ? 'no checks (declare them under checks: in nines.yaml)' : lines.join('\n'),
        );
        return r.checks.some((c) => c.state === 'down') ? EXIT.failed : EXIT.ok;
      }),
    );

  program
    .command('uptime')
    .description('uptime of every service and check, error budget left, incidents (maintenance excluded)')
    .option('--window <w>', 'report window: 24h, 7d, 30d or 90d', '30d')
    .option('--objective <a>', 'availability objective for the error budget', '0.999')
    .addHelpText('after', '\nExample:\n  nines uptime --window 7d --objective 0.9995')
    .action(
      action(async (out, o, opts: { window: string; objective: string }) => {
        const q = new URLSearchParams({ window: opts.window, objective: opts.objective });
        const r = await (await client(o)).get<{ rows: UptimeRow[] }>(`/v1/uptime?${q}`);
        const lines = [
          table(
            [
              'KIND',
              'NAME',
              'UPTIME',
              'DOWN',
              'DEGRADED',
              'NO DATA',
              'MAINTENANCE',
              'BUDGET LEFT',
              'INCIDENTS',
              'REQUESTS OK',
            ],
            r.rows.map((x) => [
              x.kind === 'check' && x.dependency ? 'dependency' : x.kind,
              x.name,
              pct(x.availability),
              dur(x.downMs),
              dur(x.degradedMs),
              dur(x.unknownMs),
              dur(x.maintenanceMs),
              x.errorBudgetLeft === null ? '-' : `${Math.round(x.errorBudgetLeft * 1000) / 10}%`,
              String(x.incidents.length),
              x.requests?.availability == null
                ? '-'
                : `${pct(x.requests.availability)} of ${x.requests.total} (budget ${Math.round((x.requests.errorBudgetLeft ?? 0) * 1000) / 10}%)`,
            ]),
          ),
        ];
        for (const x of r.rows) {
          for (const i of x.incidents) {
            lines.push(
              `  ${x.name}: down ${new Date(i.start).toISOString()} → ${i.end === null ? 'ongoing' : new Date(i.end).toISOString()} (${dur(i.durationMs)}): ${i.cause}`,
            );
          }
          for (const m of x.maintenance) {
            lines.push(
              `  ${x.name}: maintenance ${new Date(m.start).toISOString()} → ${new Date(m.end).toISOString()}`,
            );
          }
        }
        out.result(r, lines.join('\n'));
        return EXIT.ok;
      }),
    );

  program
    .command('availability [service]')
    .description(
      'predicted availability from measured components: instances in parallel, dependencies in series',
    )
    .option('--window <w>', 'measurement window: 24h, 7d, 30d or 90d', '30d')
    .option('--objective <a>', 'availability objective (SLO)', '0.999')
    .addHelpText('after', '\nExample:\n  nines availability web --objective 0.999')
    .action(
      action(async (out, o, service: string | undefined, opts: { window: string; objective: string }) => {
        const q = new URLSearchParams({ window: opts.window, objective: opts.objective });
        if (service) q.set('service', service);
        const r = await (await client(o)).get<{ services: AvailabilityAnswer[] }>(`/v1/availability?${q}`);
        const lines: string[] = [];
        for (const s of r.services) {
          lines.push(
            `${s.service}: predicted ${pct(s.predicted)} (${s.predictedNines === null ? '-' : s.predictedNines.toFixed(2)} nines), measured ${pct(s.measured)} (answers ${pct(s.measuredByRequests ?? null)}), objective ${pct(s.objective)} → ${s.meetsObjective === null ? 'not enough data' : s.meetsObjective ? 'meets it' : 'MISSES it'}`,
          );
          lines.push(
            table(
              ['COMPONENT', 'KIND', 'MEMBERS', 'MEASURED (ONE)', 'COMPOSED'],
              s.components.map((c) => [c.name, c.kind, String(c.members), pct(c.measured), pct(c.composed)]),
              '  ',
            ),
          );
          lines.push(
            `  each of ${s.components.length} component(s) in series needs ≥ ${pct(s.requiredPerComponent)}; allowed downtime ${dur(s.allowedDowntimeMs)} per ${s.window}` +
              (s.instancesNeeded === null
                ? ''
                : `; instances needed at the measured rate: ${s.instancesNeeded}`),
          );
        }
        out.result(r, lines.join('\n') || 'no services');
        return EXIT.ok;
      }),
    );
}
