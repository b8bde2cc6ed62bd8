import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspectArchive } from '../core/artifact.js';
import { NinesError } from '../core/errors.js';
import type { HostDesiredState } from '../core/protocol.js';
import type { S3Artifacts } from './s3.js';

/**
 * Release artifacts on the controller's disk: `<dir>/<service>/<version>.tgz`. An upload is streamed to
 * a temporary file while hashed, refused on a checksum mismatch, a size over the limit or an unsafe
 * archive, and only then renamed into place, so a bad upload leaves nothing behind.
 */
export class ArtifactStore {
  readonly dir: string;
  readonly maxBytes: number;
  /** Object storage: every committed artifact is stored there too, and agents download from it. */
  readonly remote: S3Artifacts | undefined;

  constructor(opts: { dir: string; maxBytes?: number; remote?: S3Artifacts }) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes ?? 512 * 1024 * 1024;
    this.remote = opts.remote;
  }

  path(service: string, version: string): string {
    return join(this.dir, service, `${version}.tgz`);
  }

  /** Stream `body` to a checked temporary file. Returns its path, sha256 and size; `commit` moves it in place. */
  async receive(
    service: string,
    body: Readable,
    expectedSha256: string | undefined,
  ): Promise<{ tmp: string; sha256: string; size: number }> {
    await mkdir(join(this.dir, service), { recursive: true });
    const tmp = join(this.dir, service, `.upload-${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const max = this.maxBytes;
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            size += chunk.length;
            if (size > max) {
              throw new NinesError('NINES_E_ARTIFACT_TOO_LARGE', `artifact is larger than ${max} bytes`);
            }
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp, { mode: 0o600 }),
      );
      const sha256 = hash.digest('hex');
      if (expectedSha256 && expectedSha256.toLowerCase() !== sha256) {
        throw new NinesError(
          'NINES_E_ARTIFACT_CHECKSUM',
          `artifact sha256 is ${sha256}, but the upload said ${expectedSha256}`,
          { expected: expectedSha256, actual: sha256 },
        );
      }
      if (size === 0) throw new NinesError('NINES_E_ARTIFACT_INVALID', 'artifact is empty');
      await inspectArchive(tmp);
      return { tmp, sha256, size };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** With object storage, the upload must succeed first (NINES_E_ARTIFACT_STORAGE otherwise). */
  async commit(tmp: string, service: string, version: string, sha256 = ''): Promise<void> {
    if (this.remote) await this.remote.put(service, version, tmp, sha256);
    await rename(tmp, this.path(service, version));
  }

  async discard(tmp: string): Promise<void> {
    await rm(tmp, { force: true });
  }

  async has(service: string, version: string): Promise<boolean> {
    return (await stat(this.path(service, version)).catch(() => undefined)) !== undefined;
  }

  async open(service: string, version: string): Promise<{ stream: Readable; size: number }> {
    const file = this.path(service, version);
    const st = await stat(file).catch(() => undefined);
    // Another controller (or this one before its disk was replaced) stored it: read it from storage.
    if (!st && this.remote) return this.remote.open(service, version);
    if (!st) throw new NinesError('NINES_E_RELEASE_NOT_FOUND', `no artifact for ${service} ${version}`);
    return { stream: createReadStream(file), size: st.size };
  }
}

/** Presigned object-storage URLs for each instance's artifact (see s3.ts for why URLs, not credentials). */
export async function withDownloadUrls(
  artifacts: ArtifactStore,
  desired: HostDesiredState,
): Promise<HostDesiredState> {
  const remote = artifacts.remote;
  if (!remote || desired.instances.length === 0) return desired;
  const instances = [];
  for (const i of desired.instances) {
    const downloadUrl = await remote.presignedUrl(i.service, i.release.version);
    instances.push({ ...i, release: { ...i.release, downloadUrl } });
  }
  return { ...desired, instances };
}
