import type { Command } from 'commander';
import type { StoredAlert } from '../controller/alerting/store.js';
import { type AlertingConfig, alertingConfigOf, alertingConfigSchema } from '../core/alerting-config.js';
import type { NinesConfig } from '../core/config.js';
import { diffFields, type FieldChange, renderFieldChanges } from '../core/config-diff.js';
import { NinesError } from '../core/errors.js';
import type { Client } from './client.js';
import { EXIT, type Out, table } from './output.js';

/** How main.ts runs an action and reaches the controller (passed in: they live there). */
export interface CliDeps<O> {
  action: <A extends unknown[]>(
    fn: (out: Out, o: O, ...args: A) => Promise<number | undefined>,
  ) => (...args: unknown[]) => Promise<void>;
  client: (o: O) => Promise<Client>;
}

/** `nines up` / `nines apply`: the alerting part of nines.yaml goes to the controller as a whole. */
export async function applyAlerting(client: Client, config: NinesConfig): Promise<void> {
  await client.put('/v1/alerting/config', alertingConfigOf(config));
}

/**
 * `nines plan` / `nines diff`: the alerting part of the file against what the controller runs, field by
 * field (from the controller's value to the file's: what apply would do). Rules, channels, escalations
 * and schedules by name; `slos.web.objective` is shown as the file spells it, `services.web.slo.objective`.
 */
export async function alertingChanges(client: Client, config: NinesConfig): Promise<FieldChange[]> {
  const local = alertingConfigSchema.parse(JSON.parse(JSON.stringify(alertingConfigOf(config))));
  const { config: remote } = await client.get<{ config: AlertingConfig }>('/v1/alerting/config');
  const empty = alertingConfigSchema.parse({});
  return (Object.keys(local) as (keyof AlertingConfig)[]).flatMap((k) =>
    diffFields(k, remote?.[k] ?? empty[k], local[k]).map((f) => ({
      ...f,
      path: f.path.replace(/^slos\.([^.]+)/, 'services.$1.slo'),
    })),
  );
}

/** The human lines for `alertingChanges`, or undefined when they match. */
export function renderAlertingDrift(fields: readonly FieldChange[]): string | undefined {
  if (fields.length === 0) return undefined;
  const sections = [...new Set(fields.map((f) => f.path.split('.')[0] ?? ''))];
  return [
    `~ alerting: ${sections.join(', ')} differ (apply sends the alerting section whole)`,
    ...renderFieldChanges(fields),
  ].join('\n');
}

/** `nines plan` / `nines diff`, one string: which alerting fields differ, or undefined when none. */
export async function alertingDrift(client: Client, config: NinesConfig): Promise<string | undefined> {
  return renderAlertingDrift(await alertingChanges(client, config));
}

const iso = (t: number | undefined | null) =>
  t === undefined || t === null ? '-' : new Date(t).toISOString().replace('T', ' ').slice(0, 19);

function ago(t: number | undefined, now: number): string {
  if (t === undefined) return '-';
  const s = Math.max(0, Math.round((now - t) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

export function renderAlerts(alerts: readonly StoredAlert[], now = Date.now()): string {
  if (alerts.length === 0) return 'no alerts';
  return table(
    ['ID', 'STATE', 'SEVERITY', 'ALERT', 'FOR', 'ACK', 'SUPPRESSED', 'SUMMARY'],
    alerts.map((a) => [
      a.dedupKey.slice(0, 12),
      a.state,
      a.severity,
      a.labels.alertname ?? a.ruleId,
      a.state === 'firing' ? ago(a.firedAt, now) : a.state === 'pending' ? ago(a.activeSince, now) : '-',
      a.acknowledged ? (a.acknowledgedBy ?? 'yes') : '-',
      a.suppressed ?? '-',
      a.summary,
    ]),
  );
}

/** A full dedup key, or a unique prefix of one (as `nines alerts` shows 12 characters). */
async function resolveAlertId(c: Client, id: string): Promise<string> {
  if (/^[0-9a-f]{32}$/.test(id)) return id;
  const { alerts } = await c.get<{ alerts: StoredAlert[] }>('/v1/alerts?all=1');
  const hits = alerts.filter((a) => a.dedupKey.startsWith(id));
  if (hits.length === 1 && hits[0]) return hits[0].dedupKey;
  throw new NinesError(
    hits.length === 0 ? 'NINES_E_ALERT_NOT_FOUND' : 'NINES_E_VALIDATION',
    hits.length === 0 ? `no alert ${id}` : `"${id}" matches ${hits.length} alerts: give more characters`,
  );
}

export function registerAlertCommands<O>(program: Command, { action, client }: CliDeps<O>): void {
  const alerts = program.command('alerts').description('alerts: pending, firing, acknowledged, suppressed');
  alerts
    .command('list', { isDefault: true })
    .description('current alerts (pending and firing); --all adds resolved ones')
    .option('--all', 'include resolved and inactive alerts')
    .addHelpText('after', '\nExamples:\n  nines alerts\n  nines alerts --json')
    .action(
      action(async (out, o, opts: { all?: boolean }) => {
        const r = await (await client(o)).get<{ alerts: StoredAlert[] }>(
          `/v1/alerts${opts.all ? '?all=1' : ''}`,
        );
        out.result(r, renderAlerts(r.alerts));
        return EXIT.ok;
      }),
    );
  alerts
    .command('ack <id>')
    .description('acknowledge a firing alert: escalation stops (it still shows until it resolves)')
    .addHelpText('after', '\nExample:\n  nines alerts ack 3f2a9c01b4e7')
    .action(
      action(async (out, o, id: string) => {
        const c = await client(o);
        const key = await resolveAlertId(c, id);
        const r = await c.post<{ alert: StoredAlert }>(`/v1/alerts/${key}/ack`);
        out.result(r, `acknowledged ${key.slice(0, 12)} (${r.alert.summary})`);
        return EXIT.ok;
      }),
    );

  const silences = program
    .command('silences')
    .description('mute alerts matching label matchers until a time');
  silences
    .command('add <matchers...>')
    .description('mute matching alerts (matchers: name=value, name!=value, name=~regex, name!~regex)')
    .option('--for <duration>', 'how long (e.g. 30m, 2h, 1d)', '1h')
    .option('--comment <text>', 'why')
    .addHelpText(
      'after',
      '\nExample:\n  nines silences add service=web instance=~"web-.*" --for 2h --comment "disk swap"',
    )
    .action(
      action(async (out, o, matchers: string[], opts: { for: string; comment?: string }) => {
        const r = await (await client(o)).post<{ silence: { id: string; endsAt: number } }>('/v1/silences', {
          matchers,
          duration: opts.for,
          ...(opts.comment ? { comment: opts.comment } : {}),
        });
        out.result(r, `silence ${r.silence.id} until ${iso(r.silence.endsAt)} UTC`);
        return EXIT.ok;
      }),
    );
  silences
    .command('list', { isDefault: true })
    .description('active and future silences (deploys add their own)')
    .action(
      action(async (out, o) => {
        const r = await (await client(o)).get<{
          silences: {
            id: string;
            matchers: { name: string; op: string; value: string }[];
            startsAt: number;
            endsAt: number;
            createdBy: string;
            comment?: string;
          }[];
        }>('/v1/silences');
        out.result(
          r,
          r.silences.length === 0
            ? 'no silences'
            : table(
                ['ID', 'MATCHERS', 'STARTS', 'ENDS', 'BY', 'COMMENT'],
                r.silences.map((s) => [
                  s.id,
                  s.matchers.map((m) => `${m.name}${m.op}${JSON.stringify(m.value)}`).join(' '),
                  iso(s.startsAt),
                  iso(s.endsAt),
                  s.createdBy,
                  s.comment ?? '',
                ]),
              ),
        );
        return EXIT.ok;
      }),
    );
  silences
    .command('rm <id>')
    .description('end a silence now')
    .action(
      action(async (out, o, id: string) => {
        const r = await (await client(o)).delete<{ expired: string }>(
          `/v1/silences/${encodeURIComponent(id)}`,
        );
        out.result(r, `silence ${r.expired} ended`);
        return EXIT.ok;
      }),
    );

  program
    .command('oncall')
    .description('who is on call now for each schedule, the next handoff, and the escalation policies')
    .action(
      action(async (out, o) => {
        const r = await (await client(o)).get<{
          schedules: {
            schedule: string;
            onCall: string | null;
            nextHandoff: number | null;
            next: string | null;
          }[];
          policies: {
            policy: string;
            repeat: number;
            levels: { targets: string[]; escalateAfterMs: number }[];
          }[];
        }>('/v1/oncall');
        const lines = [
          r.schedules.length === 0
            ? 'no schedules'
            : table(
                ['SCHEDULE', 'ON CALL', 'NEXT HANDOFF (UTC)', 'NEXT'],
                r.schedules.map((s) => [
                  s.schedule,
                  s.onCall ?? '(nobody)',
                  iso(s.nextHandoff),
                  s.next ?? '-',
                ]),
              ),
        ];
        for (const p of r.policies)
          lines.push(
            '',
            `escalation ${p.policy} (repeat ${p.repeat}):`,
            ...p.levels.map(
              (l, i) =>
                `  ${i + 1}. ${l.targets.join(', ')} — then after ${Math.round(l.escalateAfterMs / 60_000)} min`,
            ),
          );
        out.result(r, lines.join('\n'));
        return EXIT.ok;
      }),
    );

  const channels = program.command('channels').description('notification channels of nines.yaml');
  channels
    .command('test <name>')
    .description('send a test notification through a channel now and show every attempt')
    .addHelpText('after', '\nExample:\n  nines channels test ops-slack')
    .action(
      action(async (out, o, name: string) => {
        const r = await (await client(o)).post<{
          result: { attempts: { n: number; status?: number; durationMs: number; error?: string }[] };
        }>(`/v1/channels/${encodeURIComponent(name)}/test`);
        out.result(
          r,
          `${name}: delivered\n${r.result.attempts.map((a) => `  attempt ${a.n}: ${a.status ?? a.error ?? '?'} in ${a.durationMs} ms`).join('\n')}`,
        );
        return EXIT.ok;
      }),
    );
}
