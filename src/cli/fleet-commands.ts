import type { Command } from 'commander';
import type { ZoneCapacity } from '../controller/capacity.js';
import type { HostView, PatchJob } from '../controller/hostops.js';
import { NinesError } from '../core/errors.js';
import type { Client } from './client.js';
import { EXIT, type Out, table } from './output.js';

interface Common {
  json?: boolean;
  url?: string;
  token?: string;
  dataDir?: string;
}

type Action = <A extends unknown[]>(
  fn: (out: Out, o: Common, ...args: A) => Promise<number | undefined>,
) => (...args: unknown[]) => Promise<void>;

/**
 * Fleet operations: host cordon/uncordon/drain/patch, zones, capacity. Registered by main.ts on its
 * command tree, with its action wrapper (error codes → exit codes) and API client.
 */
export function registerFleetCommands(
  program: Command,
  hosts: Command,
  h: { action: Action; client: (o: Common) => Promise<Client> },
): void {
  const { action, client } = h;
  const path = (host: string, verb: string) => `/v1/hosts/${encodeURIComponent(host)}/${verb}`;

  hosts
    .command('states')
    .description('every host with its scheduling state (ready, cordoned, draining, down) and instances')
    .action(
      action(async (out, o) => {
        const r = await (await client(o)).get<{ hosts: HostView[]; evacuatedZones: string[] }>(
          '/v1/fleet/hosts',
        );
        out.result(r, renderHosts(r.hosts, r.evacuatedZones));
        return EXIT.ok;
      }),
    );

  hosts
    .command('cordon <host>')
    .description('stop placing new instances on a host; what runs there keeps running')
    .addHelpText('after', '\nExample:\n  nines hosts cordon web-3')
    .action(
      action(async (out, o, host: string) => {
        const r = await (await client(o)).post<{ host: { name: string } }>(path(host, 'cordon'));
        out.result(r, `host ${r.host.name} cordoned: it takes no new instances`);
        return EXIT.ok;
      }),
    );

  hosts
    .command('uncordon <host>')
    .description('let a cordoned or drained host take instances again')
    .action(
      action(async (out, o, host: string) => {
        const r = await (await client(o)).post<{ host: { name: string } }>(path(host, 'uncordon'));
        out.result(r, `host ${r.host.name} uncordoned: it takes instances again`);
        return EXIT.ok;
      }),
    );

  hosts
    .command('drain <host>')
    .description(
      'move every instance off a host (a replacement serves before each is drained), then keep it cordoned',
    )
    .option('--timeout <seconds>', 'wait at most this long for the drain', '600')
    .option('--no-wait', 'return once the drain has started')
    .addHelpText(
      'after',
      '\nRefused (NINES_E_DISRUPTION_BUDGET, nothing changed) when the other hosts cannot take the\ninstances and a service would fall below its placement.minAvailable.\n\nExample:\n  nines hosts drain web-3 && ssh web-3 sudo reboot',
    )
    .action(
      action(async (out, o, host: string, opts: { timeout: string; wait: boolean }) => {
        const wait = opts.wait ? Number(opts.timeout) : 0;
        if (!Number.isFinite(wait) || wait < 0)
          throw new NinesError('NINES_E_VALIDATION', '--timeout: seconds ≥ 0');
        out.line(`draining ${host}…`);
        const r = await (await client(o)).post<{ host: HostView }>(path(host, 'drain'), { wait });
        out.result(
          r,
          opts.wait
            ? `host ${r.host.name} drained: ${r.host.instances} instance(s) left, ${r.host.admin}`
            : `host ${r.host.name} is draining`,
        );
        return EXIT.ok;
      }),
    );

  hosts
    .command('patch')
    .description(
      'rolling host maintenance: drain a host, run a command on it through its agent, wait until it is healthy, uncordon, next',
    )
    .requiredOption('--command <cmd>', 'shell command run on each host (sh -c, as the agent user)')
    .option('--max-unavailable <n>', 'hosts patched at once', '1')
    .option('--zone <zone>', 'only the hosts of this zone')
    .option('--command-timeout <duration>', 'per host', '10m')
    .option(
      '--restart-agent',
      'after the command, restart the host agent (e.g. nines was upgraded) and wait for the new one',
    )
    .addHelpText(
      'after',
      "\nStops at the first failure and names the host (NINES_E_HOST_TASK_FAILED); that host stays cordoned.\n\nExample:\n  nines hosts patch --command 'apt-get -y upgrade' --max-unavailable 1 --zone eu-1a",
    )
    .action(
      action(
        async (
          out,
          o,
          opts: {
            command: string;
            maxUnavailable: string;
            zone?: string;
            commandTimeout: string;
            restartAgent?: boolean;
          },
        ) => {
          const c = await client(o);
          const n = Number(opts.maxUnavailable);
          if (!Number.isInteger(n) || n < 1) {
            throw new NinesError('NINES_E_VALIDATION', '--max-unavailable must be a whole number ≥ 1');
          }
          let { patch } = await c.post<{ patch: PatchJob }>('/v1/hosts/patch', {
            command: opts.command,
            maxUnavailable: n,
            commandTimeout: opts.commandTimeout,
            ...(opts.restartAgent ? { restartAgent: true } : {}),
            ...(opts.zone ? { zone: opts.zone } : {}),
          });
          out.line(`patch ${patch.id}: ${patch.hosts.length} host(s), ${n} at a time`);
          const seen = new Map<string, string>();
          for (;;) {
            for (const s of patch.hosts) {
              if (seen.get(s.host) === s.step) continue;
              seen.set(s.host, s.step);
              if (s.step !== 'waiting')
                out.line(`  ${s.host.padEnd(20)} ${s.step}${s.error ? `: ${s.error}` : ''}`);
            }
            if (patch.state !== 'running') break;
            patch = (await c.get<{ patch: PatchJob }>(`/v1/patches/${encodeURIComponent(patch.id)}?wait=20`))
              .patch;
          }
          if (patch.state === 'failed') {
            if (o.json) out.result({ patch }, '');
            throw new NinesError(
              'NINES_E_HOST_TASK_FAILED',
              `patch stopped at host ${patch.failedHost}: ${patch.error}`,
            );
          }
          out.result({ patch }, `done: patched ${patch.hosts.length} host(s)`);
          return EXIT.ok;
        },
      ),
    );

  const zones = program.command('zones').description('zones of the fleet: list, evacuate, restore');
  zones
    .command('list', { isDefault: true })
    .description('every zone: hosts up, instances, evacuated')
    .action(
      action(async (out, o) => {
        const r = await (await client(o)).get<{
          zones: Array<{ zone: string; evacuated: boolean; hosts: number; up: number; instances: number }>;
        }>('/v1/zones');
        out.result(
          r,
          table(
            ['ZONE', 'HOSTS UP', 'INSTANCES', 'STATE'],
            r.zones.map((z) => [
              z.zone,
              `${z.up}/${z.hosts}`,
              String(z.instances),
              z.evacuated ? 'evacuated' : 'in service',
            ]),
          ),
        );
        return EXIT.ok;
      }),
    );
  zones
    .command('evacuate <zone>')
    .description('move everything out of a (degraded) zone and keep it out until `nines zones restore`')
    .addHelpText('after', '\nExample:\n  nines zones evacuate eu-1b')
    .action(
      action(async (out, o, zone: string) => {
        const r = await (await client(o)).post<{ zone: string; capacity?: ZoneCapacity }>(
          `/v1/zones/${encodeURIComponent(zone)}/evacuate`,
        );
        const warn =
          r.capacity && !r.capacity.survivable
            ? `\nwarning: the other zones lack room: ${r.capacity.shortfall.map((s) => `${s.service} ${s.missing} short`).join(', ')}`
            : '';
        out.result(r, `zone ${zone} evacuating: its instances move to the other zones${warn}`);
        return EXIT.ok;
      }),
    );
  zones
    .command('restore <zone>')
    .description('let an evacuated zone take instances again')
    .action(
      action(async (out, o, zone: string) => {
        const r = await (await client(o)).post<{ zone: string }>(
          `/v1/zones/${encodeURIComponent(zone)}/restore`,
        );
        out.result(r, `zone ${zone} restored: it takes new instances again`);
        return EXIT.ok;
      }),
    );

  program
    .command('capacity')
    .description('N+1 check: for each zone, can the other zones carry its instances if it is lost')
    .addHelpText(
      'after',
      '\nExits 1 when some zone cannot be carried.\n\nExample:\n  nines capacity --json | jq ".zones[] | select(.survivable | not)"',
    )
    .action(
      action(async (out, o) => {
        const r = await (await client(o)).get<{ zones: ZoneCapacity[]; ok: boolean }>('/v1/capacity');
        out.result(
          r,
          table(
            ['ZONE', 'HOSTS', 'INSTANCES', 'FREE SLOTS', 'IF LOST', 'MISSING'],
            r.zones.map((z) => [
              z.zone,
              String(z.hosts),
              String(z.instances),
              z.freeSlots === null ? 'unlimited' : String(z.freeSlots),
              z.survivable ? 'carried' : 'NOT carried',
              z.shortfall.map((s) => `${s.service}: ${s.missing} (${s.reason})`).join('; '),
            ]),
          ),
        );
        return r.ok ? EXIT.ok : EXIT.failed;
      }),
    );
}

export function renderHosts(hosts: readonly HostView[], evacuated: readonly string[]): string {
  return table(
    ['HOST', 'ZONE', 'STATE', 'INSTANCES', 'SLOTS', 'LAST SEEN'],
    hosts.map((x) => [
      x.name,
      x.zone + (evacuated.includes(x.zone) ? ' (evacuated)' : ''),
      x.state,
      String(x.instances),
      x.slots === null ? '-' : String(x.slots),
      new Date(x.lastSeenAt).toISOString().replace('T', ' ').slice(0, 19),
    ]),
  );
}
