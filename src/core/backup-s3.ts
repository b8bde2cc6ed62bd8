import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { BACKUP_PREFIX } from './backup-file.js';
import { NinesError } from './errors.js';

/**
 * Backups in S3-compatible object storage: a backup directory is uploaded file by file under
 * `s3://bucket/prefix/nines-backup-<time>/…` (the files are already encrypted). Credentials come from
 * the usual AWS chain (environment, profile, instance role); `endpoint` selects another S3-compatible
 * service (MinIO, Ceph, …) with path-style addressing.
 */

export interface S3Location {
  bucket: string;
  prefix: string;
}

export function parseS3Url(url: string): S3Location | undefined {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,62})(?:\/(.*))?$/.exec(url);
  if (!m) return undefined;
  return { bucket: m[1] as string, prefix: (m[2] ?? '').replace(/^\/+|\/+$/g, '') };
}

export function s3Client(endpoint?: string): S3Client {
  return new S3Client({
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    // Plain uploads: streamed bodies with checksum trailers (aws-chunked) are not understood by every
    // S3-compatible service; each file is already authenticated by its own AES-GCM tag.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
  });
}

const key = (loc: S3Location, rest: string) => (loc.prefix ? `${loc.prefix}/${rest}` : rest);

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** Uploads a local backup directory; the manifest goes last, so a backup without it is incomplete. */
export async function uploadBackup(s3: S3Client, loc: S3Location, backupDir: string): Promise<string> {
  const name = backupDir.split('/').pop() as string;
  const files = (await filesUnder(backupDir)).sort((a, b) =>
    a.endsWith('manifest.json') ? 1 : b.endsWith('manifest.json') ? -1 : a.localeCompare(b),
  );
  for (const f of files) {
    await s3.send(
      new PutObjectCommand({
        Bucket: loc.bucket,
        Key: key(loc, `${name}/${relative(backupDir, f)}`),
        Body: createReadStream(f),
        ContentLength: (await stat(f)).size,
      }),
    );
  }
  return `s3://${loc.bucket}/${key(loc, name)}`;
}

/** Complete backups (those with a manifest) under the location, oldest first. */
export async function listBackups(s3: S3Client, loc: S3Location): Promise<string[]> {
  const names = new Set<string>();
  let token: string | undefined;
  do {
    const r = await s3.send(
      new ListObjectsV2Command({
        Bucket: loc.bucket,
        Prefix: key(loc, BACKUP_PREFIX),
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of r.Contents ?? []) {
      const rest = (o.Key ?? '').slice(loc.prefix ? loc.prefix.length + 1 : 0);
      const [name, file] = rest.split('/');
      if (name && file === 'manifest.json') names.add(name);
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return [...names].sort();
}

/** Downloads backup `name` (default: the newest) into `dir`; returns the local backup directory. */
export async function downloadBackup(
  s3: S3Client,
  loc: S3Location,
  dir: string,
  name?: string,
): Promise<string> {
  let wanted = name;
  if (!wanted) {
    const last = loc.prefix.split('/').pop() ?? '';
    if (last.startsWith(BACKUP_PREFIX)) {
      wanted = last;
      loc = { bucket: loc.bucket, prefix: loc.prefix.split('/').slice(0, -1).join('/') };
    } else {
      wanted = (await listBackups(s3, loc)).at(-1);
    }
  }
  if (!wanted)
    throw new NinesError('NINES_E_BACKUP_INVALID', `no nines backup under s3://${loc.bucket}/${loc.prefix}`);
  const out = join(dir, wanted);
  const r = await s3.send(new ListObjectsV2Command({ Bucket: loc.bucket, Prefix: key(loc, `${wanted}/`) }));
  for (const o of r.Contents ?? []) {
    if (!o.Key) continue;
    const rel = o.Key.slice(key(loc, `${wanted}/`).length);
    if (rel.includes('..')) continue;
    const dest = join(out, rel);
    await mkdir(dirname(dest), { recursive: true });
    const got = await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: o.Key }));
    await pipeline(got.Body as Readable, createWriteStream(dest, { mode: 0o600 }));
  }
  return out;
}

/** Retention in the bucket: keep the newest `keep` backups; returns the names removed. */
export async function pruneS3Backups(s3: S3Client, loc: S3Location, keep: number): Promise<string[]> {
  const names = await listBackups(s3, loc);
  const old = names.slice(0, Math.max(0, names.length - keep));
  for (const n of old) {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: loc.bucket, Prefix: key(loc, `${n}/`) }));
    const objects = (r.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (objects.length > 0) {
      await s3.send(new DeleteObjectsCommand({ Bucket: loc.bucket, Delete: { Objects: objects } }));
    }
  }
  return old;
}
