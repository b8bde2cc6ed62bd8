import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { NinesError } from '../core/errors.js';
import { EXIT, type Out } from './output.js';
import type { runHaproxyAdapter } from './planes.js';

/** The helpers of main.ts a command registered from another file needs. */
export interface CliKit {
  action<A extends unknown[]>(
    fn: (
      out: Out,
      o: { dataDir?: string; json?: boolean; url?: string; token?: string; caFile?: string },
      ...args: A
    ) => Promise<number | undefined>,
  ): (...args: unknown[]) => Promise<void>;
  nodeToken(opts: { token?: string; tokenFile?: string }): Promise<string>;
  untilSignal(out: Out, stop: () => Promise<void>): Promise<number>;
}

/** `--backend web=be_web` (repeatable) → { web: 'be_web' }; `--backend be_web` with `--service web`. */
export function parseBackends(list: string[], service: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const name = /^[A-Za-z0-9_.:-]+$/;
  for (const item of list) {
    const eq = item.indexOf('=');
    const svc = eq < 0 ? service : item.slice(0, eq);
    const be = eq < 0 ? item : item.slice(eq + 1);
    if (svc === undefined || svc === '') {
      throw new NinesError(
        'NINES_E_VALIDATION',
        `--backend ${item}: say which service (SERVICE=BACKEND, or --service)`,
      );
    }
    if (!name.test(be))
      throw new NinesError('NINES_E_VALIDATION', `--backend ${item}: not a valid HAProxy backend name`);
    if (out[svc] !== undefined)
      throw new NinesError('NINES_E_VALIDATION', `--backend: service ${svc} given twice`);
    out[svc] = be;
  }
  if (Object.keys(out).length === 0) {
    throw new NinesError('NINES_E_VALIDATION', 'give at least one --backend SERVICE=BACKEND');
  }
  return out;
}

export function registerHaproxyCommand(program: Command, kit: CliKit): void {
  program
    .command('haproxy-adapter')
    .description("drive an external HAProxy (Runtime API) from the controller's routing snapshots")
    .requiredOption('--controller <url>', 'controller API URL')
    .option('--token <token>', 'node token (or NINES_NODE_TOKEN)', process.env.NINES_NODE_TOKEN)
    .option('--token-file <file>', 'file holding the node token')
    .requiredOption('--socket <path>', 'HAProxy stats socket with `level admin` (unix path or host:port)')
    .option(
      '--backend <service=backend>',
      'route a nines service through an HAProxy backend (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--service <name>', 'the service of a --backend given without SERVICE=')
    .option('--prefix <prefix>', 'names of the servers the adapter adds and owns start with this', 'nines-')
    .option('--check', "add servers with HAProxy health checks (the backend's `option httpchk`)", false)
    .option('--id <id>', 'proxy id reported to the controller (default: <hostname>-haproxy)')
    .option('--log-level <level>', 'log level of <data-dir>/logs/nines.log', 'info')
    .addHelpText(
      'after',
      '\nExample:\n  nines haproxy-adapter --controller http://10.0.0.1:7070 --token-file node-token \\\n' +
        '    --socket /run/haproxy/admin.sock --backend web=be_web',
    )
    .action(
      kit.action(
        async (
          out,
          o,
          opts: {
            controller: string;
            token?: string;
            tokenFile?: string;
            socket: string;
            backend: string[];
            service?: string;
            prefix: string;
            check: boolean;
            id?: string;
            logLevel: string;
          },
        ) => {
          const backends = parseBackends(opts.backend, opts.service);
          if (!/^[A-Za-z0-9_.:-]+$/.test(opts.prefix)) {
            throw new NinesError('NINES_E_VALIDATION', '--prefix may hold only letters, digits and _ . : -');
          }
          const dataDir = resolve(o.dataDir ?? '.nines');
          const { fileLogger, runHaproxyAdapter } = await import('./planes.js');
          const { logger } = await fileLogger(dataDir, opts.logLevel);
          const proxyId = opts.id ?? `${hostname()}-haproxy`;
          let running: Awaited<ReturnType<typeof runHaproxyAdapter>>;
          try {
            running = await runHaproxyAdapter({
              controllerUrl: opts.controller,
              token: await kit.nodeToken(opts),
              socket: opts.socket,
              backends,
              prefix: opts.prefix,
              check: opts.check,
              proxyId,
              logger,
              ...(o.caFile ? { ca: await readFile(o.caFile, 'utf8') } : {}),
            });
          } catch (err) {
            if (err instanceof NinesError) throw err;
            throw new NinesError('NINES_E_HAPROXY_UNREACHABLE', (err as Error).message);
          }
          const list = Object.entries(backends)
            .map(([s, b]) => `${s}→${b}`)
            .join(', ');
          out.line(
            `haproxy adapter ${proxyId}: ${opts.socket} (${list}) for ${opts.controller} (pid ${process.pid})`,
          );
          out.line(`ready: ${opts.socket}`);
          const code = await kit.untilSignal(out, async () => {
            await running.stop();
            logger.flush();
          });
          return code ?? EXIT.ok;
        },
      ),
    );
}
