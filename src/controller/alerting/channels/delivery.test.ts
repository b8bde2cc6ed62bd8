import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ackToken, ackUrl, verifyAckToken } from './ack.js';
import {
  backoffDelay,
  claimDecision,
  DEFAULT_RETRY,
  deliverWithRetry,
  deliveryKey,
  parseRetryAfter,
} from './delivery.js';

describe('Retry-After', () => {
  it('parses seconds and HTTP dates', () => {
    const now = Date.UTC(2015, 9, 21, 7, 27, 0);
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now), 0, 'a past date means now');
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe('backoff', () => {
  it('doubles, caps, and jitters within [half, full]', () => {
    const p = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(
      backoffDelay(1, p, () => 0),
      50,
    );
    assert.equal(
      backoffDelay(1, p, () => 1),
      100,
    );
    assert.equal(
      backoffDelay(3, p, () => 1),
      400,
    );
    assert.equal(
      backoffDelay(10, p, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(10, p, () => 0),
      500,
    );
  });

  it('retries with the injected clock and records each wait; a too-long Retry-After defers', async () => {
    const waits: number[] = [];
    let calls = 0;
    const r = await deliverWithRetry(
      'c',
      async () =>
        ++calls < 3
          ? { ok: false, status: 503, retryable: true }
          : { ok: true, status: 200, retryable: false },
      { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 1000 },
      { sleep: async (ms) => waits.push(ms), random: () => 1, now: () => 0 },
    );
    assert.equal(r.ok, true);
    assert.deepEqual(waits, [100, 200]);
    assert.deepEqual(
      r.attempts.map((a) => a.retryInMs),
      [100, 200, undefined],
    );
    const d = await deliverWithRetry(
      'c',
      async () => ({ ok: false, status: 429, retryable: true, retryAfterMs: 3_600_000 }),
      DEFAULT_RETRY,
      { sleep: async () => {} },
    );
    assert.equal(d.ok, false);
    assert.match(d.error ?? '', /deferred/);
    assert.equal(d.attempts.length, 1);
    const thrown = await deliverWithRetry(
      'c',
      async () => {
        throw new Error('boom');
      },
      { ...DEFAULT_RETRY, maxAttempts: 2 },
      { sleep: async () => {} },
    );
    assert.deepEqual(
      thrown.attempts.map((a) => a.error),
      ['boom', 'boom'],
    );
  });
});

describe('delivery log (exactly one notification per transition)', () => {
  it('keys by dedup key + transition@time + channel', () => {
    const k = deliveryKey('abc', 'firing', 1000, 'pd');
    assert.equal(k, deliveryKey('abc', 'firing', 1000, 'pd'));
    assert.notEqual(k, deliveryKey('abc', 'firing', 2000, 'pd'), 'a re-fire is a new delivery');
    assert.notEqual(k, deliveryKey('abc', 'resolved', 1000, 'pd'));
    assert.notEqual(k, deliveryKey('abc', 'firing', 1000, 'slack'));
  });
  it('claims: new → send; sent → skip; someone else’s live lease → skip; expired → take over', () => {
    assert.deepEqual(claimDecision(undefined, 'c1', 0), { action: 'send', why: 'new' });
    const row = { key: 'k', state: 'claimed' as const, claimedBy: 'c2', leaseUntil: 100, attempts: 1 };
    assert.deepEqual(claimDecision(row, 'c1', 50), { action: 'skip', why: 'claimed-by-other' });
    assert.deepEqual(claimDecision(row, 'c2', 50), { action: 'send', why: 'mine' });
    assert.deepEqual(claimDecision(row, 'c1', 100), { action: 'send', why: 'lease-expired' });
    assert.deepEqual(claimDecision({ ...row, state: 'sent' }, 'c1', 500), { action: 'skip', why: 'sent' });
    assert.deepEqual(claimDecision({ ...row, state: 'failed', attempts: 3 }, 'c1', 500), {
      action: 'skip',
      why: 'failed-final',
    });
    assert.deepEqual(claimDecision({ ...row, state: 'failed', attempts: 1 }, 'c1', 500), {
      action: 'send',
      why: 'lease-expired',
    });
  });
});

describe('acknowledge links', () => {
  const secret = 'ack-secret';
  it('round-trips, expires, and refuses tampering', () => {
    const t = ackToken(secret, 'dk123', 2_000_000);
    assert.deepEqual(verifyAckToken(secret, t, 1_000_000), {
      ok: true,
      dedupKey: 'dk123',
      expiresAt: 2_000_000,
    });
    const exp = verifyAckToken(secret, t, 2_000_000);
    assert.equal(exp.ok, false);
    assert.equal(!exp.ok && exp.code, 'NINES_E_ACK_EXPIRED');
    const bad = verifyAckToken('other', t, 0);
    assert.equal(!bad.ok && bad.code, 'NINES_E_ACK_INVALID');
    const parts = t.split('.');
    const forged = [parts[0], Buffer.from('other-key').toString('base64url'), parts[2], parts[3]].join('.');
    assert.equal(verifyAckToken(secret, forged, 0).ok, false);
    const later = [parts[0], parts[1], '9999999999', parts[3]].join('.');
    assert.equal(verifyAckToken(secret, later, 0).ok, false, 'expiry is signed');
    assert.equal(verifyAckToken(secret, 'garbage', 0).ok, false);
    assert.equal(
      ackUrl('https://n.example/', t),
      `https://n.example/v1/alerts/ack?token=${encodeURIComponent(t)}`,
    );
  });
});
