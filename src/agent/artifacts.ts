import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { unpackArchive } from '../core/artifact.js';
import { isNinesError, NinesError } from '../core/errors.js';
import type { ArtifactRef } from '../core/protocol.js';
import { type ControllerClient, ControllerHttpError } from './client.js';
import { downloadPresigned } from './s3.js';

/** A path segment the agent will use as a directory name (service, version, instance id). */
export function isSafeSegment(s: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9._+@-]{0,199}$/.test(s) && s !== '..';
}

/**
 * Whether a provisioning error is worth retrying: network trouble and 5xx/408/429 are; a bad artifact
 * or a 4xx is not (the instance goes to `failed`).
 */
export function isRetryableProvisionError(err: unknown): boolean {
  if (isNinesError(err)) return false;
  if (err instanceof ControllerHttpError)
    return err.status >= 500 || err.status === 408 || err.status === 429;
  return true;
}

/** `CODE: message` for the instance's `message` field. */
export function describeProvisionError(err: unknown): string {
  if (isNinesError(err)) return `${err.code}: ${err.message}`;
  const msg = err instanceof Error ? err.message : String(err);
  return `NINES_E_AGENT_PROVISION: ${msg}`;
}

/**
 * Release directories under `<dataDir>/releases/<service>/<version>`: downloaded once, verified,
 * unpacked atomically, shared by every instance of that release (concurrent requests share one
 * download).
 */
export class ArtifactCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly releasesDir: string,
    private readonly tmpDir: string,
    private readonly client: ControllerClient,
    private readonly logger: Logger,
    private readonly signal: AbortSignal,
  ) {}

  releaseDir(service: string, version: string): string {
    return join(this.releasesDir, service, version);
  }

  ensure(service: string, release: ArtifactRef): Promise<string> {
    if (!isSafeSegment(service) || !isSafeSegment(release.version)) {
      return Promise.reject(
        new NinesError(
          'NINES_E_AGENT_PROVISION',
          `unsafe service or version name: ${service}/${release.version}`,
        ),
      );
    }
    const key = `${service}/${release.version}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetch(service, release).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async fetch(service: string, release: ArtifactRef): Promise<string> {
    const dir = this.releaseDir(service, release.version);
    if (existsSync(dir)) return dir;
    mkdirSync(this.tmpDir, { recursive: true });
    const tmp = join(this.tmpDir, `${service}-${release.version}-${randomUUID()}.tar.gz`);
    const started = Date.now();
    try {
      const max = release.size > 0 ? release.size : 4 * 1024 ** 3;
      if (release.downloadUrl) {
        try {
          const bytes = await downloadPresigned(release.downloadUrl, tmp, max, this.signal);
          await unpackArchive(tmp, dir, release.sha256);
          this.logger.info(
            { service, version: release.version, bytes, ms: Date.now() - started, source: 'object-storage' },
            'release unpacked',
          );
          return dir;
        } catch (err) {
          if (this.signal.aborted) throw err;
          // Expired URL, storage down, or bytes that do not match the sha256: the controller has them too.
          this.logger.warn(
            { service, version: release.version, err: (err as Error).message },
            'object storage download failed; fetching the artifact from the controller',
          );
          rmSync(tmp, { force: true });
        }
      }
      const bytes = await this.client.download(release.url, tmp, max, this.signal);
      await unpackArchive(tmp, dir, release.sha256);
      this.logger.info(
        { service, version: release.version, bytes, ms: Date.now() - started, source: 'controller' },
        'release unpacked',
      );
      return dir;
    } finally {
      rmSync(tmp, { force: true });
    }
  }
}
