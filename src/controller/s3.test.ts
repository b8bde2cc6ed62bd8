import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { S3Artifacts } from './s3.js';

describe('presigned artifact URLs', () => {
  const s3 = new S3Artifacts({
    bucket: 'arts',
    endpoint: 'http://127.0.0.1:9000',
    accessKeyId: 'AKID',
    secretAccessKey: 'SECRET',
  });
  const hour = 3_600_000;
  const t0 = Date.UTC(2026, 0, 1, 10, 0, 0);

  it('is one URL per hour-aligned window, valid for two windows, path-style, without the secret key', async () => {
    const a = await s3.presignedUrl('web', 'v1', t0 + 5_000);
    const b = await s3.presignedUrl('web', 'v1', t0 + hour - 1);
    const c = await s3.presignedUrl('web', 'v1', t0 + hour);
    assert.equal(a, b);
    assert.notEqual(a, c);
    const u = new URL(a);
    assert.equal(u.origin, 'http://127.0.0.1:9000');
    assert.equal(u.pathname, '/arts/nines/web/v1.tgz');
    assert.equal(u.searchParams.get('X-Amz-Date'), '20260101T100000Z');
    assert.equal(u.searchParams.get('X-Amz-Expires'), '7200');
    assert.match(
      u.searchParams.get('X-Amz-Credential') ?? '',
      /^AKID\/20260101\/us-east-1\/s3\/aws4_request$/,
    );
    assert.match(u.searchParams.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
    assert.ok(!a.includes('SECRET'));
    assert.notEqual(await s3.presignedUrl('web', 'v2', t0), a, 'each object has its own signature');
    s3.close();
  });
});
