import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { isNinesError } from '../core/errors.js';
import { sha256Hex, signRequest } from '../core/signing.js';
import { Authenticator } from './auth.js';
import { openPostgresStore } from './store/postgres.js';
import { openSqliteStore } from './store/sqlite.js';
import { host as hostFixture } from './store/store-suite.js';
import type { Store } from './store/types.js';

const PG = process.env.NINES_TEST_PG_URL;

/**
 * Signed requests across controllers: each Authenticator stands for one controller (its own in-memory
 * nonce cache); with shared nonces, a request one of them accepted is a replay for every other one.
 */
function suite(name: string, open: () => Promise<{ store: Store; close(): Promise<void> }>, skip?: string) {
  describe(`shared nonces on ${name}`, { skip }, () => {
    let opened: { store: Store; close(): Promise<void> } | undefined;
    after(async () => opened?.close());

    it('a request accepted by one controller is refused as a replay by another; unshared, it is not', async () => {
      opened = await open();
      const { store } = opened;
      const key = randomBytes(32).toString('hex');
      const now = Date.now();
      await store.upsertHost(hostFixture('h-1', 'host-1', { registeredAt: now, lastSeenAt: now, key }));
      const body = JSON.stringify({ hostId: 'h-1', generation: 0, instances: [] });
      const headers = signRequest('h-1', key, 'POST', '/v1/agent/report', body);
      const verifyOn = async (auth: Authenticator) => {
        const { pending } = await auth.authenticate(headers.authorization);
        assert.ok(pending);
        await auth.verifySigned(pending, 'POST', '/v1/agent/report', sha256Hex(body));
      };
      const leader = new Authenticator(store, { sharedNonces: store.nonces() });
      const next = new Authenticator(store, { sharedNonces: store.nonces() });
      await verifyOn(leader);
      await assert.rejects(verifyOn(next), (err) => isNinesError(err) && err.code === 'NINES_E_REPLAY');
      await assert.rejects(verifyOn(leader), (err) => isNinesError(err) && err.code === 'NINES_E_REPLAY');
      // Without the shared store each controller only knows its own (one controller: all it needs).
      await verifyOn(new Authenticator(store));
      // Expired nonces are forgotten; live ones are kept.
      assert.equal(await store.nonces().prune(now - 1000), 0);
      assert.equal(await store.nonces().prune(now + 301_000 + 60_000), 1);
    });
  });
}

suite('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-auth-'));
  const store = await openSqliteStore({ file: join(dir, 'nines.db') });
  return {
    store,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

suite(
  'PostgreSQL',
  async () => {
    const schema = `nines_auth_${randomBytes(4).toString('hex')}`;
    const store = await openPostgresStore({ connectionString: PG as string, schema });
    return {
      store,
      close: async () => {
        await store.close();
        const admin = new pg.Client({ connectionString: PG });
        await admin.connect();
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await admin.end();
      },
    };
  },
  PG ? undefined : 'PostgreSQL not available: set NINES_TEST_PG_URL (scripts/ci-postgres.sh starts one)',
);

/**
 * One controller on its store keeps host records: revocation and a new key still take effect on the
 * very next request, because the API calls `forgetHost` after writing them.
 */
describe('host records kept by one controller', () => {
  let dir: string;
  let store: Store;
  let reads = 0;
  let gate: Promise<void> | undefined;
  /** The real store, counting (and, while `gate` is set, holding) its host reads. */
  let counted: Store;
  const key = randomBytes(32).toString('hex');
  const body = JSON.stringify({ hostId: 'h-1', generation: 0, instances: [] });
  const signed = async (auth: Authenticator, k = key) => {
    const headers = signRequest('h-1', k, 'POST', '/v1/agent/report', body);
    const { pending } = await auth.authenticate(headers.authorization);
    assert.ok(pending);
    await auth.verifySigned(pending, 'POST', '/v1/agent/report', sha256Hex(body));
  };
  const host = (k: string) =>
    hostFixture('h-1', 'host-1', { registeredAt: Date.now(), lastSeenAt: Date.now(), key: k });

  it('reads a host once; a revocation followed by forgetHost refuses the next request', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nines-auth-cache-'));
    store = await openSqliteStore({ file: join(dir, 'nines.db') });
    counted = new Proxy(store, {
      get(target, prop, recv) {
        if (prop === 'getHost') {
          return async (id: string) => {
            reads++;
            const got = await target.getHost(id);
            if (gate) await gate;
            return got;
          };
        }
        const v = Reflect.get(target, prop, recv);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    await store.upsertHost(host(key));
    const auth = new Authenticator(counted);
    await signed(auth);
    await signed(auth);
    await signed(auth);
    assert.equal(reads, 1, 'one read for three requests');
    // An unknown host is not kept: each try reads (and fails).
    const stranger = signRequest('h-x', key, 'POST', '/v1/agent/report', body);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        auth.authenticate(stranger.authorization),
        (e) => isNinesError(e) && e.code === 'NINES_E_SIGNATURE_INVALID',
      );
    }
    assert.equal(reads, 3);

    await store.revokeHost('h-1', Date.now());
    auth.forgetHost('h-1');
    await assert.rejects(signed(auth), (e) => isNinesError(e) && e.code === 'NINES_E_HOST_REVOKED');
  });

  it('a new key (registered again) verifies at once after forgetHost; the old one does not', async () => {
    const auth = new Authenticator(counted);
    const old = randomBytes(32).toString('hex');
    await store.upsertHost(host(old));
    await signed(auth, old);
    const fresh = randomBytes(32).toString('hex');
    await store.upsertHost(host(fresh));
    auth.forgetHost('h-1');
    await signed(auth, fresh);
    await assert.rejects(signed(auth, old), (e) => isNinesError(e) && e.code === 'NINES_E_SIGNATURE_INVALID');
    // A new key whose forgetHost was missed costs one refused request, not a locked-out host.
    await signed(auth, fresh); // kept again (the refusal above made it read anew)
    const third = randomBytes(32).toString('hex');
    await store.upsertHost(host(third));
    await assert.rejects(
      signed(auth, third),
      (e) => isNinesError(e) && e.code === 'NINES_E_SIGNATURE_INVALID',
    );
    await signed(auth, third);
  });

  it('a read in flight while the host is forgotten does not keep the stale record', async () => {
    const auth = new Authenticator(counted);
    await store.upsertHost(host(key));
    let open!: () => void;
    gate = new Promise<void>((r) => {
      open = r;
    });
    const inFlight = signed(auth); // reads the host (not revoked) and waits at the gate
    await new Promise((r) => setTimeout(r, 20));
    await store.revokeHost('h-1', Date.now());
    auth.forgetHost('h-1');
    gate = undefined;
    open();
    await inFlight; // it read before the revocation: accepted, as without a cache
    await assert.rejects(signed(auth), (e) => isNinesError(e) && e.code === 'NINES_E_HOST_REVOKED');
  });

  it('with several controllers (shared nonces) every request reads its host', async () => {
    await store.upsertHost(host(key));
    const auth = new Authenticator(counted, { sharedNonces: store.nonces() });
    const before = reads;
    await signed(auth);
    await signed(auth);
    assert.equal(reads - before, 2);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
