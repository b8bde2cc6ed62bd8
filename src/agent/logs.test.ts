import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { incompleteTail, tailLines } from './logs.js';

const dir = mkdtempSync(join(tmpdir(), 'nines-logs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('tailLines: the last n lines, with and without a trailing newline', async () => {
  const f = join(dir, 'a.log');
  writeFileSync(f, 'one\ntwo\nthree\n');
  assert.equal(await tailLines(f, 14, 2), 'two\nthree\n');
  assert.equal(await tailLines(f, 14, 10), 'one\ntwo\nthree\n');
  writeFileSync(f, 'one\ntwo\nthree');
  assert.equal(await tailLines(f, 13, 1), 'three');
  writeFileSync(f, '');
  assert.equal(await tailLines(f, 0, 5), '');
});

test('tailLines: a file larger than the window drops the cut first line', async () => {
  const f = join(dir, 'big.log');
  const line = `${'x'.repeat(99)}\n`; // 100 bytes
  writeFileSync(f, line.repeat(20_000)); // 2 MB, twice the window
  const out = await tailLines(f, 2_000_000, 100_000);
  const lines = out.trimEnd().split('\n');
  assert.ok(
    lines.every((l) => l.length === 99),
    'no partial line',
  );
  assert.ok(lines.length >= 10_000 && lines.length < 10_486);
});

test('incompleteTail: keeps a UTF-8 sequence cut at the end for the next read', () => {
  const b = Buffer.from('aé€😀');
  assert.equal(incompleteTail(b, b.length), 0);
  assert.equal(incompleteTail(b, b.length - 1), 3); // 😀 has 4 bytes, 3 read
  assert.equal(incompleteTail(b, b.length - 3), 1);
  assert.equal(incompleteTail(b, 1 + 2 + 2), 2); // € cut after 2 of 3 bytes
  assert.equal(incompleteTail(b, 1 + 1), 1); // é cut after its lead byte
  assert.equal(incompleteTail(b, 1 + 2), 0);
});
