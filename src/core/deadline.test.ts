import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { deadline, withDeadline } from './deadline.js';

function gcPressure(): void {
  const junk: unknown[] = [];
  for (let i = 0; i < 200_000; i++) junk.push({ i });
}

test('fires after ms with a TimeoutError even when nothing else holds the timer (GC pressure)', async () => {
  const parent = new AbortController();
  const s = deadline(150, parent.signal);
  const t0 = performance.now();
  const reason = await new Promise<unknown>((resolve) => {
    s.addEventListener('abort', () => resolve(s.reason), { once: true });
    const iv = setInterval(gcPressure, 10);
    s.addEventListener('abort', () => clearInterval(iv), { once: true });
  });
  assert.equal((reason as DOMException).name, 'TimeoutError');
  assert.ok(performance.now() - t0 >= 140);
});

test('follows the parent: its reason, at once; an aborted parent gives an aborted signal', () => {
  const parent = new AbortController();
  const s = deadline(60_000, parent.signal);
  assert.equal(s.aborted, false);
  parent.abort(new Error('stop'));
  assert.equal(s.aborted, true);
  assert.equal((s.reason as Error).message, 'stop');
  assert.equal(deadline(60_000, parent.signal).aborted, true);
});

test('withDeadline: nothing stays on the parent once the call settled, resolved or rejected', async () => {
  const parent = new AbortController();
  for (let i = 0; i < 20; i++) {
    assert.equal(await withDeadline(60_000, parent.signal, async (s) => (s.aborted ? -1 : i)), i);
    await assert.rejects(
      withDeadline(60_000, parent.signal, async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
  }
  assert.equal(getEventListeners(parent.signal, 'abort').length, 0);
  // While a call runs, its deadline still follows the parent.
  const seen = withDeadline(
    60_000,
    parent.signal,
    (s) => new Promise((r) => s.addEventListener('abort', () => r(s.reason))),
  );
  parent.abort(new Error('stop'));
  assert.equal(((await seen) as Error).message, 'stop');
});

// Guard against the pattern that failed: a timeout signal only a composite refers to (see deadline.ts).
test('no AbortSignal.any() composes an inline AbortSignal.timeout() anywhere in src', () => {
  const root = join(fileURLToPath(import.meta.url), '..', '..', '..', 'src');
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('deadline.test.ts')) {
        const code = readFileSync(p, 'utf8')
          .split('\n')
          .filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l))
          .join('\n');
        if (/AbortSignal\.any\(\[[^\]]*AbortSignal\.timeout\(/.test(code)) offenders.push(p);
      }
    }
  };
  walk(root);
  assert.deepEqual(offenders, []);
});
