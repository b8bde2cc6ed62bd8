import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { SecretView } from '../controller/secrets/index.js';
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

/** Reads all of stdin (a secret piped in stays out of the shell history and `ps`). */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new NinesError(
      'NINES_E_VALIDATION',
      'give the value as an argument, with --from-file, or on stdin',
    );
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const value = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  // An empty stdin is a script that forgot to pipe the value, not a wish for an empty secret.
  if (value === '')
    throw new NinesError('NINES_E_VALIDATION', 'no value on stdin (pass "" to set an empty one)');
  return value;
}

const path = (service: string, name?: string) =>
  `/v1/services/${encodeURIComponent(service)}/secrets${name ? `/${encodeURIComponent(name)}` : ''}`;

/**
 * `nines secrets set|list|rm|rotate-key` and `nines vars set|list|rm`: the same store, secrets sealed
 * and never shown again, variables plain.
 */
export function registerSecretsCommands(
  program: Command,
  deps: { action: Action; client: (o: Common) => Promise<Client> },
): void {
  const { action, client } = deps;
  for (const kind of ['secret', 'var'] as const) {
    const group =
      kind === 'secret'
        ? program
            .command('secrets')
            .description(
              'secrets per service and environment: stored sealed, shown never, given only to its hosts',
            )
        : program.command('vars').description('environment variables per service and environment');
    group
      .command('set <service> <name> [value]')
      .description(
        kind === 'secret'
          ? 'set a secret (value from the argument, --from-file, or stdin); applies at each instance’s next start'
          : 'set an environment variable; applies at each instance’s next start',
      )
      .option('--env <environment>', "environment (default: the controller's)")
      .option('--from-file <file>', 'read the value from a file')
      .addHelpText(
        'after',
        kind === 'secret'
          ? '\nExample:\n  printf %s "$DB_PASSWORD" | nines secrets set api DB_PASSWORD --env production'
          : '\nExample:\n  nines vars set api LOG_LEVEL debug',
      )
      .action(
        action(
          async (
            out,
            o,
            service: string,
            name: string,
            value: string | undefined,
            opts: { env?: string; fromFile?: string },
          ) => {
            const v = value ?? (opts.fromFile ? await readFile(opts.fromFile, 'utf8') : await readStdin());
            const r = await (await client(o)).put<{ secret: SecretView }>(path(service, name), {
              value: v,
              kind,
              ...(opts.env ? { env: opts.env } : {}),
            });
            const s = r.secret;
            out.result(
              r,
              `${kind === 'secret' ? 'secret' : 'variable'} ${s.name} of ${s.service} (${s.environment}) is at version ${s.version}; instances get it at their next start`,
            );
            return EXIT.ok;
          },
        ),
      );
    group
      .command('list <service>')
      .description(kind === 'secret' ? 'names and versions (never values)' : 'names, versions and values')
      .option('--env <environment>', "environment (default: the controller's)")
      .action(
        action(async (out, o, service: string, opts: { env?: string }) => {
          const q = opts.env ? `?env=${encodeURIComponent(opts.env)}` : '';
          const r = await (await client(o)).get<{ environment: string; secrets: SecretView[] }>(
            `${path(service)}${q}`,
          );
          const rows = r.secrets.filter((s) => s.kind === kind);
          const iso = (t: number) => new Date(t).toISOString().replace('T', ' ').slice(0, 19);
          out.result(
            { environment: r.environment, [kind === 'secret' ? 'secrets' : 'vars']: rows },
            rows.length === 0
              ? `no ${kind === 'secret' ? 'secrets' : 'variables'} for ${service} in ${r.environment}`
              : table(
                  kind === 'secret'
                    ? ['NAME', 'VERSION', 'UPDATED', 'BY']
                    : ['NAME', 'VALUE', 'VERSION', 'UPDATED', 'BY'],
                  rows.map((s) =>
                    kind === 'secret'
                      ? [s.name, String(s.version), iso(s.updatedAt), s.updatedBy]
                      : [s.name, s.value ?? '', String(s.version), iso(s.updatedAt), s.updatedBy],
                  ),
                ),
          );
          return EXIT.ok;
        }),
      );
    group
      .command('rm <service> <name>')
      .description(
        `remove a ${kind === 'secret' ? 'secret' : 'variable'}; applies at each instance’s next start`,
      )
      .option('--env <environment>', "environment (default: the controller's)")
      .action(
        action(async (out, o, service: string, name: string, opts: { env?: string }) => {
          const q = opts.env ? `?env=${encodeURIComponent(opts.env)}` : '';
          const r = await (await client(o)).delete<{ environment: string }>(`${path(service, name)}${q}`);
          out.result(r, `removed ${name} of ${service} (${r.environment})`);
          return EXIT.ok;
        }),
      );
    if (kind === 'secret') {
      group
        .command('rotate-key')
        .description(
          'seal every secret with a new key (<data-dir>/secrets.key; the old one is kept as .prev)',
        )
        .action(
          action(async (out, o) => {
            const r = await (await client(o)).post<{ keyId: string; resealed: number }>(
              '/v1/secrets/rotate-key',
            );
            out.result(r, `secrets key is now ${r.keyId}; ${r.resealed} secrets re-sealed`);
            return EXIT.ok;
          }),
        );
    }
  }
}
