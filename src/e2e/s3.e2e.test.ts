import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { Client } from '../cli/client.js';
import type { ReleaseRecord } from '../controller/store/types.js';
import { cleanup, cli, fixture, type Proc, sleep, spawnCli, tempDir } from './harness.js';

/**
 * Self-provisioning from object storage: the controller stores release artifacts in a real
 * S3-compatible server (s3rver on loopback); the agent, told only the controller's URL and a join
 * token, downloads them straight from the storage with presigned URLs, verifies the sha256, unpacks and
 * starts. A tampered object is refused by its checksum and the agent falls back to the controller; a
 * storage that fails makes an upload fail with NINES_E_ARTIFACT_STORAGE and records nothing.
 */

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (o: Record<string, unknown>) => S3rverInstance;

const BUCKET = 'nines-artifacts';

async function waitFor(what: string, fn: () => boolean, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('artifacts from S3-compatible object storage', () => {
  const root = tempDir();
  const ctlDir = join(root, 'controller');
  const agentDir = join(root, 'agent');
  let s3server: S3rverInstance | undefined;
  let s3: S3Client;
  let controller: Proc | undefined;
  let agent: Proc | undefined;
  let proxy: Proc | undefined;
  let client: Client;
  let proxyUrl = '';
  const agentLog = () => {
    try {
      return readFileSync(join(agentDir, 'logs', 'nines.log'), 'utf8');
    } catch {
      return '';
    }
  };

  before(async () => {
    s3server = new S3rver({
      port: 0,
      address: '127.0.0.1',
      silent: true,
      directory: join(root, 's3'),
      configureBuckets: [{ name: BUCKET }],
    });
    const { port } = await s3server.run();
    const endpoint = `http://127.0.0.1:${port}`;
    s3 = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    // Credentials reach the controller the way they should in production: through the environment.
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    controller = await spawnCli([
      '--data-dir',
      ctlDir,
      'controller',
      '--port',
      '0',
      '--log-level',
      'debug',
      '--s3-bucket',
      BUCKET,
      '--s3-endpoint',
      endpoint,
    ]);
    const url = controller.ready;
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    assert.equal(jt.code, 0, jt.stderr);
    agent = await spawnCli([
      '--data-dir',
      agentDir,
      'agent',
      '--controller',
      url,
      '--join-token',
      (JSON.parse(jt.stdout) as { token: string }).token,
      '--name',
      'blank-host',
      '--log-level',
      'debug',
    ]);
    proxy = await spawnCli([
      '--data-dir',
      join(root, 'proxy'),
      'proxy',
      '--controller',
      url,
      '--token-file',
      join(ctlDir, 'node-token'),
      '--port',
      '0',
    ]);
    proxyUrl = proxy.ready;
    client = new Client({ url, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
    await client.put('/v1/services/web', {
      command: 'node server.js',
      instances: 1,
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
      drainTimeout: 5000,
      healthyDeadline: 20_000,
    });
  });

  after(async () => {
    await agent?.stop();
    await proxy?.stop();
    await controller?.stop();
    s3.destroy();
    await s3server?.close();
    cleanup(root);
  });

  test('the release is stored in the bucket; the agent downloads it from there, verifies and starts it', async () => {
    const r = await cli(ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v1');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { releases } = await client.get<{ releases: ReleaseRecord[] }>('/v1/services/web/releases');
    const rel = releases.find((x) => x.version === 'v1');
    assert.ok(rel);
    const obj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'nines/web/v1.tgz' }));
    const bytes = Buffer.from(
      await (obj.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    assert.equal(createHash('sha256').update(bytes).digest('hex'), rel.sha256);
    assert.equal(obj.Metadata?.sha256, rel.sha256);

    const d = await cli(ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.equal(await (await request(`${proxyUrl}/`)).body.text(), 'v1');
    await waitFor('the agent log line', () => /"source":"object-storage".*release unpacked/.test(agentLog()));
    assert.doesNotMatch(agentLog(), /object storage download failed/);
  });

  test('a tampered object fails its sha256: the agent takes the artifact from the controller instead', async () => {
    const r = await cli(ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v2');
    assert.equal(r.code, 0, r.stderr);
    // Someone with write access to the bucket swaps v2 for other bytes.
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'nines/web/v2.tgz', Body: 'not the release' }));
    const d = await cli(ctlDir, 'deploy', 'web', 'v2');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.equal(await (await request(`${proxyUrl}/`)).body.text(), 'v2');
    await waitFor('the fallback', () => /"source":"controller".*release unpacked/.test(agentLog()));
    assert.match(agentLog(), /NINES_E_ARTIFACT_CHECKSUM|checksum mismatch/);
  });

  test('storage down: the upload is refused with NINES_E_ARTIFACT_STORAGE and no release is recorded', async () => {
    await s3server?.close();
    s3server = undefined;
    const r = await cli(ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v3');
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /NINES_E_ARTIFACT_STORAGE/);
    const { releases } = await client.get<{ releases: ReleaseRecord[] }>('/v1/services/web/releases');
    assert.deepEqual(releases.map((x) => x.version).sort(), ['v1', 'v2']);
  });
});
