import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Failover, failoverReason, parseControllerUrls } from './failover.js';

describe('failover', () => {
  it('parses comma-separated URLs, normalized and deduplicated', () => {
    assert.deepEqual(parseControllerUrls('http://a:1/, http://b:2,http://a:1'), ['http://a:1', 'http://b:2']);
    assert.throws(() => parseControllerUrls(''), /no controller URL/);
    assert.throws(() => parseControllerUrls('ftp://x'), /http/);
  });

  it('moves on after a network error and remembers the controller that answered', async () => {
    const f = new Failover('http://a,http://b,http://c');
    const seen: string[] = [];
    const r = await f.run(async (base) => {
      seen.push(base);
      if (base !== 'http://c') throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      return 'ok';
    });
    assert.equal(r, 'ok');
    assert.deepEqual(seen, ['http://a', 'http://b', 'http://c']);
    assert.equal(f.current, 'http://c');
  });

  it('a follower naming the leader sends the client straight there', async () => {
    const f = new Failover('http://a,http://b,http://c');
    const seen: string[] = [];
    await f.run(async (base) => {
      seen.push(base);
      if (base === 'http://a') {
        throw { status: 503, code: 'NINES_E_NOT_LEADER', details: { leader: 'http://c' } };
      }
      return 1;
    });
    assert.deepEqual(seen, ['http://a', 'http://c']);
  });

  it('does not retry errors that are the request own fault, nor with a lone URL', async () => {
    const f = new Failover('http://a,http://b');
    let n = 0;
    await assert.rejects(
      f.run(async () => {
        n++;
        throw { status: 400, code: 'NINES_E_VALIDATION' };
      }),
    );
    assert.equal(n, 1);
    const one = new Failover('http://a');
    let m = 0;
    await assert.rejects(
      one.run(async () => {
        m++;
        throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      }),
    );
    assert.equal(m, 1);
  });

  it('moving on aborts requests still waiting on the old controller', async () => {
    const f = new Failover('http://a,http://b');
    const poll = f.run(
      (base, signal) =>
        new Promise<string>((resolve, reject) => {
          if (base === 'http://b') return resolve('from b');
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
    );
    f.moveOn('http://a', null, 'report timed out');
    assert.equal(await poll, 'from b');
    assert.equal(failoverReason({ name: 'TimeoutError' }).failover, true);
  });
});
