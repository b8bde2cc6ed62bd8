import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dependencyEndpoints } from '../controller/drills.js';
import { checkSchema } from '../core/checks.js';
import { cgroup2Mount, cgroup2Path, nftScript } from './netblock.js';

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
