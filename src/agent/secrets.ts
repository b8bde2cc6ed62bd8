import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isSafeSegment } from './artifacts.js';

/**
 * An instance's secrets on the host: `<data-dir>/secrets/<instance>.env`, mode 0600 in a 0700
 * directory, rewritten before every start (so a restart picks up values the controller changed) and
 * removed when the instance is forgotten. The same values are put in the process's environment; the
 * file is for apps (and their tooling) that read a dotenv file: its path is in NINES_SECRETS_FILE.
 */

/** `NAME="value"` lines, with the escapes dotenv readers understand (\\, \", \n, \r, \$). */
export function envFileText(secrets: Record<string, string>): string {
  const lines: string[] = [];
  for (const name of Object.keys(secrets).sort()) {
    const v = (secrets[name] ?? '')
      .replace(/\\/g, '\\\\')
      .replace(/"/g, '\\"')
      .replace(/\n/g, '\\n')
      .replace(/\r/g, '\\r')
      .replace(/\$/g, '\\$');
    lines.push(`${name}="${v}"`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

export function secretsFile(dir: string, instanceId: string): string {
  if (!isSafeSegment(instanceId)) throw new Error(`unsafe instance id ${instanceId}`);
  return join(dir, `${instanceId}.env`);
}

/** Writes the env file atomically with mode 0600; returns its path. */
export function writeSecretsFile(dir: string, instanceId: string, secrets: Record<string, string>): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = secretsFile(dir, instanceId);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, envFileText(secrets));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600); // a umask cannot widen it, but an existing tmp file could have kept its mode
  renameSync(tmp, file);
  return file;
}

export function removeSecretsFile(dir: string, instanceId: string): void {
  if (!isSafeSegment(instanceId)) return;
  rmSync(secretsFile(dir, instanceId), { force: true });
}
