import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { inspectArchive, packDirectory, sha256File, unpackArchive } from './artifact.js';
import { NinesError } from './errors.js';

interface CraftEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'FIFO';
  body?: string;
  linkpath?: string;
}

/** Builds a tar.gz byte by byte with tar's Header, so entries can be as hostile as we like. */
function craftTarGz(entries: CraftEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const type = e.type ?? 'File';
    const h = new Header({
      path: e.path,
      type,
      size: type === 'File' ? body.length : 0,
      mode: type === 'Directory' ? 0o755 : 0o644,
      mtime: new Date(0),
      ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }),
    });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && body.length > 0) {
      const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
      body.copy(padded);
      blocks.push(padded);
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const root = await mkdtemp(join(tmpdir(), 'nines-artifact-'));
after(() => rm(root, { recursive: true, force: true }));
let n = 0;
const fresh = async (): Promise<string> => {
  const d = join(root, `case-${++n}`);
  await mkdir(d, { recursive: true });
  return d;
};

async function expectCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<NinesError> {
  const err = await p.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof NinesError, `expected a NinesError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (re) assert.match(err.message, re);
  return err;
}

describe('artifact: pack / inspect / unpack round trip', () => {
  it('packs a directory portably and unpacks it identically, atomically', async () => {
    const d = await fresh();
    const src = join(d, 'src');
    await mkdir(join(src, 'lib', 'deep'), { recursive: true });
    await writeFile(join(src, 'server.js'), 'console.log("hi")\n');
    await writeFile(join(src, 'lib', 'deep', 'data.txt'), 'x'.repeat(10_000));
    await symlink('lib/deep/data.txt', join(src, 'link-inside'));
    const out = join(d, 'app.tar.gz');
    const { sha256, size } = await packDirectory(src, out);
    assert.equal(sha256, await sha256File(out));
    assert.equal(size, readFileSync(out).length);
    assert.equal(sha256, sha(readFileSync(out)));

    const info = await inspectArchive(out);
    assert.ok(info.entries >= 5, `entries ${info.entries}`);
    assert.equal(info.bytes, 10_000 + 'console.log("hi")\n'.length);

    const dest = join(d, 'releases', 'svc', '1.0.0');
    await unpackArchive(out, dest, sha256.toUpperCase());
    assert.equal(readFileSync(join(dest, 'server.js'), 'utf8'), 'console.log("hi")\n');
    assert.equal(readFileSync(join(dest, 'lib', 'deep', 'data.txt'), 'utf8').length, 10_000);
    assert.ok(lstatSync(join(dest, 'link-inside')).isSymbolicLink());
    assert.equal(readlinkSync(join(dest, 'link-inside')), 'lib/deep/data.txt');
    // no temp directory left next to it
    assert.deepEqual(readdirSync(join(d, 'releases', 'svc')), ['1.0.0']);

    // destDir present → no-op, even with a checksum that would not match
    await unpackArchive(out, dest, 'f'.repeat(64));
  });

  it('leaves the output file out when it is inside the packed directory; packs an empty dir', async () => {
    const d = await fresh();
    await writeFile(join(d, 'a.txt'), 'a');
    const out = join(d, 'self.tar.gz');
    await packDirectory(d, out);
    const dest = join(d, 'x', 'out');
    await unpackArchive(out, dest, await sha256File(out));
    assert.deepEqual(readdirSync(dest), ['a.txt']);

    const empty = await fresh();
    await mkdir(join(empty, 'e'));
    const out2 = join(empty, 'e.tar.gz');
    await packDirectory(join(empty, 'e'), out2);
    assert.ok((await inspectArchive(out2)).entries >= 1);
  });

  it('a safe crafted archive with internal links passes', async () => {
    const d = await fresh();
    const f = join(d, 'ok.tar.gz');
    await writeFile(
      f,
      craftTarGz([
        { path: 'app/', type: 'Directory' },
        { path: 'app/a.txt', body: 'hello' },
        { path: 'app/b.txt', type: 'Link', linkpath: 'app/a.txt' },
        { path: 'app/c', type: 'SymbolicLink', linkpath: '../app/a.txt' },
        { path: 'app/sub/', type: 'Directory' },
        { path: 'app/sub/up', type: 'SymbolicLink', linkpath: '..' },
      ]),
    );
    assert.deepEqual(await inspectArchive(f), { entries: 6, bytes: 5 });
    const dest = join(d, 'out');
    await unpackArchive(f, dest, await sha256File(f));
    assert.equal(readFileSync(join(dest, 'app', 'b.txt'), 'utf8'), 'hello');
    assert.equal(readFileSync(join(dest, 'app', 'c'), 'utf8'), 'hello');
  });
});

describe('artifact: hostile archives are refused with NINES_E_ARTIFACT_UNSAFE naming the entry', () => {
  const cases: { name: string; entries: CraftEntry[]; re: RegExp }[] = [
    { name: "'../evil'", entries: [{ path: '../evil', body: 'x' }], re: /'\.\.\/evil'.*'\.\.'/ },
    { name: "'a/../../evil'", entries: [{ path: 'a/../../evil', body: 'x' }], re: /a\/\.\.\/\.\.\/evil/ },
    { name: "'/abs'", entries: [{ path: '/abs', body: 'x' }], re: /'\/abs'.*absolute/ },
    {
      name: "symlink to '/etc/passwd'",
      entries: [{ path: 'pw', type: 'SymbolicLink', linkpath: '/etc/passwd' }],
      re: /'pw'.*\/etc\/passwd.*absolute/,
    },
    {
      name: "symlink '../../x'",
      entries: [
        { path: 'a/', type: 'Directory' },
        { path: 'a/l', type: 'SymbolicLink', linkpath: '../../x' },
      ],
      re: /'a\/l'.*outside/,
    },
    {
      name: 'symlink chain escaping through another symlink (x -> ., y -> x/..)',
      entries: [
        { path: 'x', type: 'SymbolicLink', linkpath: '.' },
        { path: 'y', type: 'SymbolicLink', linkpath: 'x/..' },
      ],
      re: /'y'.*outside/,
    },
    {
      name: 'symlink loop',
      entries: [
        { path: 'p', type: 'SymbolicLink', linkpath: 'q' },
        { path: 'q', type: 'SymbolicLink', linkpath: 'p' },
      ],
      re: /outside/,
    },
    {
      name: 'hardlink escaping',
      entries: [{ path: 'h', type: 'Link', linkpath: '../../etc/passwd' }],
      re: /'h'.*hardlink/,
    },
    {
      name: 'absolute hardlink',
      entries: [{ path: 'h', type: 'Link', linkpath: '/etc/shadow' }],
      re: /'h'.*absolute/,
    },
    {
      name: 'hardlink through a symlink',
      entries: [
        { path: 'd/', type: 'Directory' },
        { path: 'd/up', type: 'SymbolicLink', linkpath: '..' },
        { path: 'h', type: 'Link', linkpath: 'd/up/ok.txt' },
      ],
      re: /'h'.*through the symlink 'd\/up'/,
    },
    {
      name: 'write through a symlink',
      entries: [
        { path: 'dir', type: 'SymbolicLink', linkpath: 'real' },
        { path: 'real/', type: 'Directory' },
        { path: 'dir/file', body: 'x' },
      ],
      re: /'dir\/file'.*through the symlink 'dir'/,
    },
    {
      name: 'character device',
      entries: [{ path: 'tty', type: 'CharacterDevice' }],
      re: /'tty'.*CharacterDevice/,
    },
    { name: 'fifo', entries: [{ path: 'pipe', type: 'FIFO' }], re: /'pipe'.*FIFO/ },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const d = await fresh();
      const f = join(d, 'bad.tar.gz');
      const bytes = craftTarGz([{ path: 'ok.txt', body: 'fine' }, ...c.entries]);
      await writeFile(f, bytes);
      await expectCode(inspectArchive(f), 'NINES_E_ARTIFACT_UNSAFE', c.re);
      // unpack refuses too and leaves nothing behind
      const dest = join(d, 'out', 'rel');
      await expectCode(unpackArchive(f, dest, sha(bytes)), 'NINES_E_ARTIFACT_UNSAFE');
      assert.equal(existsSync(dest), false);
      assert.deepEqual(existsSync(join(d, 'out')) ? readdirSync(join(d, 'out')) : [], []);
      assert.equal(existsSync(join(root, 'evil')), false);
    });
  }
});

describe('artifact: integrity', () => {
  it('checksum mismatch names expected and actual and extracts nothing', async () => {
    const d = await fresh();
    const f = join(d, 'a.tar.gz');
    const bytes = craftTarGz([{ path: 'a.txt', body: 'a' }]);
    await writeFile(f, bytes);
    const expected = 'ab'.repeat(32);
    const err = await expectCode(unpackArchive(f, join(d, 'out'), expected), 'NINES_E_ARTIFACT_CHECKSUM');
    assert.ok(err.message.includes(expected));
    assert.ok(err.message.includes(sha(bytes)));
    assert.equal(existsSync(join(d, 'out')), false);
  });

  it('a file that is not gzip is NINES_E_ARTIFACT_INVALID', async () => {
    const d = await fresh();
    const f = join(d, 'plain.txt');
    await writeFile(f, 'this is not an archive at all\n'.repeat(40));
    await expectCode(inspectArchive(f), 'NINES_E_ARTIFACT_INVALID');
    await expectCode(
      unpackArchive(f, join(d, 'out'), await sha256File(f)),
      'NINES_E_ARTIFACT_INVALID',
      /not a readable tar\.gz/,
    );
  });

  it('gzip of garbage, a truncated archive, an empty file and a missing file are NINES_E_ARTIFACT_INVALID', async () => {
    const d = await fresh();
    const garbage = join(d, 'garbage.gz');
    await writeFile(garbage, gzipSync(Buffer.from('x'.repeat(3000))));
    await expectCode(inspectArchive(garbage), 'NINES_E_ARTIFACT_INVALID');

    const full = craftTarGz([{ path: 'big.txt', body: 'y'.repeat(100_000) }]);
    const trunc = join(d, 'trunc.tar.gz');
    await writeFile(trunc, full.subarray(0, Math.floor(full.length / 2)));
    await expectCode(inspectArchive(trunc), 'NINES_E_ARTIFACT_INVALID');

    const empty = join(d, 'empty.tar.gz');
    await writeFile(empty, '');
    await expectCode(inspectArchive(empty), 'NINES_E_ARTIFACT_INVALID');

    await expectCode(inspectArchive(join(d, 'nope.tar.gz')), 'NINES_E_ARTIFACT_INVALID');
  });
});
