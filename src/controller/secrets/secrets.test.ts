import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { envFileText, writeSecretsFile } from '../../agent/secrets.js';
import type { HostDesiredState } from '../../core/protocol.js';
import { redactOptions } from '../../core/redact.js';
import { Hub } from '../hub.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/types.js';
import { Secrets } from './index.js';
import { KEY_FILE, Keyring, keyId, NEXT_KEY_FILE, PREV_KEY_FILE } from './keyring.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'nines-secrets-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const logger = pino({ level: 'silent' });

async function setup(dir = tmp()): Promise<{ store: Store; secrets: Secrets; dir: string }> {
  const store = await openSqliteStore({ file: ':memory:' });
  await store.upsertService('api', {
    command: 'node server.js',
  } as unknown as Parameters<Store['upsertService']>[1]);
  const secrets = new Secrets({ store, hub: new Hub(), logger, dataDir: dir });
  await secrets.init();
  return { store, secrets, dir };
}

const desired = (hostId: string): HostDesiredState => ({
  hostId,
  generation: 1,
  instances: [
    {
      id: 'api-1',
      service: 'api',
      release: { version: 'v1', sha256: 'x', size: 1, url: '/x' },
      command: 'node server.js',
      env: { FROM_RELEASE: '1', LOG_LEVEL: 'info' },
      health: { path: '/', intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 1 },
      drainTimeoutMs: 1000,
      desired: 'running',
    },
  ],
});

describe('keyring', () => {
  it('seals with AES-256-GCM bound to the row, and refuses tampering or another row', () => {
    const ring = Keyring.of(randomBytes(32));
    const sealed = ring.seal('hunter2', 'api', 'production', 'DB_PASSWORD');
    assert.match(sealed, /^v1\.[0-9a-f]{8}\./);
    assert.ok(!sealed.includes('hunter2'));
    assert.equal(ring.open(sealed, 'api', 'production', 'DB_PASSWORD'), 'hunter2');
    assert.throws(() => ring.open(sealed, 'api', 'staging', 'DB_PASSWORD'), /NINES_E_SECRETS_KEY|altered/);
    const parts = sealed.split('.');
    parts[4] = Buffer.from('hunter3').toString('base64url');
    assert.throws(() => ring.open(parts.join('.'), 'api', 'production', 'DB_PASSWORD'), {
      code: 'NINES_E_SECRETS_KEY',
    });
    assert.throws(() => Keyring.of(randomBytes(32)).open(sealed, 'api', 'production', 'DB_PASSWORD'), {
      code: 'NINES_E_SECRETS_KEY',
    });
  });

  it('creates secrets.key with mode 0600 and refuses a key file others can read', () => {
    const dir = tmp();
    const ring = Keyring.open(dir);
    assert.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600);
    assert.equal(ring.currentId, keyId(Buffer.from(readFileSync(join(dir, KEY_FILE), 'utf8').trim(), 'hex')));
    const bad = tmp();
    writeFileSync(join(bad, KEY_FILE), `${randomBytes(32).toString('hex')}\n`, { mode: 0o644 });
    assert.throws(() => Keyring.open(bad), { code: 'NINES_E_SECRETS_KEY' });
  });
});

describe('secrets', () => {
  it('stores secrets sealed, lists names and versions only, bumps versions', async () => {
    const { store, secrets } = await setup();
    const v1 = await secrets.set({
      service: 'api',
      name: 'DB_PASSWORD',
      kind: 'secret',
      value: 's3cr3t',
      by: 't',
    });
    assert.equal(v1.version, 1);
    assert.equal('value' in v1, false);
    const v2 = await secrets.set({
      service: 'api',
      name: 'DB_PASSWORD',
      kind: 'secret',
      value: 's3cr3t2',
      by: 't',
    });
    assert.equal(v2.version, 2);
    await secrets.set({ service: 'api', name: 'LOG_LEVEL', kind: 'var', value: 'debug', by: 't' });
    const rows = await store.listSecrets();
    assert.equal(rows.length, 2);
    assert.ok(
      rows.every((r) => !r.value.includes('s3cr3t')),
      'a secret is stored in the clear',
    );
    const list = await secrets.list('api', 'production');
    assert.deepEqual(
      list.map((s) => [s.name, s.kind, s.version, s.value]),
      [
        ['DB_PASSWORD', 'secret', 2, undefined],
        ['LOG_LEVEL', 'var', 1, 'debug'],
      ],
    );
    await assert.rejects(secrets.set({ service: 'api', name: '1BAD', kind: 'var', value: 'x', by: 't' }), {
      code: 'NINES_E_VALIDATION',
    });
    await assert.rejects(secrets.set({ service: 'api', name: 'PORT', kind: 'var', value: '1', by: 't' }), {
      code: 'NINES_E_VALIDATION',
    });
    await assert.rejects(secrets.remove('api', undefined, 'NOPE', 't'), { code: 'NINES_E_SECRET_NOT_FOUND' });
    await store.close();
  });

  it('gives secrets only to the host that signed its own poll, variables to every poll', async () => {
    const { store, secrets } = await setup();
    await secrets.set({ service: 'api', name: 'DB_PASSWORD', kind: 'secret', value: 'pw', by: 't' });
    await secrets.set({ service: 'api', name: 'LOG_LEVEL', kind: 'var', value: 'debug', by: 't' });
    await secrets.set({
      service: 'api',
      name: 'OTHER_ENV',
      kind: 'secret',
      value: 'no',
      environment: 'staging',
      by: 't',
    });
    const own = await secrets.forHost(desired('h-1'), 'h-1');
    assert.deepEqual(own.instances[0]?.secrets, { DB_PASSWORD: 'pw' });
    assert.deepEqual(own.instances[0]?.env, { FROM_RELEASE: '1', LOG_LEVEL: 'debug' });
    const bearer = await secrets.forHost(desired('h-1'), undefined);
    assert.equal(bearer.instances[0]?.secrets, undefined);
    assert.equal(bearer.instances[0]?.env.LOG_LEVEL, 'debug');
    const other = await secrets.forHost(desired('h-1'), 'h-2');
    assert.equal(other.instances[0]?.secrets, undefined);
    await store.close();
  });

  it('rotates the key: every secret re-sealed, old key kept as .prev, an interrupted rotation finished at start', async () => {
    const dir = tmp();
    const { store, secrets } = await setup(dir);
    await secrets.set({ service: 'api', name: 'A', kind: 'secret', value: 'one', by: 't' });
    await secrets.set({ service: 'api', name: 'B', kind: 'secret', value: 'two', by: 't' });
    const before = readFileSync(join(dir, KEY_FILE), 'utf8');
    const r = await secrets.rotateKey('t');
    assert.equal(r.resealed, 2);
    assert.equal(readFileSync(join(dir, PREV_KEY_FILE), 'utf8'), before);
    assert.ok((await store.listSecrets()).every((s) => s.value.split('.')[1] === r.keyId));
    assert.equal((await secrets.list('api'))[0]?.version, 1, 'rotation does not change versions');
    const own = await secrets.forHost(desired('h'), 'h');
    assert.deepEqual(own.instances[0]?.secrets, { A: 'one', B: 'two' });

    // A crash after step 1 (next key written): a new controller finishes the rotation.
    writeFileSync(join(dir, NEXT_KEY_FILE), `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const again = new Secrets({ store, hub: new Hub(), logger, dataDir: dir });
    await again.init();
    assert.throws(() => statSync(join(dir, NEXT_KEY_FILE)));
    const id = Keyring.open(dir).currentId;
    assert.ok((await store.listSecrets()).every((s) => s.value.split('.')[1] === id));
    assert.deepEqual((await again.forHost(desired('h'), 'h')).instances[0]?.secrets, { A: 'one', B: 'two' });
    await store.close();
  });
});

describe('a controller without the key', () => {
  it('refuses to start with a new key when the store holds secrets sealed by another, and makes no key file', async () => {
    const { store, secrets } = await setup();
    await secrets.set({ service: 'api', name: 'A', kind: 'secret', value: 'one', by: 't' });
    const other = tmp();
    const second = new Secrets({ store, hub: new Hub(), logger, dataDir: other });
    await assert.rejects(second.init(), { code: 'NINES_E_SECRETS_KEY' });
    assert.throws(() => statSync(join(other, KEY_FILE)), 'no key file is left behind');
    await store.close();
  });
});

describe('agent env file and log redaction', () => {
  it('writes the env file with mode 0600 and dotenv escapes', () => {
    const dir = join(tmp(), 'secrets');
    const file = writeSecretsFile(dir, 'api-1', { B: 'a "q" $x\nz', A: 'plain' });
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(readFileSync(file, 'utf8'), 'A="plain"\nB="a \\"q\\" \\$x\\nz"\n');
    assert.equal(envFileText({}), '');
  });

  it('pino drops secret values and credentials', () => {
    const lines: string[] = [];
    const log = pino({ redact: redactOptions }, { write: (s: string) => lines.push(s) });
    log.info({ spec: { secrets: { DB: 'pw-1' } } }, 'a');
    log.info({ instances: [{ secrets: { DB: 'pw-2' } }] }, 'b');
    log.info({ req: { headers: { authorization: 'Bearer tok-3' } } }, 'c');
    log.info({ body: { value: 'pw-4' } }, 'd');
    const text = lines.join('');
    for (const s of ['pw-1', 'pw-2', 'tok-3', 'pw-4'])
      assert.ok(!text.includes(s), `${s} was logged: ${text}`);
  });
});
