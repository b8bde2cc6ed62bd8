#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import type { StatusView } from '../controller/status.js';
import type { DeployRecord, EventRecord, ServiceRecord } from '../controller/store/types.js';
import {
  type ArtifactSource,
  latestBackup,
  pruneBackups,
  readBackupKey,
  type StateSnapshot,
  writeBackup,
} from '../core/backup-file.js';
import { duration } from '../core/config.js';
import { renderPlan } from '../core/config-diff.js';
import { configJsonSchemaText } from '../core/config-schema.js';
import { NinesError } from '../core/errors.js';
import { EXIT_AGENT_RESTART } from '../core/tasks-protocol.js';

// The planes (controller, agent, proxy: Fastify, Kysely, SQLite, pg, the S3 SDK…) load only for the
// commands that run them: `nines status` and friends start in a fraction of the time.
const planes = () => import('./planes.js');
const backupS3 = () => import('../core/backup-s3.js');

import { readProxyCredentials, registerProxy } from '../proxy/credentials.js';
import { alertingChanges, applyAlerting, registerAlertCommands, renderAlertingDrift } from './alerts.js';
import { applyPlan, livePlan, loadForPlan, REMOVE_NOTE, renderDrift } from './apply.js';
import { addCheckCommands, applyChecks } from './checks.js';
import { ApiError, Client, resolveTarget } from './client.js';
import { deployResultLine, followDeploy, release, renderDeploys, renderStatus } from './commands.js';
import { completionScript } from './completion.js';
import { applyDrillSchedules, registerDrillCommands } from './drill.js';
import { addS3Options, addTlsOptions, s3Options, tlsFiles } from './flags.js';
import { registerFleetCommands } from './fleet-commands.js';
import { registerHaproxyCommand } from './haproxy.js';
import { EXIT, makeOut, type Out, table } from './output.js';
import type { restoreBackup } from './planes.js';
import { registerProxiesCommands } from './proxies.js';
import { registerSecretsCommands } from './secrets.js';

interface Common {
  json?: boolean;
  url?: string;
  token?: string;
  dataDir?: string;
  caFile?: string;
}

const program = new Command('nines')
  .description('Keep web services up while they are deployed, patched, scaled and broken.')
  .showHelpAfterError()
  .addOption(
    new Option('--url <url>', 'controller API URL (several, comma-separated: fail over)').env('NINES_URL'),
  )
  .addOption(new Option('--token <token>', 'API token').env('NINES_TOKEN'))
  .addOption(
    new Option('--data-dir <dir>', 'data directory of a local `nines up`')
      .env('NINES_DATA_DIR')
      .default('.nines'),
  )
  .addOption(
    new Option('--ca-file <file>', 'PEM CA bundle for an https controller signed by a private CA').env(
      'NINES_CA_FILE',
    ),
  )
  .option('--json', 'machine-readable output');

function common(cmd: Command): Common {
  return cmd.optsWithGlobals() as Common;
}

async function client(o: Common): Promise<Client> {
  return new Client(await resolveTarget(o));
}

/** Run an action, mapping failures to one stable error line and an exit code scripts can rely on. */
function action<A extends unknown[]>(fn: (out: Out, o: Common, ...args: A) => Promise<number | undefined>) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const o = common(cmd);
    const out = makeOut(o.json === true);
    try {
      process.exitCode = (await fn(out, o, ...(args.slice(0, -1) as A))) ?? EXIT.ok;
    } catch (err) {
      if (err instanceof ApiError) {
        out.error(err.code, err.message);
        process.exitCode = err.status === 0 ? EXIT.unreachable : EXIT.refused;
      } else if (err instanceof NinesError) {
        out.error(err.code, err.message);
        process.exitCode = err.code === 'NINES_E_TIMEOUT' ? EXIT.timeout : EXIT.refused;
      } else {
        out.error('NINES_E_INTERNAL', (err as Error).message);
        process.exitCode = EXIT.failed;
      }
    }
  };
}

program
  .command('up')
  .description('run controller, agent and proxy in one process and deploy what nines.yaml declares')
  .option('-c, --config <file>', 'config file (default: ./nines.yaml if present)')
  .option('--host <addr>', 'address to bind', '127.0.0.1')
  .option('--api-port <port>', 'controller API port (0: any free port)', '7070')
  .option('--proxy-port <port>', 'proxy port (0: any free port)', '8080')
  .option('--log-level <level>', 'log level of <data-dir>/logs/nines.log', 'info')
  .addHelpText('after', '\nExample:\n  nines up --config nines.yaml --proxy-port 8080')
  .action(
    action(
      async (
        out,
        o,
        cmdOpts: { config?: string; host: string; apiPort: string; proxyPort: string; logLevel: string },
      ) => {
        const { up } = await import('./up.js');
        const running = await up(
          {
            ...(cmdOpts.config ? { config: cmdOpts.config } : {}),
            dataDir: o.dataDir ?? '.nines',
            host: cmdOpts.host,
            apiPort: Number(cmdOpts.apiPort),
            proxyPort: Number(cmdOpts.proxyPort),
            logLevel: cmdOpts.logLevel,
          },
          out,
        );
        await new Promise<void>((resolve) => {
          const onSignal = (sig: string) => {
            out.line(`${sig}: stopping instances, proxy and controller…`);
            running.stop().then(resolve, (err) => {
              out.error('NINES_E_INTERNAL', `shutdown: ${(err as Error).message}`);
              resolve();
            });
          };
          process.once('SIGINT', onSignal);
          process.once('SIGTERM', onSignal);
        });
        out.line('stopped');
        return EXIT.ok;
      },
    ),
  );

/** Keep a long-running command alive until SIGINT/SIGTERM, then stop it. */
async function untilSignal(out: Out, stop: () => Promise<void>): Promise<number> {
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      out.line(`${sig}: stopping…`);
      stop().then(resolve, (err) => {
        out.error('NINES_E_INTERNAL', `shutdown: ${(err as Error).message}`);
        resolve();
      });
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  out.line('stopped');
  return EXIT.ok;
}

async function nodeToken(opts: { token?: string; tokenFile?: string }): Promise<string> {
  const token = opts.token ?? (opts.tokenFile ? (await readFile(opts.tokenFile, 'utf8')).trim() : undefined);
  if (!token)
    throw new NinesError(
      'NINES_E_VALIDATION',
      'give the node token with --token, --token-file or NINES_NODE_TOKEN',
    );
  return token;
}

const controllerCommand = program
  .command('controller')
  .description('run the controller alone (API + store + deploy engine + reconciler)')
  .option('--host <addr>', 'address to bind', '127.0.0.1')
  .option('--port <port>', 'API port (0: any free port)', '7070')
  .option('--log-level <level>', 'log level of <data-dir>/logs/nines.log', 'info')
  .option('--host-down-after <ms>', 'a host silent this long is down; its instances move elsewhere', '15000')
  .option('--environment <name>', 'environment whose secrets and variables instances get', 'production')
  .addOption(
    new Option(
      '--database-url <url>',
      'PostgreSQL URL shared by several controllers (default: embedded SQLite in the data dir)',
    ).env('NINES_DATABASE_URL'),
  )
  .option('--database-schema <name>', 'PostgreSQL schema to keep the tables in')
  .option('--lease-timeout <duration>', 'HA: a leader silent this long is replaced (e.g. 10s)', '10s')
  .option('--advertise-url <url>', 'HA: the URL other controllers and clients reach this one at')
  .option('--backup-dir <dir>', 'scheduled backups: write them here (the leader does)')
  .option('--backup-key-file <file>', 'scheduled backups: the encryption key file')
  .option('--backup-every <duration>', 'scheduled backups: interval', '1h')
  .option('--backup-keep <n>', 'scheduled backups: how many to keep', '24')
  .option('--backup-artifacts', 'scheduled backups: include release artifacts')
  .addHelpText(
    'after',
    '\nExamples:\n  nines controller --data-dir /var/lib/nines --host 0.0.0.0\n' +
      '  nines controller --database-url postgres://nines@db/nines --host 0.0.0.0 --advertise-url http://10.0.0.1:7070',
  )
  .action(
    action(async (out, o, opts: ControllerFlags) => {
      const dataDir = resolve(o.dataDir ?? '.nines');
      const s3 = s3Options(opts);
      const tls = await tlsFiles(opts);
      const { fileLogger, runController } = await planes();
      const { logger } = await fileLogger(dataDir, opts.logLevel);
      const hostDownAfterMs = Number(opts.hostDownAfter);
      if (!Number.isInteger(hostDownAfterMs) || hostDownAfterMs < 1000) {
        throw new NinesError('NINES_E_VALIDATION', '--host-down-after: milliseconds ≥ 1000');
      }
      const ctl = await runController({
        dataDir,
        host: opts.host,
        port: Number(opts.port),
        logger,
        hostDownAfterMs,
        environment: opts.environment,
        ...(s3 ? { s3 } : {}),
        ...(tls ? { tls } : {}),
        leaseTimeoutMs: parseLeaseTimeout(opts.leaseTimeout),
        ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
        ...(opts.databaseSchema ? { databaseSchema: opts.databaseSchema } : {}),
        ...(opts.advertiseUrl ? { advertiseUrl: opts.advertiseUrl } : {}),
        ...(opts.backupDir ? { backups: await backupSchedule(opts) } : {}),
      });
      const info = {
        pid: process.pid,
        apiUrl: ctl.controller.url,
        adminTokenFile: ctl.controller.adminTokenFile,
        nodeTokenFile: join(dataDir, 'node-token'),
      };
      await writeFile(join(dataDir, 'controller.json'), `${JSON.stringify(info, null, 2)}\n`, {
        mode: 0o600,
      });
      out.line(`controller ${ctl.controller.url} (pid ${process.pid})`);
      out.line(`  admin token ${info.adminTokenFile}, node token ${info.nodeTokenFile}`);
      out.line(`ready: ${ctl.controller.url}`);
      return untilSignal(out, async () => {
        await rm(join(dataDir, 'controller.json'), { force: true });
        await ctl.stop();
        logger.flush();
      });
    }),
  );

addS3Options(controllerCommand);
addTlsOptions(controllerCommand);

interface ControllerFlags {
  host: string;
  hostDownAfter: string;
  port: string;
  logLevel: string;
  environment: string;
  s3Bucket?: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3Prefix?: string;
  tlsCert?: string;
  tlsKey?: string;
  databaseUrl?: string;
  databaseSchema?: string;
  leaseTimeout: string;
  advertiseUrl?: string;
  backupDir?: string;
  backupKeyFile?: string;
  backupEvery: string;
  backupKeep: string;
  backupArtifacts?: boolean;
}

program
  .command('agent')
  .description("run the host agent: start, probe, restart and stop this host's instances")
  .requiredOption('--controller <url>', 'controller API URL (several, comma-separated: fail over)')
  .addOption(
    new Option(
      '--join-token <token>',
      "join token (nines join-token create); used once, to get this host's key",
    ).env('NINES_JOIN_TOKEN'),
  )
  .addOption(new Option('--token <token>', 'node token (instead of a join token)').env('NINES_NODE_TOKEN'))
  .option('--token-file <file>', 'file holding the join or node token')
  .option('--name <name>', "host name (default: the machine's)")
  .option('--zone <zone>', 'zone of this host', 'default')
  .option('--label <k=v...>', 'host label, repeatable', [])
  .option('--address <addr>', "address the proxies reach this host's instances on", '127.0.0.1')
  .option('--metrics-listen <host:port>', 'serve node_exporter-compatible /metrics here (no token)')
  .option('--slots <n>', 'instance slots this host offers (sets the label slots=N; default: no limit)')
  .option('--log-level <level>', 'log level of <data-dir>/logs/nines.log', 'info')
  .addHelpText(
    'after',
    '\nExample:\n  nines agent --controller http://10.0.0.1:7070 --token-file node-token --zone a --label disk=ssd',
  )
  .action(
    action(
      async (
        out,
        o,
        opts: {
          controller: string;
          joinToken?: string;
          token?: string;
          tokenFile?: string;
          name?: string;
          zone: string;
          label: string[];
          address: string;
          metricsListen?: string;
          logLevel: string;
          slots?: string;
        },
      ) => {
        const metricsListen = opts.metricsListen ? parseListen(opts.metricsListen) : undefined;
        const labels: Record<string, string> = {};
        for (const kv of opts.label) {
          const i = kv.indexOf('=');
          if (i <= 0) throw new NinesError('NINES_E_VALIDATION', `--label ${kv}: use key=value`);
          labels[kv.slice(0, i)] = kv.slice(i + 1);
        }
        if (opts.slots !== undefined) {
          if (!/^\d{1,6}$/.test(opts.slots))
            throw new NinesError('NINES_E_VALIDATION', '--slots: a whole number');
          labels.slots = opts.slots;
        }
        const dataDir = resolve(o.dataDir ?? '.nines');
        const { fileLogger, runAgent } = await planes();
        const { logger } = await fileLogger(dataDir, opts.logLevel);
        // `nines hosts patch --restart-agent`: leave like on SIGTERM, then exit EXIT_AGENT_RESTART so
        // that the service manager starts the new version, which adopts the instances.
        let restart = false;
        const agent = await runAgent({
          onRestartRequested: () => {
            restart = true;
            process.kill(process.pid, 'SIGTERM');
          },
          controllerUrl: opts.controller,
          token: opts.joinToken ?? (await nodeToken(opts)),
          dataDir,
          ...(opts.name ? { name: opts.name } : {}),
          zone: opts.zone,
          labels,
          address: opts.address,
          logger,
          ...(metricsListen ? { metricsListen } : {}),
          ...(o.caFile ? { ca: await readFile(o.caFile, 'utf8') } : {}),
        });
        out.line(`agent for ${opts.controller}, zone ${opts.zone} (pid ${process.pid})`);
        if (agent.agent.metricsPort !== undefined) {
          out.line(`metrics: http://${metricsListen?.host}:${agent.agent.metricsPort}/metrics`);
        }
        out.line(
          `ready: agent ${agent.agent.hostId ?? '(not registered yet: the controller is unreachable)'}`,
        );
        // SIGTERM stops the agent but leaves its instances serving (a restarted agent adopts them);
        // stopping the instances is the controller's decision, not a side effect of an agent restart.
        const code = await untilSignal(out, async () => {
          await agent.leave();
          logger.flush();
        });
        if (restart) out.line(`restarting: exit ${EXIT_AGENT_RESTART} for the service manager`);
        return restart ? EXIT_AGENT_RESTART : code;
      },
    ),
  );

program
  .command('proxy')
  .description("run the proxy: route traffic to healthy instances, from the controller's snapshots")
  .requiredOption('--controller <url>', 'controller API URL (several, comma-separated: fail over)')
  .addOption(
    new Option(
      '--join-token <token>',
      "join token (nines join-token create); used once, to get this proxy's own credential",
    ).env('NINES_PROXY_JOIN_TOKEN'),
  )
  .addOption(new Option('--token <token>', 'node token (instead of a join token)').env('NINES_NODE_TOKEN'))
  .option('--token-file <file>', 'file holding the node token')
  .option('--host <addr>', 'address to bind', '127.0.0.1')
  .option('--port <port>', 'port (0: any free port)', '8080')
  .option('--id <id>', 'proxy id (default: <hostname>-proxy)')
  .option(
    '--workers <n>',
    'processes sharing the listener (node:cluster); SIGHUP hands over to new ones',
    '1',
  )
  .option(
    '--connect-timeout <ms>',
    'give up connecting to an instance after this long and retry on another (single process)',
    '1000',
  )
  .option('--log-level <level>', 'log level of <data-dir>/logs/nines.log', 'info')
  .addHelpText(
    'after',
    '\nExample:\n  nines proxy --controller http://10.0.0.1:7070 --token-file node-token --port 80',
  )
  .action(
    action(
      async (
        out,
        o,
        opts: {
          controller: string;
          token?: string;
          tokenFile?: string;
          host: string;
          port: string;
          id?: string;
          logLevel: string;
          workers: string;
          joinToken?: string;
          connectTimeout: string;
        },
      ) => {
        const dataDir = resolve(o.dataDir ?? '.nines');
        const connectTimeoutMs = Number(opts.connectTimeout);
        if (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs < 10) {
          throw new NinesError('NINES_E_VALIDATION', '--connect-timeout: milliseconds ≥ 10');
        }
        const proxyToken = await proxyCredential(dataDir, o, opts);
        const workers = Number(opts.workers);
        if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
          throw new NinesError('NINES_E_VALIDATION', '--workers must be a whole number from 1 to 64');
        }
        if (workers > 1) {
          return runProxyCluster(out, {
            dataDir,
            workers,
            controller: opts.controller,
            token: proxyToken,
            host: opts.host,
            port: Number(opts.port),
            proxyId: opts.id ?? `${hostname()}-proxy`,
            logLevel: opts.logLevel,
            ...(o.caFile ? { caFile: resolve(o.caFile) } : {}),
          });
        }
        const { fileLogger, runProxy } = await planes();
        const { logger } = await fileLogger(dataDir, opts.logLevel);
        const proxy = await runProxy({
          controllerUrl: opts.controller,
          token: proxyToken,
          dataDir,
          host: opts.host,
          port: Number(opts.port),
          logger,
          ...(opts.id ? { proxyId: opts.id } : {}),
          ...(o.caFile ? { ca: await readFile(o.caFile, 'utf8') } : {}),
          connectTimeoutMs,
        });
        out.line(`proxy http://${opts.host}:${proxy.port} for ${opts.controller} (pid ${process.pid})`);
        out.line(`ready: http://${opts.host}:${proxy.port}`);
        return untilSignal(out, async () => {
          await proxy.stop();
          logger.flush();
        });
      },
    ),
  );

/**
 * The proxy's bearer token: its own credential (kept in <data-dir>/proxy/credentials.json, obtained
 * once with --join-token), else the shared node token.
 */
async function proxyCredential(
  dataDir: string,
  o: Common,
  opts: { controller: string; id?: string; joinToken?: string; token?: string; tokenFile?: string },
): Promise<string> {
  const name = opts.id ?? `${hostname()}-proxy`;
  const file = join(dataDir, 'proxy', 'credentials.json');
  const kept = readProxyCredentials(file, name);
  if (kept) return kept.token;
  if (opts.joinToken) {
    const ca = o.caFile ? await readFile(o.caFile, 'utf8') : undefined;
    const c = await registerProxy({
      controllerUrl: opts.controller,
      joinToken: opts.joinToken,
      name,
      file,
      ...(ca ? { ca } : {}),
    }).catch((err: Error) => {
      throw new NinesError('NINES_E_AUTH_INVALID', err.message);
    });
    return c.token;
  }
  return nodeToken(opts);
}

/** `nines proxy --workers N`: the cluster primary (dist/proxy/cluster.js) as a child, signals forwarded. */
async function runProxyCluster(
  out: Out,
  o: {
    dataDir: string;
    workers: number;
    controller: string;
    token: string;
    host: string;
    port: number;
    proxyId: string;
    logLevel: string;
    caFile?: string;
  },
): Promise<number> {
  if (o.port === 0) throw new NinesError('NINES_E_VALIDATION', '--workers needs an explicit --port');
  const file = join(o.dataDir, 'proxy', 'cluster.json');
  await mkdir(join(o.dataDir, 'proxy'), { recursive: true });
  await mkdir(join(o.dataDir, 'logs'), { recursive: true });
  const config = {
    workers: o.workers,
    proxy: {
      host: o.host,
      port: o.port,
      proxyId: o.proxyId,
      snapshotCacheFile: join(o.dataDir, 'proxy', 'snapshot.json'),
    },
    logLevel: o.logLevel,
    logFile: join(o.dataDir, 'logs', 'proxy.log'),
    controller: { url: o.controller, token: o.token, ...(o.caFile ? { caFile: o.caFile } : {}) },
  };
  // The file holds the node token.
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  const entry = fileURLToPath(new URL('../proxy/cluster.js', import.meta.url));
  const child = spawn(process.execPath, [entry, file], { stdio: 'inherit' });
  const exited = new Promise<number>((r) => child.once('exit', (code) => r(code ?? 1)));
  const onHup = () => child.kill('SIGHUP');
  process.on('SIGHUP', onHup);
  const deadline = Date.now() + 15_000;
  while (!(await accepts(o.host, o.port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new NinesError(
        'NINES_E_INTERNAL',
        `proxy workers did not start listening on ${o.host}:${o.port}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  out.line(
    `proxy http://${o.host}:${o.port} for ${o.controller}, ${o.workers} workers (primary pid ${child.pid})`,
  );
  out.line(`ready: http://${o.host}:${o.port}`);
  return untilSignal(out, async () => {
    process.off('SIGHUP', onHup);
    child.kill('SIGTERM');
    await exited;
  });
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

program
  .command('status')
  .description('services, releases and instances with host, version, state and health')
  .addHelpText('after', '\nExample:\n  nines status --json | jq ".instances[] | {id, version, healthy}"')
  .action(
    action(async (out, o) => {
      const s = await (await client(o)).get<StatusView>('/v1/status');
      out.result(s, renderStatus(s));
      return EXIT.ok;
    }),
  );

program
  .command('release <service> <path>')
  .description('pack a directory (or take a .tgz) and upload it as a release of <service>')
  .requiredOption('--version <version>', 'release version, e.g. v2')
  .addHelpText('after', '\nExample:\n  nines release hello ./examples/hello --version v2')
  .action(
    action(async (out, o, service: string, path: string, opts: { version: string }) => {
      const r = await release(await client(o), service, path, opts.version);
      out.result({ release: r }, `released ${service} ${r.version}: ${r.size} bytes, sha256 ${r.sha256}`);
      return EXIT.ok;
    }),
  );

async function runDeploy(out: Out, c: Client, deploy: DeployRecord, wait: boolean): Promise<number> {
  if (!wait) {
    out.result({ deploy }, `started ${deploy.id}`);
    return EXIT.ok;
  }
  out.line(
    `${deploy.kind} ${deploy.id}: ${deploy.service} ${deploy.fromVersion ?? '∅'} → ${deploy.toVersion}`,
  );
  const done = await followDeploy(c, deploy, out);
  out.result({ deploy: done }, deployResultLine(done));
  return done.state === 'succeeded' ? EXIT.ok : EXIT.failed;
}

const CONTROLS = ['pause', 'resume', 'abort', 'promote'] as const;

program
  .command('deploy <service> <version>')
  .description(
    'deploy a release (the service strategy, or --strategy), with live progress; exit 0 done, 1 failed, 2 refused.\n' +
      '`nines deploy pause|resume|promote|abort <service>` controls the deploy in flight',
  )
  .option('--no-wait', 'return once the deploy has started')
  .option('--strategy <name>', 'rolling, blue-green, canary, all-at-once or in-place (overrides nines.yaml)')
  .option('--no-auto-revert', 'on a failed analysis, pause for a person instead of reverting')
  .addHelpText(
    'after',
    '\nExamples:\n  nines deploy hello v2\n  nines deploy hello v3 --strategy canary\n  nines deploy promote hello\n  nines deploy abort hello',
  )
  .action(
    action(
      async (
        out,
        o,
        service: string,
        version: string,
        opts: { wait: boolean; strategy?: string; autoRevert: boolean },
      ) => {
        const c = await client(o);
        const control = CONTROLS.find((x) => x === service);
        if (control) {
          // `nines deploy pause <service>`: the deploy holding the service's lock.
          const { service: svc } = await c.get<{ service: ServiceRecord }>(
            `/v1/services/${encodeURIComponent(version)}`,
          );
          if (!svc.lockedBy || svc.lockedBy.startsWith('heal-') || svc.lockedBy.startsWith('standby-')) {
            throw new NinesError('NINES_E_INVALID_TRANSITION', `no deploy of ${version} is in flight`);
          }
          const { deploy } = await c.post<{ deploy: DeployRecord }>(
            `/v1/deploys/${encodeURIComponent(svc.lockedBy)}/${control}`,
          );
          out.result(
            { deploy },
            `${control}: ${deploy.id} (${deploy.service} ${deploy.fromVersion ?? '∅'} → ${deploy.toVersion})`,
          );
          return EXIT.ok;
        }
        const { deploy } = await c.post<{ deploy: DeployRecord }>(
          `/v1/services/${encodeURIComponent(service)}/deploys`,
          {
            version,
            ...(opts.strategy ? { strategy: opts.strategy } : {}),
            ...(opts.autoRevert === false ? { autoRevert: false } : {}),
          },
        );
        return runDeploy(out, c, deploy, opts.wait);
      },
    ),
  );

program
  .command('rollback <service>')
  .description('deploy the previous release that was last fully healthy (or --to a given one)')
  .option('--to <version>', 'roll back to this release')
  .option('--no-wait', 'return once the rollback has started')
  .addHelpText('after', '\nExample:\n  nines rollback hello')
  .action(
    action(async (out, o, service: string, opts: { to?: string; wait: boolean }) => {
      const c = await client(o);
      const { deploy } = await c.post<{ deploy: DeployRecord }>(
        `/v1/services/${encodeURIComponent(service)}/rollback`,
        opts.to ? { to: opts.to } : {},
      );
      return runDeploy(out, c, deploy, opts.wait);
    }),
  );

program
  .command('scale <service> <instances>')
  .description('set the instance count; the reconciler starts or drains instances to match')
  .option('--no-wait', 'return once the new count is recorded')
  .option('--timeout <seconds>', 'how long to wait for the count to be reached', '120')
  .addHelpText('after', '\nExample:\n  nines scale hello 5')
  .action(
    action(async (out, o, service: string, count: string, opts: { wait: boolean; timeout: string }) => {
      const n = Number(count);
      if (!Number.isInteger(n) || n < 0)
        throw new NinesError('NINES_E_VALIDATION', 'instances must be a whole number ≥ 0');
      const c = await client(o);
      const path = `/v1/services/${encodeURIComponent(service)}`;
      const { service: svc } = await c.get<{ service: ServiceRecord }>(path);
      await c.put(path, { ...svc.spec, instances: n });
      out.line(`${service}: ${svc.spec.instances} → ${n} instance(s)`);
      if (!opts.wait) return EXIT.ok;
      const until = Date.now() + Number(opts.timeout) * 1000;
      for (;;) {
        const s = await c.get<StatusView>('/v1/status');
        const mine = s.instances.filter((i) => i.service === service);
        const ready = mine.filter((i) => i.route === 'ready' && i.healthy).length;
        if (ready === n && mine.length === n) {
          out.result({ service, instances: n }, `done: ${service} has ${n} ready instance(s)`);
          return EXIT.ok;
        }
        if (Date.now() > until) {
          out.error('NINES_E_TIMEOUT', `${service} has ${ready} of ${n} ready after ${opts.timeout} s`);
          return EXIT.timeout;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }),
  );

program
  .command('mode <service> [mode]')
  .description('show or set how the proxies treat a service: live, read-only, maintenance or pause')
  .option('--retry-after <seconds>', 'Retry-After on refused requests')
  .option('--message <text>', 'text of the maintenance page')
  .option('--pause-timeout <duration>', 'longest hold of a request in pause mode (e.g. 5s)')
  .addHelpText(
    'after',
    '\nExamples:\n  nines mode hello read-only --retry-after 60   # writes get 503, reads pass\n  nines mode hello live',
  )
  .action(
    action(
      async (
        out,
        o,
        service: string,
        mode: string | undefined,
        opts: { retryAfter?: string; message?: string; pauseTimeout?: string },
      ) => {
        const c = await client(o);
        const path = `/v1/services/${encodeURIComponent(service)}`;
        if (!mode) {
          const { service: svc } = await c.get<{ service: ServiceRecord }>(path);
          out.result(
            { service: svc.name, mode: svc.mode, options: svc.modeOptions },
            `${svc.name} is ${svc.mode}`,
          );
          return EXIT.ok;
        }
        const r = await c.put<{ service: ServiceRecord; proxies: number; appliedInMs: number | null }>(
          `${path}/mode`,
          {
            mode,
            ...(opts.retryAfter !== undefined ? { retryAfter: Number(opts.retryAfter) } : {}),
            ...(opts.message !== undefined ? { message: opts.message } : {}),
            ...(opts.pauseTimeout !== undefined ? { pauseTimeout: opts.pauseTimeout } : {}),
          },
        );
        out.result(
          r,
          `${service} is ${r.service.mode}` +
            (r.appliedInMs === null
              ? ' (not yet confirmed by every proxy)'
              : ` (applied by ${r.proxies} prox${r.proxies === 1 ? 'y' : 'ies'} in ${r.appliedInMs} ms)`),
        );
        return EXIT.ok;
      },
    ),
  );

program
  .command('instances')
  .description('every instance across the fleet: host, zone, release, state, health, uptime, restarts')
  .option('--service <name>', 'only this service')
  .option('--version <version>', 'only this release version')
  .addHelpText(
    'after',
    '\nExample:\n  nines instances --service hello   # a mixed-version fleet shows at a glance',
  )
  .action(
    action(async (out, o, opts: { service?: string; version?: string }) => {
      const s = await (await client(o)).get<StatusView>('/v1/status');
      const list = s.instances.filter(
        (i) => (!opts.service || i.service === opts.service) && (!opts.version || i.version === opts.version),
      );
      const versions = new Set(list.map((i) => `${i.service} ${i.version}`));
      const uptime = (t: number | null) => {
        if (!t) return '-';
        const sec = Math.max(0, Math.round((Date.now() - t) / 1000));
        return sec < 120 ? `${sec}s` : sec < 7200 ? `${Math.round(sec / 60)}m` : `${Math.round(sec / 3600)}h`;
      };
      out.result(
        { instances: list },
        table(
          [
            'INSTANCE',
            'SERVICE',
            'VERSION',
            'HOST',
            'ZONE',
            'STATE',
            'HEALTH',
            'ROUTE',
            'UPTIME',
            'RESTARTS',
          ],
          list.map((i) => [
            i.id,
            i.service,
            i.version,
            i.host,
            i.zone,
            i.state,
            i.healthy ? 'healthy' : 'unhealthy',
            i.route,
            uptime(i.startedAt),
            String(i.restarts),
          ]),
        ) +
          `\n${list.length} instance(s), ${versions.size} service version(s): ${[...versions].join(', ') || 'none'}`,
      );
      return EXIT.ok;
    }),
  );

const hosts = program.command('hosts').description('the hosts of the fleet');
hosts
  .command('list', { isDefault: true })
  .description('every host: zone, address, up, signed, revoked')
  .action(
    action(async (out, o) => {
      const r = await (await client(o)).get<{
        hosts: Array<{
          id: string;
          name: string;
          zone: string;
          address: string;
          up: boolean;
          signed: boolean;
          revokedAt: number | null;
          lastSeenAt: number;
        }>;
      }>('/v1/hosts');
      out.result(
        r,
        table(
          ['HOST', 'ID', 'ZONE', 'ADDRESS', 'STATE', 'AUTH', 'LAST SEEN'],
          r.hosts.map((h) => [
            h.name,
            h.id,
            h.zone,
            h.address,
            h.revokedAt ? 'revoked' : h.up ? 'up' : 'down',
            h.signed ? 'signed' : 'token',
            new Date(h.lastSeenAt).toISOString().replace('T', ' ').slice(0, 19),
          ]),
        ),
      );
      return EXIT.ok;
    }),
  );
hosts
  .command('revoke <host>')
  .description('cut a host off: every request it signs is refused from now on')
  .addHelpText('after', '\nExample:\n  nines hosts revoke web-3')
  .action(
    action(async (out, o, host: string) => {
      const r = await (await client(o)).post<{ host: { id: string; name: string } }>(
        `/v1/hosts/${encodeURIComponent(host)}/revoke`,
      );
      out.result(r, `revoked host ${r.host.name} (${r.host.id})`);
      return EXIT.ok;
    }),
  );

registerFleetCommands(program, hosts, { action, client });

const joinTokens = program.command('join-token').description('tokens that let a new host join the fleet');
joinTokens
  .command('create')
  .description('create a join token (shown once); a host uses it once to get its own signing key')
  .option('--ttl <duration>', 'how long it is valid (e.g. 30m, 24h; 0: never expires)', '1h')
  .option('--name <name>', 'what it is for', 'join')
  .addHelpText('after', '\nExample:\n  nines join-token create --ttl 24h --name rack-2')
  .action(
    action(async (out, o, opts: { ttl: string; name: string }) => {
      const r = await (await client(o)).post<{ id: string; token: string; expiresAt: number | null }>(
        '/v1/join-tokens',
        { ttl: /^\d+$/.test(opts.ttl) ? Number(opts.ttl) : opts.ttl, name: opts.name },
      );
      out.result(
        r,
        `${r.token}\n(id ${r.id}, expires ${r.expiresAt ? new Date(r.expiresAt).toISOString() : 'never'}; it is not shown again)`,
      );
      return EXIT.ok;
    }),
  );
joinTokens
  .command('list')
  .description('join tokens: id, name, expiry, revoked (never the tokens themselves)')
  .action(
    action(async (out, o) => {
      const r = await (await client(o)).get<{
        tokens: Array<{
          id: string;
          name: string;
          createdAt: number;
          expiresAt: number | null;
          revokedAt: number | null;
        }>;
      }>('/v1/join-tokens');
      const iso = (t: number | null) => (t ? new Date(t).toISOString().replace('T', ' ').slice(0, 19) : '-');
      out.result(
        r,
        table(
          ['ID', 'NAME', 'CREATED', 'EXPIRES', 'REVOKED'],
          r.tokens.map((t) => [
            t.id,
            t.name,
            iso(t.createdAt),
            t.expiresAt ? iso(t.expiresAt) : 'never',
            iso(t.revokedAt),
          ]),
        ),
      );
      return EXIT.ok;
    }),
  );
joinTokens
  .command('revoke <id>')
  .description('revoke a join token before it expires')
  .action(
    action(async (out, o, id: string) => {
      const r = await (await client(o)).delete<{ id: string }>(`/v1/join-tokens/${encodeURIComponent(id)}`);
      out.result(r, `revoked join token ${r.id}`);
      return EXIT.ok;
    }),
  );

program
  .command('deploys [service]')
  .description('deploy history: who, when, strategy, from, to, result, duration, failed requests')
  .addHelpText('after', '\nExample:\n  nines deploys hello')
  .action(
    action(async (out, o, service?: string) => {
      const path = service ? `/v1/services/${encodeURIComponent(service)}/deploys` : '/v1/deploys';
      const r = await (await client(o)).get<{ deploys: DeployRecord[] }>(path);
      out.result(r, renderDeploys(r.deploys));
      return EXIT.ok;
    }),
  );

program
  .command('events')
  .description('the event log, newest first')
  .option('--limit <n>', 'how many', '50')
  .addHelpText('after', '\nExample:\n  nines events --limit 20')
  .action(
    action(async (out, o, opts: { limit: string }) => {
      const r = await (await client(o)).get<{ events: EventRecord[] }>(
        `/v1/events?limit=${Number(opts.limit)}`,
      );
      out.result(
        r,
        r.events.map((e) => `${new Date(e.at).toISOString()} ${e.kind.padEnd(18)} ${e.message}`).join('\n'),
      );
      return EXIT.ok;
    }),
  );

program
  .command('logs <service>')
  .description("an instance's output, relayed from its host's agent; every line prefixed with its instance")
  .option('--instance <id>', 'one instance (ids from `nines instances`)')
  .option('--tail <lines>', 'lines of history per instance', '100')
  .option('-f, --follow', 'keep printing new output until Ctrl-C')
  .addHelpText(
    'after',
    '\nExamples:\n  nines logs hello --tail 20\n  nines logs hello --instance hello-3f2a1c -f',
  )
  .action(
    action(async (_out, o, service: string, opts: { instance?: string; tail: string; follow?: boolean }) => {
      const tail = Number(opts.tail);
      if (!Number.isInteger(tail) || tail < 0)
        throw new NinesError('NINES_E_VALIDATION', '--tail must be a whole number ≥ 0');
      const q = new URLSearchParams({ tail: String(tail), follow: opts.follow ? '1' : '0' });
      if (opts.instance) q.set('instance', opts.instance);
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      try {
        await (await client(o)).stream(
          `/v1/services/${encodeURIComponent(service)}/logs?${q}`,
          (t) => process.stdout.write(t),
          ac.signal,
        );
      } finally {
        process.off('SIGINT', stop);
      }
      return EXIT.ok;
    }),
  );

// ---- config as code: plan / apply / diff ------------------------------------------------------------

const configOption = () => new Option('-f, --file <file>', 'config file').default('nines.yaml');

program
  .command('plan')
  .description('show what applying nines.yaml would change on the controller, field by field')
  .addOption(configOption())
  .addHelpText('after', '\nExample:\n  nines plan -f nines.yaml')
  .action(
    action(async (out, o, opts: { file: string }) => {
      const { config } = loadForPlan(opts.file);
      const c = await client(o);
      const plan = await livePlan(c, config);
      const alerting = await alertingChanges(c, config);
      out.result({ ...plan, alerting }, renderPlan(plan, { removeNote: REMOVE_NOTE }));
      const lines = renderAlertingDrift(alerting);
      if (lines) out.line(lines);
      return EXIT.ok;
    }),
  );

program
  .command('apply')
  .description('make the controller match nines.yaml: create and update services, deploy first releases')
  .addOption(configOption())
  .addHelpText('after', '\nExample:\n  nines apply -f nines.yaml')
  .action(
    action(async (out, o, opts: { file: string }) => {
      const { config, baseDir } = loadForPlan(opts.file);
      const c = await client(o);
      const plan = await livePlan(c, config);
      out.line(renderPlan(plan, { removeNote: REMOVE_NOTE }));
      await applyAlerting(c, config);
      const r = await applyPlan(c, plan, baseDir, out);
      const checks = await applyChecks(c, config, out);
      const drills = await applyDrillSchedules(c, config, out);
      const failed = r.deploys.filter((d) => d.state !== 'succeeded');
      out.result(
        { plan, applied: r.applied, deploys: r.deploys, checks, drills },
        `applied: ${r.applied.length} service(s) created or updated` +
          (failed.length ? `; ${failed.length} first deploy(s) failed` : ''),
      );
      return failed.length ? EXIT.failed : EXIT.ok;
    }),
  );

program
  .command('diff')
  .description('drift: where the controller differs from nines.yaml (exit 1 when it does, like diff)')
  .addOption(configOption())
  .addHelpText('after', '\nExample:\n  nines diff -f nines.yaml || nines apply -f nines.yaml')
  .action(
    action(async (out, o, opts: { file: string }) => {
      const { config } = loadForPlan(opts.file);
      const c = await client(o);
      const plan = await livePlan(c, config);
      const alerting = await alertingChanges(c, config);
      out.result({ ...plan, alerting }, await renderDrift(c, plan));
      const lines = renderAlertingDrift(alerting);
      if (lines) out.line(lines);
      return plan.changes.length === 0 && alerting.length === 0 ? EXIT.ok : EXIT.failed;
    }),
  );

program
  .command('schema')
  .description('print the JSON Schema of nines.yaml (for editors; also in schema/nines.schema.json)')
  .addHelpText('after', '\nExample:\n  nines schema > nines.schema.json')
  .action(
    action(async () => {
      process.stdout.write(configJsonSchemaText());
      return EXIT.ok;
    }),
  );

registerAlertCommands(program, { action, client });

program
  .command('completion <shell>')
  .description('print a completion script for bash or zsh')
  .addHelpText(
    'after',
    '\nExamples:\n  source <(nines completion bash)\n  nines completion zsh > ~/.zfunc/_nines   # a directory in $fpath',
  )
  .action(
    action(async (out, _o, shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') {
        throw new NinesError('NINES_E_VALIDATION', `no completion for "${shell}": use bash or zsh`);
      }
      out.result({ script: completionScript(program, shell) }, completionScript(program, shell));
      return EXIT.ok;
    }),
  );

program
  .command('backup')
  .description(
    'write an encrypted, consistent snapshot of the control-plane state (and artifacts) to a directory',
  )
  .requiredOption('--out <dir>', 'directory to write the backup into (a nines-backup-<time>/ directory)')
  .requiredOption(
    '--key-file <file>',
    'encryption key (e.g. `openssl rand -hex 32 > backup.key`; keep it apart)',
  )
  .option('--artifacts', 'include the release artifacts')
  .option('--keep <n>', 'then keep only the newest n backups in --out')
  .addOption(
    new Option('--s3-endpoint <url>', 'S3-compatible service for s3:// locations (default AWS)').env(
      'NINES_S3_ENDPOINT',
    ),
  )
  .addHelpText(
    'after',
    '\nExample:\n  nines backup --out /backups/nines --key-file /etc/nines/backup.key --artifacts --keep 14',
  )
  .action(
    action(
      async (
        out,
        o,
        opts: { out: string; keyFile: string; artifacts?: boolean; keep?: string; s3Endpoint?: string },
      ) => {
        const key = await readBackupKey(opts.keyFile);
        const c = await client(o);
        const t0 = Date.now();
        const state = await c.get<StateSnapshot>('/v1/backup/state');
        let sources: ArtifactSource[] | null = null;
        if (opts.artifacts) {
          sources = [];
          for (const svc of (await c.get<{ services: ServiceRecord[] }>('/v1/services')).services) {
            const { releases } = await c.get<{
              releases: Array<{ service: string; version: string; sha256: string }>;
            }>(`/v1/services/${encodeURIComponent(svc.name)}/releases`);
            for (const r of releases) {
              const path = `/v1/services/${encodeURIComponent(r.service)}/releases/${encodeURIComponent(r.version)}/artifact`;
              sources.push({
                service: r.service,
                version: r.version,
                sha256: r.sha256,
                open: () => c.download(path),
              });
            }
          }
        }
        const { parseS3Url, pruneS3Backups, s3Client, uploadBackup } = await backupS3();
        const s3loc = parseS3Url(opts.out);
        const keep = Math.max(1, Number(opts.keep));
        let path: string;
        let removed: string[] = [];
        if (s3loc) {
          // Encrypted locally first (a temporary directory), then uploaded file by file.
          const tmp = await mkdtemp(join(tmpdir(), 'nines-backup-'));
          try {
            const s3 = s3Client(opts.s3Endpoint);
            path = await uploadBackup(s3, s3loc, await writeBackup(tmp, key, state, sources));
            if (opts.keep) removed = await pruneS3Backups(s3, s3loc, keep);
          } finally {
            await rm(tmp, { recursive: true, force: true });
          }
        } else {
          path = await writeBackup(resolve(opts.out), key, state, sources);
          if (opts.keep) removed = await pruneBackups(resolve(opts.out), keep);
        }
        const rows = Object.values(state.tables).reduce((n, t) => n + t.rows.length, 0);
        out.result(
          { path, tables: Object.keys(state.tables).length, rows, artifacts: sources?.length ?? 0, removed },
          `backup ${path}: ${Object.keys(state.tables).length} tables, ${rows} rows` +
            (sources ? `, ${sources.length} artifacts` : '') +
            ` in ${((Date.now() - t0) / 1000).toFixed(1)} s` +
            (removed.length ? `; removed ${removed.length} older` : ''),
        );
        return EXIT.ok;
      },
    ),
  );

program
  .command('restore')
  .description(
    'load a backup into a fresh controller (not running): its data dir, or its PostgreSQL database',
  )
  .requiredOption(
    '--from <dir>',
    'a nines-backup-<time>/ directory, or a directory of them (the newest is used)',
  )
  .requiredOption('--key-file <file>', 'the key the backup was written with')
  .addOption(
    new Option('--database-url <url>', 'restore into this PostgreSQL database').env('NINES_DATABASE_URL'),
  )
  .option('--database-schema <name>', 'PostgreSQL schema')
  .option('--replace', 'overwrite a store that is not empty (stop every controller first)')
  .addOption(
    new Option('--s3-endpoint <url>', 'S3-compatible service for s3:// locations (default AWS)').env(
      'NINES_S3_ENDPOINT',
    ),
  )
  .addHelpText(
    'after',
    '\nExample:\n  nines restore --from /backups/nines --key-file backup.key --data-dir /var/lib/nines\n' +
      '  nines controller --data-dir /var/lib/nines   # agents and proxies re-join by themselves',
  )
  .action(
    action(
      async (
        out,
        o,
        opts: {
          from: string;
          keyFile: string;
          databaseUrl?: string;
          databaseSchema?: string;
          replace?: boolean;
          s3Endpoint?: string;
        },
      ) => {
        const { downloadBackup, parseS3Url, s3Client } = await backupS3();
        const { restoreBackup } = await planes();
        const s3loc = parseS3Url(opts.from);
        const tmp = s3loc ? await mkdtemp(join(tmpdir(), 'nines-restore-')) : undefined;
        let backup: string | undefined;
        let r: Awaited<ReturnType<typeof restoreBackup>>;
        try {
          if (s3loc && tmp) {
            backup = await downloadBackup(s3Client(opts.s3Endpoint), s3loc, tmp);
          } else {
            const from = resolve(opts.from);
            backup = (await readFile(join(from, 'manifest.json')).catch(() => undefined))
              ? from
              : await latestBackup(from);
          }
          if (!backup) throw new NinesError('NINES_E_BACKUP_INVALID', `no nines backup in ${opts.from}`);
          r = await restoreBackup({
            dataDir: o.dataDir ?? '.nines',
            backup,
            keyFile: opts.keyFile,
            ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
            ...(opts.databaseSchema ? { databaseSchema: opts.databaseSchema } : {}),
            ...(opts.replace ? { replace: true } : {}),
          });
        } finally {
          if (tmp) await rm(tmp, { recursive: true, force: true });
        }
        if (s3loc)
          backup = `s3://${s3loc.bucket}/${s3loc.prefix}${s3loc.prefix ? '/' : ''}${backup.split('/').pop()}`;
        const rows = Object.values(r.tables).reduce((n, x) => n + x, 0);
        out.result(
          { backup, ...r },
          `restored ${backup} (taken ${new Date(r.createdAt).toISOString()}): ${Object.keys(r.tables).length} tables, ` +
            `${rows} rows, ${r.artifacts} artifacts.\nStart the controller on this data dir; agents and proxies re-join by themselves.`,
        );
        return EXIT.ok;
      },
    ),
  );

addCheckCommands(program, { client, action });
registerSecretsCommands(program, { action, client });
registerProxiesCommands(program, { action, client });
registerHaproxyCommand(program, { action, nodeToken, untilSignal });
registerDrillCommands(program, { action, nodeToken, untilSignal });

await program.parseAsync(process.argv);

/** `host:port` (or `:port`, meaning 127.0.0.1) for a listener. */
function parseListen(v: string): { host: string; port: number } {
  const i = v.lastIndexOf(':');
  const port = Number(v.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new NinesError('NINES_E_VALIDATION', `${v}: use host:port, e.g. 127.0.0.1:9100`);
  }
  return { host: v.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', port };
}

/** `--lease-timeout`: a duration from 300 ms to 5 min (a bad one is refused before anything starts). */
function parseLeaseTimeout(v: string): number {
  const r = duration.safeParse(/^\d+$/.test(v) ? Number(v) : v);
  if (!r.success || r.data < 300 || r.data > 300_000) {
    throw new NinesError(
      'NINES_E_VALIDATION',
      `--lease-timeout ${v}: use a duration from 300ms to 5m, e.g. 10s`,
    );
  }
  return r.data;
}

/** `nines controller --backup-dir …`: the scheduled-backup options, checked before anything starts. */
async function backupSchedule(opts: {
  backupDir?: string;
  backupKeyFile?: string;
  backupEvery: string;
  backupKeep: string;
  backupArtifacts?: boolean;
}) {
  if (!opts.backupKeyFile) {
    throw new NinesError(
      'NINES_E_VALIDATION',
      '--backup-dir needs --backup-key-file (backups are encrypted)',
    );
  }
  const every = duration.safeParse(opts.backupEvery);
  const keep = Number(opts.backupKeep);
  if (!every.success || every.data < 1000) {
    throw new NinesError(
      'NINES_E_VALIDATION',
      `--backup-every ${opts.backupEvery}: use a duration of 1s or more, e.g. 1h`,
    );
  }
  if (!Number.isInteger(keep) || keep < 1) {
    throw new NinesError(
      'NINES_E_VALIDATION',
      `--backup-keep ${opts.backupKeep}: a whole number of 1 or more`,
    );
  }
  return {
    dir: resolve(opts.backupDir as string),
    key: await readBackupKey(opts.backupKeyFile),
    intervalMs: every.data,
    keep,
    artifacts: opts.backupArtifacts === true,
  };
}
