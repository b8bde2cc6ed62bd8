import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  EMPTY_SHA256,
  NonceCache,
  newHostKey,
  parseAuthorization,
  sha256Hex,
  signature,
  signRequest,
  verify,
} from './signing.js';

const key = newHostKey();
const url = '/v1/agent/report';
const body = JSON.stringify({ hostId: 'h-1', generation: 3, instances: [] });
const now = 1_700_000_000_000;

function signed(o: { method?: string; url?: string; body?: string; at?: number } = {}) {
  const h = signRequest('h-1', key, o.method ?? 'POST', o.url ?? url, o.body ?? body, o.at ?? now);
  const a = parseAuthorization(h.authorization ?? '');
  assert.ok(a);
  return { a, bodySha: h['x-nines-content-sha256'] ?? '' };
}

test('a signed request verifies, and the signature covers method, path, query, time, nonce and body', () => {
  const { a, bodySha } = signed();
  assert.equal(a.hostId, 'h-1');
  assert.equal(a.timestamp, now);
  assert.equal(bodySha, sha256Hex(body));
  assert.equal(verify(key, a, 'POST', url, bodySha, now + 1000, 300_000), 'ok');
  assert.equal(verify(key, a, 'PUT', url, bodySha, now, 300_000), 'bad-signature');
  assert.equal(verify(key, a, 'POST', '/v1/agent/register', bodySha, now, 300_000), 'bad-signature');
  assert.equal(verify(key, a, 'POST', `${url}?x=1`, bodySha, now, 300_000), 'bad-signature');
  assert.equal(verify(key, a, 'POST', url, sha256Hex(`${body} `), now, 300_000), 'bad-signature');
  assert.equal(verify(newHostKey(), a, 'POST', url, bodySha, now, 300_000), 'bad-signature');
  assert.equal(
    verify(key, { ...a, nonce: 'f'.repeat(32) }, 'POST', url, bodySha, now, 300_000),
    'bad-signature',
  );
  assert.equal(
    verify(key, { ...a, timestamp: now + 1 }, 'POST', url, bodySha, now, 300_000),
    'bad-signature',
  );
});

test('the query is signed exactly as sent', () => {
  const q = '/v1/agent/desired?hostId=h-1&after=3&wait=25';
  const { a } = signed({ method: 'GET', url: q, body: '' });
  assert.equal(verify(key, a, 'GET', q, EMPTY_SHA256, now, 300_000), 'ok');
  assert.equal(
    verify(key, a, 'GET', q.replace('after=3', 'after=4'), EMPTY_SHA256, now, 300_000),
    'bad-signature',
  );
});

test('a request outside the window is expired, in either direction', () => {
  const { a, bodySha } = signed();
  assert.equal(verify(key, a, 'POST', url, bodySha, now + 300_000, 300_000), 'ok');
  assert.equal(verify(key, a, 'POST', url, bodySha, now + 600_000, 300_000), 'expired');
  assert.equal(verify(key, a, 'POST', url, bodySha, now - 300_001, 300_000), 'expired');
});

test('malformed authorization headers do not parse', () => {
  for (const h of [
    'Bearer x',
    'NINES-HMAC-SHA256 host=h,ts=1,nonce=zz,sig=00',
    `NINES-HMAC-SHA256 host=h ts=1,nonce=${'a'.repeat(32)},sig=${'b'.repeat(64)}`,
    `NINES-HMAC-SHA256 host=h/../x,ts=1,nonce=${'a'.repeat(32)},sig=${'b'.repeat(64)}`,
  ]) {
    assert.equal(parseAuthorization(h), undefined, h);
  }
  assert.equal(
    signature(key, { method: 'get', url: '/a', timestamp: 1, nonce: 'n', bodySha256: 'x' }).length,
    64,
  );
});

test('a nonce is accepted once per host within the window, and forgotten after it', () => {
  const c = new NonceCache(300_000);
  assert.equal(c.remember('h-1', 'n1', now, now), true);
  assert.equal(c.remember('h-1', 'n1', now, now + 10), false);
  assert.equal(c.remember('h-2', 'n1', now, now + 10), true, 'nonces are per host');
  c.remember('h-1', 'n2', now + 700_000, now + 700_000);
  assert.equal(c.size, 1, 'entries past the window are swept');
});
