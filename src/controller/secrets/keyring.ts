import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { NinesError } from '../../core/errors.js';

/**
 * The key that seals secrets, kept outside the store: `<data-dir>/secrets.key` (64 hex characters,
 * mode 0600). A backup of the store alone reveals no secret; the key file is backed up separately.
 *
 * Sealed form: `v1.<key id>.<iv>.<tag>.<ciphertext>` (base64url), AES-256-GCM with a 96-bit random IV and
 * the row's identity (service, environment, name) as additional data, so a sealed value copied onto
 * another row does not open. The key id (first 8 hex of the key's sha256) says which key sealed it,
 * which is what makes rotation safe to interrupt:
 *
 *   1. a new key is written to `secrets.key.next` (fsync'd);
 *   2. every secret is re-sealed with it, in one store transaction;
 *   3. `secrets.key` is renamed to `secrets.key.prev`, `secrets.key.next` to `secrets.key`.
 *
 * Every key file present is loaded, so whatever step a crash interrupts, every secret still opens; a
 * controller that finds `secrets.key.next` at start finishes the rotation.
 */

export const KEY_FILE = 'secrets.key';
export const NEXT_KEY_FILE = 'secrets.key.next';
export const PREV_KEY_FILE = 'secrets.key.prev';

const KEY_RE = /^[0-9a-f]{64}$/;

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

function aad(service: string, environment: string, name: string): Buffer {
  return Buffer.from(`${service}\u0000${environment}\u0000${name}`);
}

/** Writes a new random key file with mode 0600 (fails if the file exists). */
export function writeKeyFile(file: string, key: Buffer = randomBytes(32)): Buffer {
  const fd = openSync(file, 'wx', 0o600);
  try {
    writeSync(fd, `${key.toString('hex')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return key;
}

/** Reads a key file; refuses one that others may read or that is not 64 hex characters. */
export function readKeyFile(file: string): Buffer | undefined {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch {
    return undefined;
  }
  if ((st.mode & 0o077) !== 0) {
    throw new NinesError(
      'NINES_E_SECRETS_KEY',
      `${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`,
    );
  }
  const text = readFileSync(file, 'utf8').trim();
  if (!KEY_RE.test(text)) {
    throw new NinesError('NINES_E_SECRETS_KEY', `${file} does not hold a 256-bit key (64 hex characters)`);
  }
  return Buffer.from(text, 'hex');
}

export class Keyring {
  /** Key id → key. */
  private readonly keys = new Map<string, Buffer>();
  private current: Buffer;
  private readonly dir: string;

  private constructor(dir: string, current: Buffer, others: Buffer[]) {
    this.dir = dir;
    this.current = current;
    for (const k of [current, ...others]) this.keys.set(keyId(k), k);
  }

  /** Loads the key files of `dir`, creating `secrets.key` on first start. */
  static open(dir: string): Keyring {
    let current = readKeyFile(join(dir, KEY_FILE));
    let created = false;
    if (!current) {
      current = writeKeyFile(join(dir, KEY_FILE));
      created = true;
    }
    const others = [NEXT_KEY_FILE, PREV_KEY_FILE]
      .map((f) => readKeyFile(join(dir, f)))
      .filter((k): k is Buffer => k !== undefined);
    const ring = new Keyring(dir, current, others);
    ring.created = created;
    return ring;
  }

  /** True when `open` had to create `secrets.key` (a first start, or a key that went missing). */
  created = false;

  /** The key id a sealed value names (undefined for a value not in sealed form). */
  static sealedKeyId(sealed: string): string | undefined {
    const [v, id] = sealed.split('.');
    return v === 'v1' && id ? id : undefined;
  }

  has(id: string): boolean {
    return this.keys.has(id);
  }

  /** A keyring over given keys (tests). */
  static of(current: Buffer, ...others: Buffer[]): Keyring {
    return new Keyring('', current, others);
  }

  get currentId(): string {
    return keyId(this.current);
  }

  /** True when the sealed value was sealed with the current key. */
  isCurrent(sealed: string): boolean {
    return sealed.split('.')[1] === this.currentId;
  }

  seal(plain: string, service: string, environment: string, name: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.current, iv);
    c.setAAD(aad(service, environment, name));
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    const b = (x: Buffer) => x.toString('base64url');
    return `v1.${this.currentId}.${b(iv)}.${b(c.getAuthTag())}.${b(ct)}`;
  }

  open(sealed: string, service: string, environment: string, name: string): string {
    const [v, id, iv, tag, ct] = sealed.split('.');
    if (v !== 'v1' || !id || iv === undefined || tag === undefined || ct === undefined) {
      throw new NinesError('NINES_E_SECRETS_KEY', `secret ${name} of ${service} is not in a sealed form`);
    }
    const key = this.keys.get(id);
    if (!key) {
      throw new NinesError(
        'NINES_E_SECRETS_KEY',
        `secret ${name} of ${service} (${environment}) was sealed with key ${id}, which no key file holds`,
      );
    }
    try {
      const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      d.setAAD(aad(service, environment, name));
      d.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
    } catch {
      throw new NinesError(
        'NINES_E_SECRETS_KEY',
        `secret ${name} of ${service} (${environment}) does not open with key ${id}: altered or misplaced`,
      );
    }
  }

  /**
   * Step 1 of a rotation: the next key, on disk before anything is sealed with it (an unfinished
   * rotation's next key is reused). From now on new secrets are sealed with it.
   */
  beginRotation(): string {
    const file = join(this.dir, NEXT_KEY_FILE);
    const next = readKeyFile(file) ?? writeKeyFile(file);
    this.keys.set(keyId(next), next);
    this.current = next;
    return keyId(next);
  }

  /** Step 3: the next key becomes `secrets.key`, the old one `secrets.key.prev`. */
  finishRotation(): void {
    renameSync(join(this.dir, KEY_FILE), join(this.dir, PREV_KEY_FILE));
    renameSync(join(this.dir, NEXT_KEY_FILE), join(this.dir, KEY_FILE));
  }

  /** True when a rotation was interrupted (`secrets.key.next` exists). */
  rotationPending(): boolean {
    return readKeyFile(join(this.dir, NEXT_KEY_FILE)) !== undefined;
  }
}
