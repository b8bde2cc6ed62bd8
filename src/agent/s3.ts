import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';

/**
 * Downloads an artifact straight from object storage with the presigned URL the controller put in the
 * desired state (controller/s3.ts explains why URLs and not credentials). No authorization header: the
 * URL carries its own signature. The caller verifies the sha256 before unpacking.
 */
export async function downloadPresigned(
  url: string,
  file: string,
  maxBytes: number,
  signal: AbortSignal,
): Promise<number> {
  const res = await request(url, {
    method: 'GET',
    signal,
    headersTimeout: 30_000,
    bodyTimeout: 60_000,
  });
  if (res.statusCode !== 200) {
    const text = await res.body.text().catch(() => '');
    // S3 answers errors in XML: the <Code> is the useful part (AccessDenied, NoSuchKey, ...).
    const code = /<Code>([^<]{1,100})<\/Code>/.exec(text)?.[1];
    throw new Error(`object storage answered HTTP ${res.statusCode}${code ? ` ${code}` : ''}`);
  }
  let bytes = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > maxBytes) cb(new Error(`artifact larger than the expected ${maxBytes} bytes`));
      else cb(null, chunk);
    },
  });
  await pipeline(res.body, limit, createWriteStream(file, { mode: 0o600 }));
  return bytes;
}
