import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { dependencyEndpoints } from '../controller/drills.js';
import { checkSchema } from '../core/checks.js';
import { blockDependency, cgroup2Mount, cgroup2Path, cleanupStale, nftScript } from './netblock.js';

describe('dependency-down pieces', () => {
  it('finds the cgroup v2 mount and a process’s cgroup v2 path', () => {
    const mounts =
      'proc /proc proc rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n';
    assert.equal(cgroup2Mount(mounts), '/sys/fs/cgroup/unified');
    assert.equal(cgroup2Mount('proc /proc proc rw 0 0\n'), undefined);
    assert.equal(
      cgroup2Path('4:memory:/x\n0::/system.slice/nines-agent.service\n'),
      '/system.slice/nines-agent.service',
    );
    assert.equal(cgroup2Path('4:memory:/x\n'), undefined);
    // Inside a drill's cgroup, a process belongs where the drill found it.
    assert.equal(cgroup2Path('0::/a/nines-drill-h_1_f_2\n'), '/a');
    assert.equal(cgroup2Path('0::/nines-drill-h_1_f_2/nines-drill-h_1_f_3\n'), '/');
    assert.equal(cgroup2Path('0::/\n'), '/');
  });

  it('rejects only the dependency, only from the drill cgroup', () => {
    const s = nftScript('nines_drill_f_1', 'unified/nines-drill-f_1', 1, [
      { address: '10.0.0.5', port: 5432 },
      { address: '::1', port: 443 },
    ]);
    assert.match(s, /^table inet nines_drill_f_1 \{$/m);
    assert.match(s, /type filter hook output priority 0; policy accept;/);
    assert.match(
      s,
      /^ {4}ip daddr 10\.0\.0\.5 tcp dport 5432 socket cgroupv2 level 1 "unified\/nines-drill-f_1" reject with tcp reset$/m,
    );
    assert.match(s, /^ {4}ip6 daddr ::1 tcp dport 443 socket cgroupv2 level 1 /m);
    assert.equal(s.match(/reject/g)?.length, 2);
  });

  it('takes the host:port a dependency check names', () => {
    const ep = (c: unknown) => dependencyEndpoints(checkSchema.parse(c));
    assert.deepEqual(ep({ type: 'tcp', host: 'db.internal', port: 5432 }), [
      { host: 'db.internal', port: 5432 },
    ]);
    assert.deepEqual(ep({ type: 'http', url: 'https://api.stripe.com/v1' }), [
      { host: 'api.stripe.com', port: 443 },
    ]);
    assert.deepEqual(ep({ type: 'http', url: 'http://[::1]:8081/h' }), [{ host: '::1', port: 8081 }]);
    assert.deepEqual(ep({ type: 'http', url: 'http://127.0.0.1/h' }), [{ host: '127.0.0.1', port: 80 }]);
    assert.equal(ep({ type: 'dns', query: 'example.com' }), undefined);
  });
});

/** Real kernel: root, nft and cgroup v2 under /sys/fs/cgroup, else skipped with the reason. */
function realSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs nftables (nft)';
  }
  const m = cgroup2Mount(readFileSync('/proc/self/mounts', 'utf8'));
  if (m === undefined || !m.startsWith('/sys/fs/cgroup')) return 'needs cgroup v2 under /sys/fs/cgroup';
  return false;
}

describe('dependency-down on the real kernel', { skip: realSkip() }, () => {
  /** A process that tries the dependency every 50 ms and prints ok / the error code. */
  const prober = (port: number) => {
    const p = spawn(
      process.execPath,
      [
        '-e',
        `const net=require('node:net');setInterval(()=>{const s=net.connect(${port},'127.0.0.1');s.on('connect',()=>{console.log('ok');s.destroy()});s.on('error',e=>console.log(e.code))},50)`,
      ],
      { detached: true, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let last = '';
    p.stdout.on('data', (d: Buffer) => {
      last = d.toString().trim().split('\n').at(-1) ?? last;
    });
    return { p, last: () => last };
  };
  const settle = () => new Promise((r) => setTimeout(r, 300));

  it('cuts off only the named processes, restores, and a restarted agent undoes leftovers', async () => {
    // ss -K resets the probers' connections; the server's ends then see ECONNRESET.
    const server = createServer((s) => {
      s.on('error', () => {});
      s.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const inside = prober(port);
    const outside = prober(port);
    const ownBefore = readFileSync('/proc/self/cgroup', 'utf8');
    try {
      await settle();
      assert.equal(inside.last(), 'ok');
      const block = await blockDependency({
        owner: 'h-test',
        id: 'f-1',
        endpoints: [{ host: 'localhost', port }],
        pids: [inside.p.pid as number],
      });
      assert.deepEqual(block.pids, [inside.p.pid]);
      await settle();
      assert.equal(inside.last(), 'ECONNREFUSED', 'the service process is cut off');
      assert.equal(outside.last(), 'ok', 'another process is not');
      await block.restore();
      await settle();
      assert.equal(inside.last(), 'ok');
      assert.equal(readFileSync('/proc/self/cgroup', 'utf8'), ownBefore);

      // Left in place (the agent was killed): the next agent of this host undoes it, not other hosts'.
      const left = await blockDependency({
        owner: 'h-test',
        id: 'f-2',
        endpoints: [{ host: '127.0.0.1', port }],
        pids: [inside.p.pid as number],
      });
      const other = await blockDependency({
        owner: 'h-other',
        id: 'f-3',
        endpoints: [{ host: '127.0.0.1', port }],
        pids: [],
      });
      await settle();
      assert.equal(inside.last(), 'ECONNREFUSED');
      assert.deepEqual(await cleanupStale('h-test'), ['nines-drill-h_test_f_2']);
      await settle();
      assert.equal(inside.last(), 'ok');
      assert.match(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), /nines_drill_h_other_f_3/);
      await other.restore();
      await left.restore(); // idempotent after the cleanup
      assert.doesNotMatch(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), /nines_drill_h_/);
      assert.equal(readFileSync('/proc/self/cgroup', 'utf8'), ownBefore);
    } finally {
      inside.p.kill('SIGKILL');
      outside.p.kill('SIGKILL');
      server.close();
    }
  });
});
