import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { NinesError } from './errors.js';

/**
 * The backup format. A backup is a directory `nines-backup-<UTC time>/`:
 *
 *   manifest.json            not secret: format, time, whether artifacts are included
 *   state.enc                the control-plane snapshot (every table of the store), gzipped JSON
 *   artifacts/<sha256>.enc   release artifacts (optional)
 *
 * Each `.enc` file is AES-256-GCM: `NINESENC1` | salt (16) | iv (12) | ciphertext | tag (16), the key
 * derived with scrypt from the key file's contents and the salt. A wrong key or a changed byte fails
 * authentication (NINES_E_BACKUP_INVALID) instead of restoring garbage.
 */

const MAGIC = Buffer.from('NINESENC1');
const FORMAT = 'nines-backup/1';
export const BACKUP_PREFIX = 'nines-backup-';

/** What the store exports: every table, by name, as columns + rows. */
export interface StateSnapshot {
  format: 'nines-state/1';
  createdAt: number;
  /** Store migrations applied when the snapshot was taken. */
  migrations: string[];
  tables: Record<string, { columns: string[]; rows: unknown[][] }>;
}

export interface BackupManifest {
  format: typeof FORMAT;
  createdAt: number;
  tables: Record<string, number>;
  artifacts: Array<{ service: string; version: string; sha256: string }> | null;
}

/** Reads a key file: at least 16 bytes of secret (e.g. `openssl rand -hex 32 > backup.key`). */
export async function readBackupKey(file: string): Promise<Buffer> {
  const key = await readFile(file).catch((err: Error) => {
    throw new NinesError('NINES_E_VALIDATION', `cannot read the backup key file ${file}: ${err.message}`);
  });
  const trimmed = Buffer.from(key.toString('utf8').trim());
  if (trimmed.length < 16) {
    throw new NinesError('NINES_E_VALIDATION', `backup key file ${file} holds fewer than 16 bytes of secret`);
  }
  return trimmed;
}

function derive(secret: Buffer, salt: Buffer): Buffer {
  return scryptSync(secret, salt, 32, { N: 16384, r: 8, p: 1 });
}

function encrypt(secret: Buffer, plain: Buffer): Buffer {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', derive(secret, salt), iv);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([MAGIC, salt, iv, body, c.getAuthTag()]);
}

function decrypt(secret: Buffer, data: Buffer, what: string): Buffer {
  const head = MAGIC.length + 16 + 12;
  if (data.length < head + 16 || !data.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new NinesError('NINES_E_BACKUP_INVALID', `${what} is not an encrypted nines backup file`);
  }
  const salt = data.subarray(MAGIC.length, MAGIC.length + 16);
  const iv = data.subarray(MAGIC.length + 16, head);
  const d = createDecipheriv('aes-256-gcm', derive(secret, salt), iv);
  d.setAuthTag(data.subarray(data.length - 16));
  try {
    return Buffer.concat([d.update(data.subarray(head, data.length - 16)), d.final()]);
  } catch {
    throw new NinesError(
      'NINES_E_BACKUP_INVALID',
      `${what} does not decrypt with this key (wrong key file, or the file was changed)`,
    );
  }
}

/** Streams `src` encrypted into `file` (artifacts can be large). */
async function encryptStream(secret: Buffer, src: Readable, file: string): Promise<void> {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', derive(secret, salt), iv);
  const out = createWriteStream(file, { mode: 0o600 });
  out.write(Buffer.concat([MAGIC, salt, iv]));
  await pipeline(src, c, out, { end: false });
  await new Promise<void>((resolve, reject) =>
    out.end(c.getAuthTag(), () => resolve()).once('error', reject),
  );
}

async function decryptFileTo(secret: Buffer, file: string, dest: string): Promise<void> {
  const size = (await stat(file)).size;
  const head = MAGIC.length + 16 + 12;
  const fh = await open(file, 'r');
  const hdr = Buffer.alloc(head);
  const tag = Buffer.alloc(16);
  try {
    await fh.read(hdr, 0, head, 0);
    await fh.read(tag, 0, 16, size - 16);
  } finally {
    await fh.close();
  }
  if (size < head + 16 || !hdr.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new NinesError('NINES_E_BACKUP_INVALID', `${file} is not an encrypted nines backup file`);
  }
  const d = createDecipheriv(
    'aes-256-gcm',
    derive(secret, hdr.subarray(MAGIC.length, MAGIC.length + 16)),
    hdr.subarray(MAGIC.length + 16, head),
  );
  d.setAuthTag(tag);
  const tmp = `${dest}.part`;
  try {
    await pipeline(
      createReadStream(file, { start: head, end: size - 17 }),
      d,
      createWriteStream(tmp, { mode: 0o600 }),
    );
  } catch {
    await rm(tmp, { force: true });
    throw new NinesError('NINES_E_BACKUP_INVALID', `${file} does not decrypt with this key (or was changed)`);
  }
  await rename(tmp, dest);
}

export interface ArtifactSource {
  service: string;
  version: string;
  sha256: string;
  open(): Promise<Readable>;
}

/**
 * Writes a backup under `dir` (created) and returns its path. Written to a `.partial` directory and
 * renamed at the end, so an interrupted backup never looks complete.
 */
export async function writeBackup(
  dir: string,
  secret: Buffer,
  state: StateSnapshot,
  artifacts: ArtifactSource[] | null,
): Promise<string> {
  const stamp = new Date(state.createdAt)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const name = `${BACKUP_PREFIX}${stamp}`;
  const final = join(dir, name);
  const tmp = join(dir, `.${name}.partial`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'artifacts'), { recursive: true, mode: 0o700 });
  await writeFile(join(tmp, 'state.enc'), encrypt(secret, gzipSync(JSON.stringify(state))), { mode: 0o600 });
  const done: BackupManifest['artifacts'] = artifacts ? [] : null;
  for (const a of artifacts ?? []) {
    if (!/^[0-9a-f]{64}$/.test(a.sha256)) continue;
    await encryptStream(secret, await a.open(), join(tmp, 'artifacts', `${a.sha256}.enc`));
    done?.push({ service: a.service, version: a.version, sha256: a.sha256 });
  }
  const manifest: BackupManifest = {
    format: FORMAT,
    createdAt: state.createdAt,
    tables: Object.fromEntries(Object.entries(state.tables).map(([t, v]) => [t, v.rows.length])),
    artifacts: done,
  };
  await writeFile(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
  return final;
}

/** Reads and authenticates a backup directory's state. */
export async function readBackup(
  path: string,
  secret: Buffer,
): Promise<{ manifest: BackupManifest; state: StateSnapshot }> {
  const manifestText = await readFile(join(path, 'manifest.json'), 'utf8').catch(() => undefined);
  const manifest = manifestText ? (JSON.parse(manifestText) as BackupManifest) : undefined;
  if (manifest?.format !== FORMAT) {
    throw new NinesError(
      'NINES_E_BACKUP_INVALID',
      `${path} is not a nines backup (no ${FORMAT} manifest.json)`,
    );
  }
  const data = await readFile(join(path, 'state.enc')).catch(() => undefined);
  if (!data) throw new NinesError('NINES_E_BACKUP_INVALID', `${path}/state.enc is missing`);
  let state: StateSnapshot;
  try {
    state = JSON.parse(
      gunzipSync(decrypt(secret, data, `${path}/state.enc`)).toString('utf8'),
    ) as StateSnapshot;
  } catch (err) {
    if (err instanceof NinesError) throw err;
    throw new NinesError('NINES_E_BACKUP_INVALID', `${path}/state.enc is damaged: ${(err as Error).message}`);
  }
  if (state.format !== 'nines-state/1' || typeof state.tables !== 'object') {
    throw new NinesError('NINES_E_BACKUP_INVALID', `${path}: unknown state format`);
  }
  return { manifest, state };
}

/** Decrypts the backup's artifacts into `artifactsDir/<service>/<version>.tgz` (the controller's layout). */
export async function restoreArtifacts(
  path: string,
  secret: Buffer,
  manifest: BackupManifest,
  artifactsDir: string,
): Promise<number> {
  let n = 0;
  for (const a of manifest.artifacts ?? []) {
    if (!/^[0-9a-f]{64}$/.test(a.sha256) || !/^[A-Za-z0-9._-]+$/.test(a.service + a.version)) continue;
    await mkdir(join(artifactsDir, a.service), { recursive: true });
    await decryptFileTo(
      secret,
      join(path, 'artifacts', `${a.sha256}.enc`),
      join(artifactsDir, a.service, `${a.version}.tgz`),
    );
    n++;
  }
  return n;
}

/** The newest complete backup under `dir` (by name: the UTC time sorts). */
export async function latestBackup(dir: string): Promise<string | undefined> {
  const names = (await readdir(dir).catch(() => [] as string[]))
    .filter((n) => n.startsWith(BACKUP_PREFIX))
    .sort();
  const last = names.at(-1);
  return last ? join(dir, last) : undefined;
}

/** Retention: keep the newest `keep` complete backups under `dir`, remove older ones. Returns removed. */
export async function pruneBackups(dir: string, keep: number): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[]))
    .filter((n) => n.startsWith(BACKUP_PREFIX))
    .sort();
  const old = names.slice(0, Math.max(0, names.length - keep));
  for (const n of old) await rm(join(dir, n), { recursive: true, force: true });
  return old;
}
