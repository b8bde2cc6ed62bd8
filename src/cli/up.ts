import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadConfigFile, type NinesConfig } from '../core/config.js';
import { applyConfig } from './apply.js';
import { Client, type UpInfo } from './client.js';
import type { Out } from './output.js';
import { fileLogger, runAgent, runController, runProxy } from './planes.js';

export interface UpOptions {
  config?: string;
  dataDir: string;
  host: string;
  apiPort: number;
  proxyPort: number;
  logLevel: string;
}

/**
 * `nines up`: the embedded platform in one process — controller (API + embedded SQLite store), one
 * local agent and the proxy. This file is the composition root, the one place that wires the planes
 * together; they still talk to each other only through the HTTP protocol, as they do across a fleet.
 */
export async function up(opts: UpOptions, out: Out): Promise<{ stop: () => Promise<void> }> {
  // The config is checked before anything is created: a bad file changes nothing.
  const configFile = opts.config
    ? resolve(opts.config)
    : existsSync('nines.yaml')
      ? resolve('nines.yaml')
      : undefined;
  const config: NinesConfig | undefined = configFile ? loadConfigFile(configFile) : undefined;

  const dataDir = resolve(opts.dataDir);
  const { logger, file: logFile } = await fileLogger(dataDir, opts.logLevel);
  const ctl = await runController({ dataDir, host: opts.host, port: opts.apiPort, logger });
  const { controller, tokens } = ctl;
  const proxy = await runProxy({
    controllerUrl: controller.url,
    token: tokens.node,
    dataDir,
    host: opts.host,
    port: opts.proxyPort,
    logger,
  });
  const proxyPort = proxy.port;
  const agent = await runAgent({
    controllerUrl: controller.url,
    token: tokens.node,
    dataDir,
    zone: 'local',
    labels: {},
    address: opts.host,
    logger,
  });

  const proxyUrl = `http://${opts.host}:${proxyPort}`;
  const info: UpInfo = {
    pid: process.pid,
    apiUrl: controller.url,
    proxyUrl,
    adminTokenFile: controller.adminTokenFile,
  };
  await writeFile(join(dataDir, 'up.json'), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await rm(join(dataDir, 'up.json'), { force: true });
      await agent.stop();
      await proxy.stop();
      await ctl.stop();
      logger.flush();
    })();
    return stopping;
  };

  out.line(`nines is up (pid ${process.pid})`);
  out.line(`  proxy        ${proxyUrl}`);
  out.line(`  dashboard    ${controller.url}/  (sign in with the admin token)`);
  out.line(`  api          ${controller.url}`);
  out.line(`  admin token  ${controller.adminTokenFile} (mode 0600)`);
  out.line(`  data         ${dataDir} (logs in ${logFile})`);

  if (config && configFile) {
    const client = new Client({ url: controller.url, token: tokens.admin });
    await applyConfig(client, config, dirname(configFile), out);
  }
  out.line(`ready: curl ${proxyUrl}/   ·   npx nines status   ·   Ctrl-C stops everything`);
  return { stop };
}
