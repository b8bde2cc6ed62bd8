import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LinePrefixer, LogRelay } from './logs.js';

test('LinePrefixer: lines split across chunks and instances come out whole and prefixed', () => {
  let out = '';
  const p = new LinePrefixer((t) => {
    out += t;
  });
  p.push('a', 'hel');
  p.push('b', 'one\ntw');
  p.push('a', 'lo\nwor');
  p.push('b', 'o\n');
  p.flush('a');
  p.flush('b');
  assert.equal(out, '[b] one\n[a] hello\n[b] two\n[a] wor\n');
});

test('LogRelay: requests per host, delivery only by the owning host, closed on done', () => {
  const signals: string[] = [];
  const relay = new LogRelay({ signal: (t) => signals.push(t) });
  const got: string[] = [];
  const id = relay.request('h1', 'web-1', 10, false, { chunk: (i, c) => got.push(`${i}:${c.data}`) });
  assert.deepEqual(signals, ['logs:h1']);
  assert.deepEqual(
    relay.forHost('h1').map((r) => r.instanceId),
    ['web-1'],
  );
  assert.deepEqual(relay.forHost('h2'), []);
  assert.equal(relay.deliver(id, 'h2', { data: 'x' }), false, 'another host cannot write');
  assert.equal(relay.deliver(id, 'h1', { data: 'x' }), true);
  assert.equal(relay.deliver(id, 'h1', { data: 'y', done: true }), true);
  assert.equal(relay.deliver(id, 'h1', { data: 'z' }), false, 'closed after done');
  assert.deepEqual(got, ['web-1:x', 'web-1:y']);
  assert.deepEqual(relay.forHost('h1'), []);
});
