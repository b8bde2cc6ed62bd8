/**
 * `--workers N`: N proxy processes sharing one listener (node:cluster), each with its own
 * ControllerLink and the same snapshot cache file, so every worker serves the same routes and any of
 * them starts from the cache when the controller is away.
 *
 *   node dist/proxy/cluster.js <config.json>
 *
 * The primary restarts a worker that dies (1 s back-off). SIGHUP hands over gracefully: the config
 * file is read again, a new set of workers is started, and only once all of them listen are the old
 * ones told to close (they stop accepting, finish in-flight requests, answer `Connection: close`),
 * so no connection is refused. SIGTERM/SIGINT close every worker, then the primary exits.
 */
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import type { RoutingSnapshot } from '../core/protocol.js';
import { ControllerLink } from './link.js';
import { Proxy as NinesProxy, type ProxyOptions } from './proxy.js';
import { parseSnapshot } from './snapshot.js';

export interface ClusterConfig {
  workers: number;
  /** Proxy options without the logger. A worker's proxyId is `<proxyId>-w<index>`; an adminPort is offset by the index. */
  proxy: Omit<ProxyOptions, 'logger'>;
  logLevel?: string;
  /** Default: stderr. */
  logFile?: string;
  controller?: { url: string; token?: string; tokenFile?: string; caFile?: string };
  /** A static snapshot applied at start (tests, benchmarks; no controller needed). */
  snapshotFile?: string;
  /** Seconds a worker gets to close on handover/shutdown. Default 10. */
  stopTimeoutSeconds?: number;
}

function readConfig(file: string): ClusterConfig {
  const c = JSON.parse(readFileSync(file, 'utf8')) as ClusterConfig;
  if (!Number.isInteger(c.workers) || c.workers < 1)
    throw new Error('cluster: workers must be an integer ≥ 1');
  return c;
}

// ---- primary ---------------------------------------------------------------------------------------

function runPrimary(file: string): void {
  let config = readConfig(file);
  const log = pino({ level: config.logLevel ?? 'info' }, pino.destination(config.logFile ?? 2));
  let generation = 0;
  const current = new Map<number, Worker>();
  const retiring = new Set<Worker>();
  let stopping = false;

  const fork = (index: number, gen: number): Worker => {
    const w = cluster.fork({ NINES_PROXY_CONFIG: file, NINES_PROXY_WORKER: String(index) });
    w.on('exit', (code, signal) => {
      if (retiring.delete(w) || stopping) return;
      if (current.get(index) !== w) return;
      log.warn({ index, code, signal }, 'proxy cluster: worker died; restarting in 1 s');
      setTimeout(() => {
        if (!stopping && current.get(index) === w && gen === generation) current.set(index, fork(index, gen));
      }, 1000);
    });
    return w;
  };

  const listening = (w: Worker) =>
    new Promise<void>((resolve, reject) => {
      w.once('listening', () => resolve());
      w.once('exit', () => reject(new Error('worker exited before listening')));
    });

  const stopWorker = (w: Worker): Promise<void> =>
    new Promise((resolve) => {
      if (w.isDead()) return resolve();
      const kill = setTimeout(
        () => w.process.kill('SIGKILL'),
        (config.stopTimeoutSeconds ?? 10) * 1000 + 2000,
      );
      w.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      w.send({ type: 'nines:shutdown' });
    });

  const start = async () => {
    generation++;
    const gen = generation;
    const fresh = new Map<number, Worker>();
    for (let i = 0; i < config.workers; i++) fresh.set(i, fork(i, gen));
    const old = [...current.values()];
    current.clear();
    for (const [i, w] of fresh) current.set(i, w);
    await Promise.all([...fresh.values()].map(listening));
    log.info({ workers: config.workers, generation: gen }, 'proxy cluster: workers listening');
    for (const w of old) retiring.add(w);
    await Promise.all(old.map(stopWorker));
  };

  process.on('SIGHUP', () => {
    if (stopping) return;
    try {
      config = readConfig(file);
    } catch (err) {
      log.error({ err }, 'proxy cluster: config unreadable, keeping the running workers');
      return;
    }
    log.info('proxy cluster: reload (handover to new workers)');
    start().catch((err) => log.error({ err }, 'proxy cluster: handover failed; old workers keep serving'));
  });
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    log.info('proxy cluster: shutting down');
    void Promise.all([...current.values(), ...retiring].map(stopWorker)).then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  start().catch((err) => {
    log.error({ err }, 'proxy cluster: workers did not start');
    process.exit(1);
  });
}

// ---- worker ----------------------------------------------------------------------------------------

async function runWorker(file: string, index: number): Promise<void> {
  const config = readConfig(file);
  const logger = pino(
    { level: config.logLevel ?? 'info', base: { worker: index } },
    pino.destination(config.logFile ?? 2),
  );
  const p = config.proxy;
  const proxy = new NinesProxy({
    ...p,
    proxyId: `${p.proxyId}-w${index}`,
    ...(p.adminPort !== undefined && p.adminPort !== 0 ? { adminPort: p.adminPort + index } : {}),
    ...(p.accessLogFile !== undefined ? { accessLogFile: `${p.accessLogFile}.${index}` } : {}),
    logger,
  });
  if (config.snapshotFile !== undefined) {
    const s: RoutingSnapshot = parseSnapshot(JSON.parse(readFileSync(config.snapshotFile, 'utf8')));
    proxy.applySnapshot(s, false);
  }
  await proxy.listen();
  let link: ControllerLink | null = null;
  if (config.controller !== undefined) {
    const token = config.controller.token ?? readFileSync(config.controller.tokenFile ?? '', 'utf8').trim();
    const ca = config.controller.caFile ? readFileSync(config.controller.caFile, 'utf8') : undefined;
    link = new ControllerLink({
      baseUrl: config.controller.url,
      token,
      proxy,
      logger,
      ...(ca ? { ca } : {}),
    });
    link.start();
  }
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await link?.stop();
    await proxy.close();
    process.exit(0);
  };
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'nines:shutdown') void close();
  });
  // The primary handles signals; a worker only follows its messages (or dies with the primary).
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  process.on('disconnect', () => void close());
}

const file = cluster.isPrimary ? process.argv[2] : process.env.NINES_PROXY_CONFIG;
if (file === undefined || file === '') {
  console.error('usage: node dist/proxy/cluster.js <config.json>');
  process.exit(2);
}
if (cluster.isPrimary) runPrimary(file);
else
  runWorker(file, Number(process.env.NINES_PROXY_WORKER ?? 0)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
