import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import type { ProxyReport } from '../core/protocol.js';
import { type Backend, sleep, snapshot, testEnv, waitFor } from './test-helpers.js';
import { FrameCursor } from './ws.js';

function inst(r: ProxyReport, id: string) {
  const s = r.instances.find((i) => i.id === id);
  assert.ok(s, `instance ${id} in report`);
  return s;
}

/** A backend that also speaks WebSocket: echoes `<name>:<message>`. */
function wsify(e: ReturnType<typeof testEnv>, b: Backend) {
  const wss = new WebSocketServer({ server: b.server });
  const closes: number[] = [];
  wss.on('connection', (ws) => {
    ws.on('message', (m) => ws.send(`${b.name}:${m.toString()}`));
    ws.on('close', (code) => closes.push(code));
  });
  e.defer(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  );
  return closes;
}

async function open(url: string, e: ReturnType<typeof testEnv>) {
  const ws = new WebSocket(url);
  e.defer(async () => ws.terminate());
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  ws.on('error', () => {});
  await once(ws, 'open');
  const ask = async (m: string) => {
    const got = once(ws, 'message');
    ws.send(m);
    return String((await got)[0]);
  };
  return { ws, closed, ask };
}

test('WebSocket: survives the drain of another instance, closed with 1001 on its own instance drain', async (t) => {
  const e = testEnv(t);
  const a = await e.backend('a');
  const b = await e.backend('b');
  const closesA = wsify(e, a);
  const closesB = wsify(e, b);
  const { proxy } = await e.proxy();
  const svc = (v: number, sa: 'ready' | 'draining', sb: 'ready' | 'draining') =>
    snapshot(v, [
      {
        wsDrainTimeoutMs: 300,
        instances: [
          { id: 'a', port: a.port, state: sa },
          { id: 'b', port: b.port, state: sb },
        ],
      },
    ]);
  proxy.applySnapshot(svc(1, 'ready', 'ready'));
  const w1 = await open(`ws://127.0.0.1:${proxy.port}/chat`, e);
  const w2 = await open(`ws://127.0.0.1:${proxy.port}/chat`, e);
  const first = await w1.ask('hi');
  const second = await w2.ask('hi');
  assert.deepEqual([first, second].sort(), ['a:hi', 'b:hi'], 'least-connections spread them');
  const [onA, onB] = first === 'a:hi' ? [w1, w2] : [w2, w1];
  assert.equal(inst(proxy.report(), 'a').inflight, 1, 'a WebSocket counts as in flight');

  // drain b: its WebSocket gets 1001 after wsDrainTimeoutMs; a's is untouched
  const drainStart = Date.now();
  proxy.applySnapshot(svc(2, 'ready', 'draining'));
  assert.equal(await onB.ask('still'), 'b:still', 'open until the WebSocket drain timeout');
  assert.equal(inst(proxy.report(), 'b').drained, false);
  assert.equal(await onB.closed, 1001);
  assert.ok(Date.now() - drainStart >= 280, 'not before the timeout');
  await waitFor('upstream saw 1001', () => closesB.includes(1001));
  await waitFor('b drained', () => inst(proxy.report(), 'b').drained);
  for (let i = 0; i < 5; i++) assert.equal(await onA.ask(`m${i}`), `a:m${i}`);

  // drain a (b back): a's WebSocket gets 1001 too
  proxy.applySnapshot(svc(3, 'draining', 'ready'));
  assert.equal(await onA.closed, 1001);
  await waitFor('upstream a saw 1001', () => closesA.includes(1001));
  await waitFor('a drained', () => inst(proxy.report(), 'a').drained);
  const w3 = await open(`ws://127.0.0.1:${proxy.port}/chat`, e);
  assert.equal(await w3.ask('new'), 'b:new');
});

test('WebSocket: large and fragmented messages pass intact; the frame cursor finds boundaries', async (t) => {
  const e = testEnv(t);
  const a = await e.backend('a');
  const wss = new WebSocketServer({ server: a.server });
  wss.on('connection', (ws) => ws.on('message', (m, isBinary) => ws.send(m, { binary: isBinary })));
  e.defer(() => new Promise<void>((r) => wss.close(() => r())));
  const { proxy } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }]));
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/`);
  e.defer(async () => ws.terminate());
  await once(ws, 'open');
  const big = Buffer.alloc(200_000, 7);
  const got = once(ws, 'message');
  ws.send(big);
  assert.ok(Buffer.from((await got)[0] as Buffer).equals(big));

  const c = new FrameCursor();
  // masked frame of 130 bytes (16-bit length) split across chunks, then a small unmasked one
  const f1 = Buffer.concat([Buffer.from([0x82, 0xfe, 0x00, 0x82, 1, 2, 3, 4]), Buffer.alloc(130)]);
  const f2 = Buffer.from([0x81, 0x02, 0x68, 0x69]);
  const all = Buffer.concat([f1, f2]);
  assert.equal(c.feed(all.subarray(0, 3), true), 0, 'at a boundary before anything');
  assert.equal(c.feed(all.subarray(0, 3), false), 3);
  assert.equal(c.feed(all.subarray(3, 100), true), -1);
  assert.equal(c.feed(all.subarray(100), true), f1.length - 100);
  assert.equal(c.feed(all.subarray(f1.length), false), f2.length);
  assert.ok(c.atBoundary);
});

test('SSE / chunked streaming is passed through unbuffered', async (t) => {
  const e = testEnv(t);
  const a = await e.backend('sse', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('data: one\n\n');
    const t1 = setTimeout(() => res.write('data: two\n\n'), 400);
    const t2 = setTimeout(() => res.end('data: three\n\n'), 800);
    res.on('close', () => {
      clearTimeout(t1);
      clearTimeout(t2);
    });
  });
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }]));
  const started = Date.now();
  const res = await client.pool.request({ path: '/events', method: 'GET' });
  const arrivals: [number, string][] = [];
  for await (const chunk of res.body) arrivals.push([Date.now() - started, String(chunk)]);
  assert.ok(arrivals[0]![0] < 300, `first event after ${arrivals[0]![0]} ms`);
  assert.match(arrivals[0]![1], /one/);
  const two = arrivals.find(([, s]) => s.includes('two'));
  assert.ok(two && two[0] >= 350 && two[0] < 750, `second event at ${two?.[0]} ms`);
  await sleep(1);
});
