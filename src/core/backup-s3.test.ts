import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
// @ts-expect-error s3rver ships no types
import S3rver from 's3rver';
import { readBackup, type StateSnapshot, writeBackup } from './backup-file.js';
import {
  downloadBackup,
  listBackups,
  parseS3Url,
  pruneS3Backups,
  s3Client,
  uploadBackup,
} from './backup-s3.js';

/** Backups to S3-compatible storage, against s3rver (a real S3 API server on loopback). */
describe('backups in S3', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-s3-test-'));
  let server: { close(cb: () => void): void } | undefined;
  let endpoint = '';
  before(async () => {
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    const s = new S3rver({
      port: 0,
      address: '127.0.0.1',
      silent: true,
      directory: join(dir, 's3'),
      configureBuckets: [{ name: 'backups' }],
    });
    const addr = (await s.run()) as { port: number };
    server = s;
    endpoint = `http://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('uploads, lists, downloads the newest, and keeps the newest n', async () => {
    assert.deepEqual(parseS3Url('s3://backups/nines/prod/'), { bucket: 'backups', prefix: 'nines/prod' });
    assert.equal(parseS3Url('/var/backups'), undefined);
    const s3 = s3Client(endpoint);
    const loc = { bucket: 'backups', prefix: 'nines' };
    const key = Buffer.from('s'.repeat(32));
    const states: StateSnapshot[] = [];
    for (const day of [1, 2, 3]) {
      const state: StateSnapshot = {
        format: 'nines-state/1',
        createdAt: Date.UTC(2026, 0, day),
        migrations: ['0001_init'],
        tables: { services: { columns: ['name'], rows: [[`svc-${day}`]] } },
      };
      states.push(state);
      const local = await writeBackup(join(dir, 'local'), key, state, null);
      const url = await uploadBackup(s3, loc, local);
      assert.match(url, /^s3:\/\/backups\/nines\/nines-backup-2026010\dT000000Z$/);
    }
    assert.equal((await listBackups(s3, loc)).length, 3);
    const got = await downloadBackup(s3, loc, join(dir, 'down'));
    assert.deepEqual((await readBackup(got, key)).state, states[2]);
    assert.deepEqual(await pruneS3Backups(s3, loc, 2), ['nines-backup-20260101T000000Z']);
    assert.deepEqual(await listBackups(s3, loc), [
      'nines-backup-20260102T000000Z',
      'nines-backup-20260103T000000Z',
    ]);
    // A named backup can be fetched too.
    const named = await downloadBackup(
      s3,
      { bucket: 'backups', prefix: 'nines/nines-backup-20260102T000000Z' },
      join(dir, 'down2'),
    );
    assert.deepEqual((await readBackup(named, key)).state, states[1]);
    s3.destroy();
  });
});
