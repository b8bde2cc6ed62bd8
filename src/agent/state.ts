import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { DesiredInstance } from '../core/protocol.js';

/** Where the agent keeps things under its dataDir. */
export function agentPaths(dataDir: string) {
  return {
    agentDir: join(dataDir, 'agent'),
    hostFile: join(dataDir, 'agent', 'host.json'),
    desiredFile: join(dataDir, 'agent', 'desired.json'),
    instancesFile: join(dataDir, 'agent', 'instances.json'),
    releasesDir: join(dataDir, 'releases'),
    logsDir: join(dataDir, 'logs'),
    tmpDir: join(dataDir, 'tmp'),
  };
}

export type AgentPaths = ReturnType<typeof agentPaths>;

export interface HostFile {
  hostId: string;
  name: string;
  /** The host's signing key (hex). The file is written with mode 0600. */
  key?: string;
}

/** What the agent needs to adopt a running instance after it restarts. */
export interface InstanceRecord {
  id: string;
  pid: number;
  port: number;
  /** Field 22 of /proc/<pid>/stat when the process was started. */
  startTime: string;
  releaseDir: string;
  restarts: number;
  startedAt: number;
  spec: DesiredInstance;
}

export interface InstancesFile {
  version: 1;
  instances: InstanceRecord[];
}

/** Writes JSON so that readers see the old or the new content, never a mix (write, fsync, rename). */
export function writeJsonAtomic(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Parsed JSON, or undefined when the file is missing or unreadable. */
export function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}
