import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NinesError } from '../core/errors.js';

/**
 * Release artifacts in S3-compatible object storage (AWS S3, MinIO, Ceph, s3rver in tests). The
 * controller uploads each release once; agents download it straight from the storage with a presigned
 * GET URL the controller puts in their desired state.
 *
 * Why presigned URLs and not credentials on every host: an agent is told only the controller's URL and
 * a join token. A presigned URL lets a host fetch exactly the objects of the releases it is told to run,
 * for a limited time, and nothing else; no long-lived storage credentials sit on every machine, and a
 * revoked host gets no new URLs. The URLs are signed for a fixed hour-aligned time with a 2-hour expiry,
 * so the same URL is handed out for an hour (the desired state does not change at every poll) and every
 * URL handed out stays valid for at least an hour. An agent that cannot use one (expired, storage down)
 * falls back to the controller's artifact endpoint, which streams the same bytes; the sha256 is checked
 * either way.
 */
export interface S3Options {
  bucket: string;
  /** e.g. http://127.0.0.1:4568 for MinIO or s3rver; unset: AWS S3. */
  endpoint?: string;
  region?: string;
  /** Key prefix, default `nines/`: objects are `<prefix><service>/<version>.tgz`. */
  prefix?: string;
  /** Unset: the SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style URLs (`endpoint/bucket/key`); default true when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Presigned URLs hand out for this long before a new one is signed (default 1 h). */
  presignBucketMs?: number;
}

const HOUR = 3_600_000;

function storageError(what: string, err: unknown): NinesError {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return new NinesError(
    'NINES_E_ARTIFACT_STORAGE',
    `${what}: ${e.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`,
  );
}

export class S3Artifacts {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly bucketMs: number;
  private readonly urls = new Map<string, { at: number; url: string }>();

  constructor(o: S3Options) {
    this.bucket = o.bucket;
    this.prefix = o.prefix ?? 'nines/';
    this.bucketMs = o.presignBucketMs ?? HOUR;
    this.client = new S3Client({
      region: o.region ?? 'us-east-1',
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      forcePathStyle: o.forcePathStyle ?? o.endpoint !== undefined,
      // The SDK's default streams uploads as aws-chunked with a trailing CRC, which several
      // S3-compatible servers store verbatim (chunk headers in the object). Checksums only where the API
      // demands them; the sha256 we verify end to end is ours anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(o.accessKeyId && o.secretAccessKey
        ? { credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey } }
        : {}),
    });
  }

  key(service: string, version: string): string {
    return `${this.prefix}${service}/${version}.tgz`;
  }

  /** Uploads a checked artifact file; the object carries its sha256 as metadata. */
  async put(service: string, version: string, file: string, sha256: string): Promise<void> {
    const { size } = await stat(file);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(service, version),
          Body: createReadStream(file),
          ContentLength: size,
          ContentType: 'application/gzip',
          Metadata: { sha256 },
        }),
      );
    } catch (err) {
      throw storageError(`storing ${service} ${version} in s3://${this.bucket}`, err);
    }
  }

  async open(service: string, version: string): Promise<{ stream: Readable; size: number }> {
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(service, version) }),
      );
      if (!r.Body) throw new Error('empty answer');
      return { stream: r.Body as Readable, size: Number(r.ContentLength ?? 0) };
    } catch (err) {
      throw storageError(`reading ${service} ${version} from s3://${this.bucket}`, err);
    }
  }

  async exists(service: string, version: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(service, version) }));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A presigned GET URL for the artifact, the same for a whole `presignBucketMs` window (signed at the
   * window's start, valid for two windows). Signed with the client's own signer and credentials.
   */
  async presignedUrl(service: string, version: string, now = Date.now()): Promise<string> {
    const key = this.key(service, version);
    const at = Math.floor(now / this.bucketMs) * this.bucketMs;
    const cached = this.urls.get(key);
    if (cached?.at === at) return cached.url;
    const endpoint = await this.endpointUrl();
    // The client's signer (SignatureV4MultiRegion) also presigns; typed as a plain signer by the SDK.
    const signer = (await this.client.config.signer()) as unknown as Presigner;
    const basePath = endpoint.pathname.replace(/\/+$/, '');
    const path = this.client.config.forcePathStyle
      ? `${basePath}/${this.bucket}/${encodeKey(key)}`
      : `${basePath}/${encodeKey(key)}`;
    const hostname = this.client.config.forcePathStyle
      ? endpoint.hostname
      : `${this.bucket}.${endpoint.hostname}`;
    const host = endpoint.port ? `${hostname}:${endpoint.port}` : hostname;
    const signed = await signer.presign(
      {
        method: 'GET',
        protocol: endpoint.protocol,
        hostname,
        ...(endpoint.port ? { port: Number(endpoint.port) } : {}),
        path,
        headers: { host },
        query: {},
      },
      { expiresIn: Math.round((2 * this.bucketMs) / 1000), signingDate: new Date(at) },
    );
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(signed.query ?? {})) if (typeof v === 'string') q.set(k, v);
    const url = `${endpoint.protocol}//${host}${path}?${q}`;
    this.urls.set(key, { at, url });
    return url;
  }

  private async endpointUrl(): Promise<URL> {
    const ep = this.client.config.endpoint ? await this.client.config.endpoint() : undefined;
    if (ep) {
      return new URL(`${ep.protocol}//${ep.hostname}${ep.port ? `:${ep.port}` : ''}${ep.path ?? ''}`);
    }
    const region = await this.client.config.region();
    return new URL(`https://s3.${region}.amazonaws.com`);
  }

  close(): void {
    this.client.destroy();
  }
}

interface Presigner {
  presign(
    req: {
      method: string;
      protocol: string;
      hostname: string;
      port?: number;
      path: string;
      headers: Record<string, string>;
      query: Record<string, string>;
    },
    o: { expiresIn: number; signingDate: Date },
  ): Promise<{ query?: Record<string, string | string[] | null> }>;
}

/** S3 keys keep their slashes; every other reserved character is escaped. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
