import type { Command } from 'commander';
import type { ProxyCredentialView } from '../controller/proxies.js';
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

/** `nines proxies` and `nines proxies revoke NAME`: proxies with their own credentials. */
export function registerProxiesCommands(
  program: Command,
  deps: { action: Action; client: (o: Common) => Promise<Client> },
): void {
  const { action, client } = deps;
  const proxies = program
    .command('proxies')
    .description('proxies that joined with a join token: name, up, applied snapshot, revoked')
    .action(
      action(async (out, o) => {
        const r = await (await client(o)).get<{ proxies: ProxyCredentialView[] }>('/v1/proxies');
        const iso = (t: number | null) =>
          t ? new Date(t).toISOString().replace('T', ' ').slice(0, 19) : '-';
        out.result(
          r,
          r.proxies.length === 0
            ? 'no proxy has joined with a join token (proxies on the node token are not listed)'
            : table(
                ['NAME', 'UP', 'SNAPSHOT', 'JOINED', 'REVOKED'],
                r.proxies.map((p) => [
                  p.name,
                  p.up ? 'yes' : 'no',
                  p.appliedVersion === null ? '-' : String(p.appliedVersion),
                  iso(p.createdAt),
                  iso(p.revokedAt),
                ]),
              ),
        );
        return EXIT.ok;
      }),
    );
  proxies
    .command('revoke <name>')
    .description('cut a proxy off: its credential stops working at once and deploys stop waiting for it')
    .action(
      action(async (out, o, name: string) => {
        const r = await (await client(o)).post<{ name: string }>(
          `/v1/proxies/${encodeURIComponent(name)}/revoke`,
        );
        out.result(r, `revoked proxy ${r.name} (it keeps serving its last snapshot until you stop it)`);
        return EXIT.ok;
      }),
    );
}
