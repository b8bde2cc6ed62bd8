import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { NinesError } from '../../core/errors.js';
import type { HostDesiredState } from '../../core/protocol.js';
import { BatchRead } from '../batch-read.js';
import { hostCounter } from '../fleet.js';
import type { Hub } from '../hub.js';
import type { SecretRecord, Store } from '../store/types.js';
import { KEY_FILE, Keyring } from './keyring.js';

export { Keyring } from './keyring.js';

/** What the API shows of a secret or variable: never a secret's value. */
export interface SecretView {
  service: string;
  environment: string;
  name: string;
  kind: 'secret' | 'var';
  version: number;
  updatedAt: number;
  updatedBy: string;
  /** Variables only. */
  value?: string;
}

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const ENV_RE = /^[a-z][a-z0-9-]{0,62}$/;
export const MAX_VALUE_BYTES = 64 * 1024;
/** Set by the agent for every instance: a secret or variable must not shadow them. */
const RESERVED = /^(PORT|NINES_.*)$/;

export function view(r: SecretRecord): SecretView {
  return {
    service: r.service,
    environment: r.environment,
    name: r.name,
    kind: r.kind,
    version: r.version,
    updatedAt: r.updatedAt,
    updatedBy: r.updatedBy,
    ...(r.kind === 'var' ? { value: r.value } : {}),
  };
}

/**
 * Secrets and environment variables per service and environment. A controller serves one environment
 * (`--environment`, default `production`): the values of that environment reach the instances; the
 * others are kept for the controllers of other environments that share the store.
 *
 * Secrets are sealed with the keyring (`keyring.ts`) before they reach the store, and opened only to
 * build the desired state of a host that runs the service and asked for it with its own signature.
 * Variables are plain and shown by the API. Either applies to an instance at its next start (a deploy,
 * a restart, a replacement): running processes keep their environment.
 */
export class Secrets {
  private readonly store: Store;
  private readonly hub: Hub;
  private readonly log: Logger;
  private readonly dataDir: string;
  readonly environment: string;
  private ring: Keyring | undefined;
  /** The environment's variables and secrets, one read for the desired states asked for together. */
  private readonly rowsRead = new BatchRead<'rows', SecretRecord[]>(
    async () => new Map([['rows', await this.store.listSecrets({ environment: this.environment })]]),
  );

  constructor(deps: { store: Store; hub: Hub; logger: Logger; dataDir: string; environment?: string }) {
    this.store = deps.store;
    this.hub = deps.hub;
    this.log = deps.logger;
    this.dataDir = deps.dataDir;
    this.environment = deps.environment ?? 'production';
    if (!ENV_RE.test(this.environment)) {
      throw new NinesError('NINES_E_VALIDATION', `environment "${this.environment}": use a-z, 0-9 and -`);
    }
  }

  /** Loads (or creates) the key and finishes a rotation a crash interrupted. */
  async init(): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    this.ring = Keyring.open(this.dataDir);
    // Secrets sealed with keys this controller does not have: a second controller on a shared store
    // without a copy of secrets.key, or a restored store without its key. A key made just now would
    // seal new secrets that the other controllers cannot open: refuse to start instead.
    const ring = this.ring;
    const unknown = new Set<string>();
    for (const r of await this.store.listSecrets()) {
      const id = r.kind === 'secret' ? Keyring.sealedKeyId(r.value) : undefined;
      if (id && !ring.has(id)) unknown.add(id);
    }
    if (unknown.size > 0) {
      const msg = `the store holds secrets sealed with key(s) ${[...unknown].join(', ')}, which ${this.dataDir}/secrets.key does not hold: copy secrets.key from the controller that sealed them (or restore it from the backup)`;
      if (ring.created) {
        rmSync(join(this.dataDir, KEY_FILE), { force: true });
        this.ring = undefined;
        throw new NinesError('NINES_E_SECRETS_KEY', msg);
      }
      this.log.error({ keyIds: [...unknown] }, msg);
    }
    if (this.ring.rotationPending()) {
      this.log.warn('finishing an interrupted secrets key rotation');
      await this.rotateKey('controller (interrupted rotation)');
    }
  }

  private keyring(): Keyring {
    if (!this.ring) {
      mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
      this.ring = Keyring.open(this.dataDir);
    }
    return this.ring;
  }

  async set(o: {
    service: string;
    environment?: string;
    name: string;
    kind: 'secret' | 'var';
    value: string;
    by: string;
  }): Promise<SecretView> {
    const environment = o.environment ?? this.environment;
    validate(o.name, environment);
    if (Buffer.byteLength(o.value) > MAX_VALUE_BYTES) {
      throw new NinesError('NINES_E_VALIDATION', `the value of ${o.name} is larger than 64 KiB`);
    }
    if (o.value.includes('\u0000')) {
      throw new NinesError('NINES_E_VALIDATION', `the value of ${o.name} contains a NUL character`);
    }
    const value =
      o.kind === 'secret' ? this.keyring().seal(o.value, o.service, environment, o.name) : o.value;
    const rec = await this.store.putSecret({
      service: o.service,
      environment,
      name: o.name,
      kind: o.kind,
      value,
      updatedAt: Date.now(),
      updatedBy: o.by,
    });
    await this.store.appendEvent({
      at: rec.updatedAt,
      kind: `${o.kind}.set`,
      subject: o.service,
      message: `${o.kind === 'secret' ? 'secret' : 'variable'} ${o.name} of ${o.service} (${environment}) set to version ${rec.version} by ${o.by}`,
      data: { name: o.name, environment, version: rec.version },
    });
    if (environment === this.environment) await this.notifyHosts(o.service);
    return view(rec);
  }

  async list(service: string, environment?: string): Promise<SecretView[]> {
    const rows = await this.store.listSecrets({
      service,
      ...(environment === undefined ? {} : { environment }),
    });
    return rows.map(view);
  }

  async remove(service: string, environment: string | undefined, name: string, by: string): Promise<void> {
    const env = environment ?? this.environment;
    validate(name, env);
    if (!(await this.store.deleteSecret(service, env, name))) {
      throw new NinesError(
        'NINES_E_SECRET_NOT_FOUND',
        `${service} has no secret or variable ${name} in ${env}`,
      );
    }
    await this.store.appendEvent({
      at: Date.now(),
      kind: 'secret.removed',
      subject: service,
      message: `${name} of ${service} (${env}) removed by ${by}`,
      data: { name, environment: env },
    });
    if (env === this.environment) await this.notifyHosts(service);
  }

  /**
   * The desired state with this environment's variables merged into each instance's `env` (over the
   * release's own), and — only when the host itself signed the request — its secrets in `secrets`.
   */
  async forHost(desired: HostDesiredState, signedBy: string | undefined): Promise<HostDesiredState> {
    if (desired.instances.length === 0) return desired;
    const services = new Set(desired.instances.map((i) => i.service));
    const rows = ((await this.rowsRead.get('rows')) ?? []).filter((r) => services.has(r.service));
    if (rows.length === 0) return desired;
    const withSecrets = signedBy !== undefined && signedBy === desired.hostId;
    const vars = new Map<string, Record<string, string>>();
    const secrets = new Map<string, Record<string, string>>();
    const put = (m: Map<string, Record<string, string>>, r: SecretRecord, value: string) => {
      const o = m.get(r.service) ?? {};
      o[r.name] = value;
      m.set(r.service, o);
    };
    for (const r of rows) {
      if (r.kind === 'var') put(vars, r, r.value);
      else if (withSecrets) put(secrets, r, this.keyring().open(r.value, r.service, r.environment, r.name));
    }
    return {
      ...desired,
      instances: desired.instances.map((i) => {
        const v = vars.get(i.service);
        const s = secrets.get(i.service);
        if (!v && !s) return i;
        return { ...i, ...(v ? { env: { ...i.env, ...v } } : {}), ...(s ? { secrets: s } : {}) };
      }),
    };
  }

  /** Re-seals every secret with a new key (see keyring.ts for the crash-safe order). */
  async rotateKey(by: string): Promise<{ keyId: string; resealed: number }> {
    const ring = this.keyring();
    const id = ring.beginRotation();
    let resealed = 0;
    await this.store.transaction(async (tx) => {
      for (const r of await tx.listSecrets()) {
        if (r.kind !== 'secret' || ring.isCurrent(r.value)) continue;
        const plain = ring.open(r.value, r.service, r.environment, r.name);
        await tx.rewrapSecret(
          r.service,
          r.environment,
          r.name,
          ring.seal(plain, r.service, r.environment, r.name),
        );
        resealed++;
      }
    });
    ring.finishRotation();
    await this.store.appendEvent({
      at: Date.now(),
      kind: 'secrets.key-rotated',
      subject: 'secrets',
      message: `secrets key rotated to ${id} by ${by}; ${resealed} secrets re-sealed`,
      data: { keyId: id, resealed },
    });
    this.log.info({ keyId: id, resealed }, 'secrets key rotated');
    return { keyId: id, resealed };
  }

  /** Hosts running the service get a new generation, so their agents fetch the new values at once. */
  private async notifyHosts(service: string): Promise<void> {
    const hosts = new Set((await this.store.listInstances({ service })).map((i) => i.hostId));
    for (const h of hosts) {
      await this.store.nextCounter(hostCounter(h));
      this.hub.signal(hostCounter(h));
    }
  }
}

function validate(name: string, environment: string): void {
  if (!NAME_RE.test(name)) {
    throw new NinesError(
      'NINES_E_VALIDATION',
      `name "${name}": use an environment variable name (letters, digits, _; not starting with a digit)`,
    );
  }
  if (RESERVED.test(name)) {
    throw new NinesError('NINES_E_VALIDATION', `${name} is set by nines itself (PORT, NINES_*)`);
  }
  if (!ENV_RE.test(environment)) {
    throw new NinesError('NINES_E_VALIDATION', `environment "${environment}": use a-z, 0-9 and -`);
  }
}
