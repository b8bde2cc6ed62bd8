import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { rotateLogs } from './logrotate.js';

const dir = mkdtempSync(join(tmpdir(), 'nines-rotate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a log over the limit is copied to .1 and truncated while its writer keeps writing', async () => {
  const file = join(dir, 'web-1.log');
  // The writer holds the descriptor the way an instance does (opened for append, inherited).
  const fd = openSync(file, 'a');
  const child = spawn(
    process.execPath,
    [
      '-e',
      'let i=0;const t=setInterval(()=>{process.stdout.write(`line ${i++}\\n`);if(i===400)clearInterval(t)},1)',
    ],
    { stdio: ['ignore', fd, 'ignore'] },
  );
  const done = new Promise((r) => child.once('exit', r));
  const until = Date.now() + 10_000;
  while ((existsSync(file) ? statSync(file).size : 0) <= 100 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const rotated = await rotateLogs(dir, { maxBytes: 100, keep: 2, retentionMs: 3600_000 });
  assert.deepEqual(rotated, ['web-1.log']);
  await done;
  const old = readFileSync(`${file}.1`, 'utf8');
  const now = readFileSync(file, 'utf8');
  assert.match(old, /^line 0\n/);
  // After the truncate the writer's appends start at the new end: no hole of NUL bytes.
  assert.ok(!now.includes('\0'), 'no sparse hole after truncate');
  assert.match(now, /line 399\n$/);
  assert.ok(statSync(file).size < statSync(`${file}.1`).size + 400 * 12);
});

test('generations shift and the oldest beyond keep is dropped', async () => {
  const file = join(dir, 'api-1.log');
  for (const gen of ['first', 'second', 'third']) {
    writeFileSync(file, `${gen}\n`.repeat(50));
    await rotateLogs(dir, { maxBytes: 10, keep: 2, retentionMs: 3600_000 });
  }
  assert.equal(readFileSync(`${file}.1`, 'utf8').split('\n')[0], 'third');
  assert.equal(readFileSync(`${file}.2`, 'utf8').split('\n')[0], 'second');
  assert.equal(existsSync(`${file}.3`), false);
  assert.equal(readFileSync(file, 'utf8'), '');
});

test('logs untouched past retention are deleted, small fresh ones left alone', async () => {
  const stale = join(dir, 'gone-1.log');
  const fresh = join(dir, 'live-1.log');
  writeFileSync(stale, 'x\n');
  writeFileSync(`${stale}.1`, 'x\n');
  writeFileSync(fresh, 'y\n');
  const old = new Date(Date.now() - 8 * 24 * 3600 * 1000);
  utimesSync(stale, old, old);
  utimesSync(`${stale}.1`, old, old);
  await rotateLogs(dir, { maxBytes: 1000, keep: 3, retentionMs: 7 * 24 * 3600 * 1000 });
  assert.equal(existsSync(stale), false);
  assert.equal(existsSync(`${stale}.1`), false);
  assert.equal(readFileSync(fresh, 'utf8'), 'y\n');
});
