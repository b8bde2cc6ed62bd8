import assert from 'node:assert/strict';
import test from 'node:test';
import { LATENCY_BOUNDS_MS } from '../core/protocol.js';
import { LATENCY_BUCKETS } from './metrics.js';
import { parseSnapshot } from './snapshot.js';
import { snapshot, testEnv } from './test-helpers.js';

test('preview group: X-Nines-Preview or a preview host reaches it; other traffic never does', async (t) => {
  const e = testEnv(t);
  const blue = await e.backend('blue', (_q, res, s) => res.end(s.name));
  const green = await e.backend('green', (_q, res, s) => res.end(s.name));
  const { proxy, client } = await e.proxy();
  // Through the link's parser, as a snapshot from the controller arrives.
  proxy.applySnapshot(
    parseSnapshot(
      snapshot(1, [
        { name: 'web', instances: [{ id: 'blue', port: blue.port }] },
        {
          name: 'web~preview',
          previewOf: 'web',
          hosts: ['preview.test'],
          instances: [{ id: 'green', port: green.port }],
        },
      ]),
    ),
  );
  for (let i = 0; i < 20; i++) assert.equal((await client.req('/')).text, 'blue');
  assert.equal((await client.req('/', { headers: { 'x-nines-preview': '1' } })).text, 'green');
  assert.equal((await client.req('/', { headers: { host: 'preview.test' } })).text, 'green');
  assert.equal(green.hits, 2, 'the preview header is not forwarded, and nothing else reached green');
  // The switch: one snapshot, green in the service and blue out of rotation (weight 0).
  proxy.applySnapshot(
    snapshot(2, [
      {
        name: 'web',
        balance: 'weighted',
        instances: [
          { id: 'blue', port: blue.port, weight: 0 },
          { id: 'green', port: green.port, weight: 1 },
        ],
      },
    ]),
  );
  for (let i = 0; i < 20; i++) assert.equal((await client.req('/')).text, 'green');
  // Without a preview group the header changes nothing.
  assert.equal((await client.req('/', { headers: { 'x-nines-preview': '1' } })).text, 'green');
});

test('report: per-instance requests, 5xx and latency buckets (what the deploy analysis reads)', async (t) => {
  assert.deepEqual(
    LATENCY_BUCKETS.map((s) => s * 1000),
    [...LATENCY_BOUNDS_MS],
    'proxy buckets and protocol bounds agree',
  );
  const e = testEnv(t);
  let n = 0;
  const a = await e.backend('a', (_q, res) => {
    res.statusCode = ++n % 4 === 0 ? 503 : 200;
    res.end('x');
  });
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }]));
  for (let i = 0; i < 40; i++) await client.req('/');
  const s = proxy.report().instances.find((i) => i.id === 'a');
  assert.equal(s?.requests, 40);
  assert.equal(s?.failed, 10);
  assert.equal(s?.latency?.length, LATENCY_BOUNDS_MS.length + 1);
  assert.equal(
    s?.latency?.reduce((x, y) => x + y, 0),
    40,
  );
});
