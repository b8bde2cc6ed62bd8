import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { StatusView } from '../controller/status.js';
import type { ConfigPlan } from '../core/config-diff.js';
import { cleanup, cli, cliPath, fixture, serviceYaml, startUp, tempDir, type Up } from './harness.js';

/**
 * Config as code against a real `nines up`: plan shows field-by-field changes and changes nothing,
 * apply makes them, a hand-made change shows up as drift (exit 1) naming who made it.
 */
describe('nines plan / apply / diff', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  const file = join(root, 'edited.yaml');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  test('plan, apply, drift', async () => {
    const yaml = serviceYaml({ source: fixture('graceful'), instances: 2 });
    up = await startUp({ dataDir, config: yaml });

    // Same file as `up` applied: nothing to do, no drift.
    writeFileSync(file, yaml);
    const same = await cli(dataDir, 'plan', '-f', file);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /no changes/);
    const clean = await cli(dataDir, 'diff', '-f', file);
    assert.equal(clean.code, 0, clean.stderr);

    // Edited: 2 → 3 instances, a new env var, a new service. Plan changes nothing on the controller.
    writeFileSync(
      file,
      serviceYaml({ source: fixture('graceful'), instances: 3, env: { GREETING: 'hi' } }) +
        serviceYaml({ name: 'api', source: fixture('graceful'), instances: 1 }).replace('services:\n', ''),
    );
    const plan = await cli(dataDir, 'plan', '-f', file);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /^~ service web$/m);
    assert.match(plan.stdout, /^ {4}~ instances: 2 → 3$/m);
    assert.match(plan.stdout, /^ {4}\+ env\.GREETING: "hi"$/m);
    assert.match(plan.stdout, /^\+ service api /m);
    assert.match(plan.stdout, /1 to add, 1 to change, 0 to remove/);
    const json = await cli(dataDir, '--json', 'plan', '-f', file);
    const parsed = JSON.parse(json.stdout) as ConfigPlan;
    assert.deepEqual(
      parsed.changes.map((c) => [c.service, c.kind]),
      [
        ['api', 'add'],
        ['web', 'change'],
      ],
    );
    let s = await up.client.get<StatusView>('/v1/status');
    assert.equal(s.services.length, 1, 'plan must not change anything');

    const apply = await cli(dataDir, 'apply', '-f', file);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.match(apply.stdout, /env\.GREETING apply to instances started from now on/);
    assert.match(apply.stdout, /deploying api v1/);
    const deadline = Date.now() + 20_000;
    for (;;) {
      s = await up.client.get<StatusView>('/v1/status');
      const ready = (svc: string) =>
        s.instances.filter((i) => i.service === svc && i.route === 'ready' && i.healthy).length;
      if (ready('web') === 3 && ready('api') === 1) break;
      assert.ok(Date.now() < deadline, `not converged: ${JSON.stringify(s.instances)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const after = await cli(dataDir, 'plan', '-f', file);
    assert.match(after.stdout, /no changes/);

    // Someone scales by hand: drift, exit 1, naming the field and who changed it.
    const scale = await cli(dataDir, 'scale', 'web', '2', '--no-wait');
    assert.equal(scale.code, 0, scale.stderr);
    const drift = await cli(dataDir, 'diff', '-f', file);
    assert.equal(drift.code, 1, drift.stdout + drift.stderr);
    assert.match(drift.stdout, /^ {4}~ instances: 2 → 3$/m);
    assert.match(drift.stdout, /web: last changed .* updated by admin/);
  });

  test('a bad file is refused with its code and line, and changes nothing', async () => {
    assert.ok(up);
    writeFileSync(file, 'services:\n  web:\n    command: node server.js\n    instances: lots\n');
    const r = await cli(dataDir, 'apply', '-f', file);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /NINES_E_CONFIG_INVALID/);
    assert.match(r.stderr, /:4 services\.web\.instances/);
    const missing = await cli(dataDir, 'plan', '-f', join(root, 'nope.yaml'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /NINES_E_CONFIG_NOT_FOUND/);
  });
});

describe('nines completion', () => {
  test('bash: the generated function completes commands, subcommands and options in a real bash', () => {
    const script = spawnSync(process.execPath, [cliPath, 'completion', 'bash'], { encoding: 'utf8' });
    assert.equal(script.status, 0, script.stderr);
    const probe = (words: string[]) => {
      const r = spawnSync(
        'bash',
        [
          '-c',
          `${script.stdout}\nCOMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}; _nines_complete; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim().split('\n').filter(Boolean);
    };
    assert.deepEqual(probe(['nines', 'sca']), ['scale']);
    assert.deepEqual(probe(['nines', 'hosts', '']).sort(), [
      '--help',
      'cordon',
      'drain',
      'list',
      'patch',
      'revoke',
      'states',
      'uncordon',
    ]);
    assert.ok(probe(['nines', 'deploy', '--n']).includes('--no-wait'));
    assert.ok(probe(['nines', 'plan', '--']).includes('--file'));
  });

  test('zsh: the script parses (zsh -n)', (t) => {
    const has = spawnSync('zsh', ['--version']);
    if (has.error) {
      t.skip('zsh is not installed (Debian package `zsh`; .ci/run installs it)');
      return;
    }
    const script = spawnSync(process.execPath, [cliPath, 'completion', 'zsh'], { encoding: 'utf8' });
    assert.match(script.stdout, /^#compdef nines/);
    const r = spawnSync('zsh', ['-n'], { input: script.stdout, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  test('an unknown shell is refused with a code', () => {
    const r = spawnSync(process.execPath, [cliPath, 'completion', 'fish'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /NINES_E_VALIDATION/);
  });
});
