import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import type { StatusView } from '../controller/status.js';
import type { HostDesiredState } from '../core/protocol.js';
import { cleanup, cli, cliPath, serviceYaml, startUp, tempDir, type Up } from './harness.js';

/**
 * Secrets and variables end to end: set with the CLI, sealed in the store, shown never again, delivered
 * to the instance's host on its own signed poll, written to a 0600 env file and the process's
 * environment at the next start (a deploy), and absent from every log and from the store file.
 */
const APP = `import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  const file = process.env.NINES_SECRETS_FILE ? readFileSync(process.env.NINES_SECRETS_FILE, 'utf8') : '';
  res.end(JSON.stringify({ db: process.env.DB_PASSWORD ?? null, level: process.env.LOG_LEVEL ?? null, file }));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const SECRET = 'pw-7c1f0e2a9b-never-logged';
const FILE_SECRET = 'api-key-from-file-5d2e';

describe('secrets and variables', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  const app = join(root, 'app');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('set, deployed to the instance (env + 0600 file), never shown, never logged, sealed in the store', async () => {
    mkdirSync(app);
    writeFileSync(join(app, 'server.js'), APP);
    writeFileSync(join(app, 'package.json'), '{"type":"module"}\n');
    up = await startUp({ dataDir, config: serviceYaml({ source: app, instances: 1 }) });

    const set = await cli(dataDir, 'secrets', 'set', 'web', 'DB_PASSWORD', SECRET);
    assert.equal(set.code, 0, set.stdout + set.stderr);
    assert.match(set.stdout, /DB_PASSWORD of web \(production\) is at version 1/);
    assert.ok(!set.stdout.includes(SECRET));
    writeFileSync(join(root, 'api-key'), FILE_SECRET);
    const fromFile = await cli(
      dataDir,
      'secrets',
      'set',
      'web',
      'API_KEY',
      '--from-file',
      join(root, 'api-key'),
    );
    assert.equal(fromFile.code, 0, fromFile.stderr);
    // From stdin (out of the shell history and of `ps`).
    const piped = spawnSync(
      process.execPath,
      [cliPath, '--data-dir', dataDir, 'secrets', 'set', 'web', 'DB_PASSWORD'],
      {
        input: `${SECRET}\n`,
        encoding: 'utf8',
      },
    );
    assert.equal(piped.status, 0, piped.stderr);
    assert.match(piped.stdout, /version 2/);
    const empty = spawnSync(
      process.execPath,
      [cliPath, '--data-dir', dataDir, 'secrets', 'set', 'web', 'X'],
      {
        input: '',
        encoding: 'utf8',
      },
    );
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /NINES_E_VALIDATION: no value on stdin/);
    const v = await cli(dataDir, 'vars', 'set', 'web', 'LOG_LEVEL', 'debug');
    assert.equal(v.code, 0, v.stderr);

    // Refused with codes, nothing changed.
    const bad = await cli(dataDir, 'secrets', 'set', 'web', 'not-a-name', 'x');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /NINES_E_VALIDATION/);
    const noSvc = await cli(dataDir, 'secrets', 'set', 'nope', 'A', 'x');
    assert.match(noSvc.stderr, /NINES_E_SERVICE_NOT_FOUND/);
    const rm = await cli(dataDir, 'secrets', 'rm', 'web', 'MISSING');
    assert.match(rm.stderr, /NINES_E_SECRET_NOT_FOUND/);

    // Listing: names and versions, never a secret's value (human and JSON).
    const list = await cli(dataDir, 'secrets', 'list', 'web');
    assert.match(list.stdout, /DB_PASSWORD\s+2/);
    assert.match(list.stdout, /API_KEY\s+1/);
    const json = await cli(dataDir, '--json', 'secrets', 'list', 'web');
    assert.ok(!json.stdout.includes(SECRET) && !json.stdout.includes(FILE_SECRET), json.stdout);
    const vars = await cli(dataDir, 'vars', 'list', 'web');
    assert.match(vars.stdout, /LOG_LEVEL\s+debug\s+1/);

    // The next start gets them: a deploy of a new release.
    assert.equal((await cli(dataDir, 'release', 'web', app, '--version', 'v2')).code, 0);
    const d = await cli(dataDir, 'deploy', 'web', 'v2');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    const res = await request(`${up.info.proxyUrl}/`);
    const body = JSON.parse(await res.body.text()) as { db: string; level: string; file: string };
    assert.equal(body.db, SECRET);
    assert.equal(body.level, 'debug');
    assert.match(body.file, new RegExp(`API_KEY="${FILE_SECRET}"`));
    assert.match(body.file, new RegExp(`DB_PASSWORD="${SECRET}"`));

    const status = await up.client.get<StatusView>('/v1/status');
    const inst = status.instances[0];
    assert.ok(inst);
    const envFile = join(dataDir, 'agent', 'secrets', `${inst.id}.env`);
    assert.equal(statSync(envFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(dataDir, 'agent', 'secrets')).mode & 0o777, 0o700);

    // An admin token reading a host's desired state sees variables, never secrets: those go only to
    // the host's own signed poll.
    const { hosts } = await up.client.get<{ hosts: { id: string }[] }>('/v1/hosts');
    const desired = await up.client.get<HostDesiredState>(
      `/v1/agent/desired?hostId=${encodeURIComponent(hosts[0]?.id ?? '')}`,
    );
    assert.equal(desired.instances[0]?.env.LOG_LEVEL, 'debug');
    assert.equal(desired.instances[0]?.secrets, undefined);

    // Not in any log (debug level), not in clear in the store.
    const logs = join(dataDir, 'logs');
    for (const f of readdirSync(logs)) {
      const text = readFileSync(join(logs, f), 'utf8');
      assert.ok(!text.includes(SECRET) && !text.includes(FILE_SECRET), `a secret is in ${f}`);
    }
    for (const f of readdirSync(dataDir).filter((x) => x.startsWith('nines.db'))) {
      const bytes = readFileSync(join(dataDir, f));
      assert.equal(bytes.indexOf(SECRET), -1, `a secret is in the clear in ${f}`);
    }
    assert.equal(statSync(join(dataDir, 'secrets.key')).mode & 0o777, 0o600);

    // Rotation keeps every secret readable.
    const rot = await cli(dataDir, 'secrets', 'rotate-key');
    assert.equal(rot.code, 0, rot.stderr);
    assert.match(rot.stdout, /2 secrets re-sealed/);
    const removed = await cli(dataDir, 'secrets', 'rm', 'web', 'API_KEY');
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await cli(dataDir, 'release', 'web', app, '--version', 'v3')).code, 0);
    assert.equal((await cli(dataDir, 'deploy', 'web', 'v3')).code, 0);
    const after3 = JSON.parse(await (await request(`${up.info.proxyUrl}/`)).body.text()) as {
      db: string;
      file: string;
    };
    assert.equal(after3.db, SECRET);
    assert.ok(!after3.file.includes('API_KEY'), after3.file);
  });
});
