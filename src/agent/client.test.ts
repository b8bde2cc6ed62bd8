import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, describe, it } from 'node:test';
import { ControllerClient, ControllerHttpError } from './client.js';

/** Two fake controllers speaking the desired-state call: a follower that names the leader, and a leader. */
function controller(
  answer: (url: string) => { status: number; body: unknown },
): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const a = answer(req.url ?? '');
    res.writeHead(a.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(a.body));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve({ server, url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` });
    }),
  );
}

describe('agent client: several controllers and fencing', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  it('follows a follower to the leader, and refuses desired state from a stale leader', async () => {
    let leaderToken = 7;
    const leader = await controller(() => ({
      status: 200,
      body: { hostId: 'h-1', generation: 3, instances: [], fencingToken: leaderToken },
    }));
    const follower = await controller(() => ({
      status: 503,
      body: { error: { code: 'NINES_E_NOT_LEADER', message: 'follower', details: { leader: leader.url } } },
    }));
    servers.push(leader.server, follower.server);
    const client = new ControllerClient([follower.url, leader.url], 'tok');
    const d = await client.desired('h-1', 0, 0, AbortSignal.timeout(5000));
    assert.equal(d.generation, 3);
    assert.equal(client.endpoints.current, leader.url);
    assert.equal(client.fencingToken, 7);

    // The controller now answers with an older token: a leader that lost the lease answering late.
    leaderToken = 6;
    await assert.rejects(
      client.desired('h-1', 0, 0, AbortSignal.timeout(5000)),
      (e) => e instanceof ControllerHttpError && e.code === 'NINES_E_FENCED',
    );
    assert.equal(client.refusedCommands, 1);
    assert.equal(client.fencingToken, 7, 'the highest token seen stays');
    assert.equal(client.endpoints.current, follower.url, 'it moved on to another controller');
    await client.close();
  });
});
