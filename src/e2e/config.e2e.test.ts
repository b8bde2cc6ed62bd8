import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cleanup, cli, tempDir } from './harness.js';

/** Issue 2, test 5: an invalid nines.yaml is refused with its code and the bad field; nothing is created. */

const root = tempDir();
after(() => cleanup(root));

test('nines up refuses an invalid nines.yaml, names the field, creates nothing', async () => {
  const file = join(root, 'nines.yaml');
  writeFileSync(
    file,
    'services:\n  web:\n    command: node server.js\n    instances: -3\n    rolling: { maxSurge: 0, maxUnavailable: 0 }\n',
  );
  const dataDir = join(root, 'data');
  const r = await cli(dataDir, 'up', '--config', file, '--api-port', '0', '--proxy-port', '0');
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /NINES_E_CONFIG_INVALID/);
  assert.match(r.stderr, /nines\.yaml:4 services\.web\.instances/);
  assert.match(r.stderr, /cannot both be 0/);
  assert.equal(existsSync(dataDir), false, 'no data directory was created');
});

test('the CLI says where the controller is missing, with exit code 3', async () => {
  const r = await cli(join(root, 'nowhere'), 'status');
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /NINES_E_UNREACHABLE/);
});

test('releasing a path that does not exist is refused before anything is sent', async () => {
  const r = await cli(
    join(root, 'nowhere'),
    '--url',
    'http://127.0.0.1:1',
    '--token',
    'x',
    'release',
    'web',
    join(root, 'no-such-dir'),
    '--version',
    'v2',
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /NINES_E_VALIDATION: .*no-such-dir does not exist/);
});
