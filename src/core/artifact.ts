import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import * as tar from 'tar';
import { NinesError } from './errors.js';

/**
 * Release artifacts: a tar.gz of the service directory. The CLI packs them, the controller inspects
 * uploads, the agent verifies and unpacks them. Nothing is extracted before its sha256 matches and
 * every entry has been checked: no absolute paths, no `..`, no links leading out of the root, no
 * devices or FIFOs, nothing written through a symlink.
 */

/** Hex sha256 of a file's bytes. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Packs `dir` into a gzip'd tar at `outFile`: relative paths, no owner information (portable), entries
 * in a stable order. Symlinks are stored as symlinks (not followed). `outFile` itself is left out if it
 * lies inside `dir`.
 */
export async function packDirectory(dir: string, outFile: string): Promise<{ sha256: string; size: number }> {
  const root = resolve(dir);
  const out = resolve(outFile);
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new NinesError('NINES_E_ARTIFACT_INVALID', `cannot pack ${dir}: not a directory`, { dir });
  }
  const top = (await readdir(root)).filter((name) => join(root, name) !== out).sort();
  await mkdir(dirname(out), { recursive: true });
  await tar.create(
    {
      gzip: true,
      file: out,
      cwd: root,
      portable: true,
      follow: false,
      filter: (p) => resolve(root, p) !== out,
    },
    top.length > 0 ? top : ['.'],
  );
  const [sha256, info] = await Promise.all([sha256File(out), stat(out)]);
  return { sha256, size: info.size };
}

const REGULAR_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const ALLOWED_TYPES = new Set([...REGULAR_TYPES, 'Directory', 'SymbolicLink', 'Link']);

function unsafe(entry: string, why: string): NinesError {
  return new NinesError('NINES_E_ARTIFACT_UNSAFE', `unsafe archive entry '${entry}': ${why}`, {
    entry,
    reason: why,
  });
}

function isAbsoluteLike(p: string): boolean {
  return p.startsWith('/') || p.startsWith('\\') || /^[A-Za-z]:/.test(p);
}

/** Splits an entry path into segments, refusing absolute paths and `..`. '' for the root itself. */
function entrySegments(raw: string, what: string, entry: string): string[] {
  if (raw.includes('\0')) throw unsafe(entry, `${what} contains a NUL byte`);
  if (isAbsoluteLike(raw)) throw unsafe(entry, `${what} is absolute`);
  const segs = raw.split(/[/\\]+/).filter((s) => s !== '' && s !== '.');
  if (segs.includes('..')) throw unsafe(entry, `${what} has a '..' segment`);
  return segs;
}

/**
 * Resolves `target` (segments, may contain '..') relative to `base` (segments of a directory inside
 * the root) through the archive's own symlinks, the way the kernel would once extracted. Returns
 * undefined when the path leaves the root.
 */
function resolveInside(
  base: readonly string[],
  target: readonly string[],
  symlinks: ReadonlyMap<string, string>,
  budget: { hops: number },
): string[] | undefined {
  const cur = [...base];
  for (const seg of target) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (cur.length === 0) return undefined;
      cur.pop();
      continue;
    }
    const candidate = [...cur, seg].join('/');
    const link = symlinks.get(candidate);
    if (link === undefined) {
      cur.push(seg);
      continue;
    }
    if (--budget.hops < 0) return undefined; // a loop, or absurdly deep: refuse
    if (isAbsoluteLike(link)) return undefined;
    const next = resolveInside(cur, link.split(/[/\\]+/), symlinks, budget);
    if (next === undefined) return undefined;
    cur.length = 0;
    cur.push(...next);
  }
  return cur;
}

/**
 * Reads the whole archive and checks every entry. Throws NINES_E_ARTIFACT_INVALID when the file is
 * not a readable tar.gz, NINES_E_ARTIFACT_UNSAFE (naming the entry) when an entry could write or
 * point outside the extraction root.
 */
export async function inspectArchive(file: string): Promise<{ entries: number; bytes: number }> {
  await assertGzip(file);
  const symlinks = new Map<string, string>(); // normalized path → raw target
  const hardlinks: { entry: string; target: string[] }[] = [];
  let entries = 0;
  let bytes = 0;
  let problem: NinesError | undefined;
  const check = (e: tar.ReadEntry): void => {
    const name = String(e.path);
    entries++;
    if (!ALLOWED_TYPES.has(e.type)) throw unsafe(name, `entry type ${e.type} is not allowed`);
    const segs = entrySegments(name, 'path', name);
    // Nothing may be written through a symlink of the archive (x -> somewhere, then x/file).
    for (let i = 1; i < segs.length; i++) {
      const prefix = segs.slice(0, i).join('/');
      if (symlinks.has(prefix)) throw unsafe(name, `path goes through the symlink '${prefix}'`);
    }
    const key = segs.join('/');
    if (REGULAR_TYPES.has(e.type)) bytes += e.size ?? 0;
    if (e.type === 'SymbolicLink') {
      const target = String(e.linkpath ?? '');
      if (target === '') throw unsafe(name, 'symlink without a target');
      if (target.includes('\0')) throw unsafe(name, 'symlink target contains a NUL byte');
      if (isAbsoluteLike(target)) throw unsafe(name, `symlink target '${target}' is absolute`);
      if (key === '') throw unsafe(name, 'the root cannot be a symlink');
      symlinks.set(key, target);
    } else {
      symlinks.delete(key);
    }
    if (e.type === 'Link') {
      const target = String(e.linkpath ?? '');
      if (target === '') throw unsafe(name, 'hardlink without a target');
      if (isAbsoluteLike(target)) throw unsafe(name, `hardlink target '${target}' is absolute`);
      hardlinks.push({ entry: name, target: entrySegments(target, `hardlink target '${target}'`, name) });
    }
  };
  try {
    await tar.list({
      file,
      strict: true,
      onReadEntry: (e) => {
        if (problem === undefined) {
          try {
            check(e);
          } catch (err) {
            problem = err as NinesError;
          }
        }
        e.resume();
      },
    });
  } catch (err) {
    if (problem) throw problem;
    throw new NinesError('NINES_E_ARTIFACT_INVALID', `not a readable tar.gz: ${(err as Error).message}`, {
      file: basename(file),
    });
  }
  if (problem) throw problem;
  if (entries === 0) {
    throw new NinesError('NINES_E_ARTIFACT_INVALID', 'not a readable tar.gz: the archive has no entries', {
      file: basename(file),
    });
  }
  // Links are checked once every symlink is known: resolution goes through the other symlinks too.
  for (const [path, target] of symlinks) {
    const segs = path.split('/');
    const resolved = resolveInside(segs.slice(0, -1), target.split(/[/\\]+/), symlinks, { hops: 64 });
    if (resolved === undefined) throw unsafe(path, `symlink target '${target}' resolves outside the root`);
  }
  for (const { entry, target } of hardlinks) {
    for (let i = 1; i <= target.length; i++) {
      const prefix = target.slice(0, i).join('/');
      if (symlinks.has(prefix)) throw unsafe(entry, `hardlink target goes through the symlink '${prefix}'`);
    }
    if (resolveInside([], target, symlinks, { hops: 64 }) === undefined) {
      throw unsafe(entry, `hardlink target '${target.join('/')}' resolves outside the root`);
    }
  }
  return { entries, bytes };
}

async function assertGzip(file: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(file, 'r');
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    if (bytesRead < 2 || buf[0] !== 0x1f || buf[1] !== 0x8b) {
      throw new NinesError('NINES_E_ARTIFACT_INVALID', 'not a readable tar.gz: no gzip header', {
        file: basename(file),
      });
    }
  } catch (err) {
    if (err instanceof NinesError) throw err;
    throw new NinesError('NINES_E_ARTIFACT_INVALID', `not a readable tar.gz: ${(err as Error).message}`, {
      file: basename(file),
    });
  } finally {
    await fh?.close();
  }
}

/**
 * Verifies `file` against `expectedSha256`, inspects it, extracts it into a temporary directory next to
 * `destDir` and renames that into place, so `destDir` is either absent or complete. When `destDir`
 * already exists this is a no-op (releases are immutable).
 */
export async function unpackArchive(file: string, destDir: string, expectedSha256: string): Promise<void> {
  const dest = resolve(destDir);
  if (await exists(dest)) return;
  const actual = await sha256File(file).catch((err: Error) => {
    throw new NinesError('NINES_E_ARTIFACT_INVALID', `cannot read artifact: ${err.message}`, {
      file: basename(file),
    });
  });
  const expected = expectedSha256.trim().toLowerCase();
  if (actual !== expected) {
    throw new NinesError(
      'NINES_E_ARTIFACT_CHECKSUM',
      `artifact checksum mismatch: expected sha256 ${expected}, actual ${actual}`,
      { expected, actual },
    );
  }
  await inspectArchive(file);
  await mkdir(dirname(dest), { recursive: true });
  const tmp = await mkdtemp(join(dirname(dest), `.${basename(dest)}.tmp-`));
  try {
    await tar.extract({
      file,
      cwd: tmp,
      strict: true,
      preservePaths: false,
      preserveOwner: false,
      filter: (_p, e) => !('type' in e) || ALLOWED_TYPES.has(String(e.type)),
    });
    await chmod(tmp, 0o755);
    try {
      await rename(tmp, dest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Someone else unpacked the same release meanwhile: theirs is as good as ours.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await exists(dest))) {
        await rm(tmp, { recursive: true, force: true });
        return;
      }
      throw err;
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof NinesError) throw err;
    throw new NinesError('NINES_E_ARTIFACT_INVALID', `cannot extract artifact: ${(err as Error).message}`, {
      file: basename(file),
    });
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
