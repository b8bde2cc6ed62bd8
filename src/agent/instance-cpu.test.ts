import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { InstanceCpu, parseCpuTicks, parseRssBytes, readGroupTicks } from './instance-cpu.js';

// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime …
const stat = (pid: number, pgrp: number, utime: number, stime: number, cutime = 0, cstime = 0) =>
  `${pid} (node server) x.js) S 1 ${pgrp} ${pgrp} 0 -1 4194560 100 0 0 0 ${utime} ${stime} ${cutime} ${cstime} 20 0 1 0 12345 0 0\n`;

test('parseCpuTicks: utime + stime + cutime + cstime and the group, whatever the command name holds', () => {
  assert.deepEqual(parseCpuTicks(stat(42, 40, 300, 50, 7, 3)), { pgrp: 40, ticks: 360 });
  assert.equal(parseCpuTicks('garbage'), undefined);
});

test('readGroupTicks sums the processes of each asked group', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-proc-'));
  try {
    const put = (pid: number, text: string) => {
      mkdirSync(join(dir, String(pid)));
      writeFileSync(join(dir, String(pid), 'stat'), text);
    };
    put(100, stat(100, 100, 10, 5));
    put(101, stat(101, 100, 20, 0)); // a child of instance 100
    put(200, stat(200, 200, 1, 1));
    put(300, stat(300, 300, 99, 99)); // not an instance
    mkdirSync(join(dir, 'self'));
    const t = await readGroupTicks(new Set([100, 200]), dir);
    assert.deepEqual([...t].sort(), [
      [100, 35],
      [200, 2],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('InstanceCpu: percent of one core between samples; a restart (new pid) starts over', () => {
  const c = new InstanceCpu();
  c.update(new Map([['a', 10]]), new Map([[10, 1000]]), 0);
  assert.equal(c.get('a'), undefined, 'one sample is no rate');
  c.update(new Map([['a', 10]]), new Map([[10, 1150]]), 2000); // 1.5 s of CPU in 2 s
  assert.equal(c.get('a'), 75);
  c.update(new Map([['a', 11]]), new Map([[11, 5]]), 4000);
  assert.equal(c.get('a'), undefined);
  c.update(new Map(), new Map(), 6000);
  assert.equal(c.get('a'), undefined);
});

test('a real busy process group measures CPU, an idle one next to none', async () => {
  const busy = spawn(process.execPath, ['-e', 'const end = Date.now() + 5000; while (Date.now() < end) {}'], {
    detached: true,
    stdio: 'ignore',
  });
  const idle = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'], {
    detached: true,
    stdio: 'ignore',
  });
  try {
    const pids = new Map([
      ['busy', busy.pid ?? 0],
      ['idle', idle.pid ?? 0],
    ]);
    const groups = new Set(pids.values());
    const c = new InstanceCpu();
    await sleep(200);
    c.update(pids, await readGroupTicks(groups), Date.now());
    await sleep(1000);
    c.update(pids, await readGroupTicks(groups), Date.now());
    const b = c.get('busy');
    const i = c.get('idle');
    // A busy loop gets a core on an idle machine, a share of one on a loaded one (2 cores, load ~10: ~20 %).
    assert.ok(b !== undefined && b >= 10, `busy: ${b} %`);
    assert.ok(i !== undefined && i < 5, `idle: ${i} %`);
  } finally {
    busy.kill('SIGKILL');
    idle.kill('SIGKILL');
  }
});

test('readGroupTicks with rss: the resident memory of each group, from the same stat reads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-proc-'));
  try {
    // rss is field 24 (pages): the last number of these lines.
    const line = (pid: number, pgrp: number, rssPages: number) =>
      `${pid} (app) S 1 ${pgrp} ${pgrp} 0 -1 4194560 100 0 0 0 1 1 0 0 20 0 1 0 12345 0 ${rssPages}\n`;
    for (const [pid, pgrp, pages] of [
      [100, 100, 1000],
      [101, 100, 24],
      [200, 200, 5],
    ] as const) {
      mkdirSync(join(dir, String(pid)));
      writeFileSync(join(dir, String(pid), 'stat'), line(pid, pgrp, pages));
    }
    const rss = new Map<number, number>();
    await readGroupTicks(new Set([100, 200]), dir, rss);
    assert.deepEqual([...rss].sort(), [
      [100, 1024 * 4096],
      [200, 5 * 4096],
    ]);
    assert.ok(
      (parseRssBytes(readFileSync('/proc/self/stat', 'utf8')) ?? 0) > 1024 * 1024,
      'this process: > 1 MiB',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
