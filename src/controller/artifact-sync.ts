import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { request } from 'undici';
import type { ArtifactStore } from './artifacts.js';
import type { Leadership } from './leadership.js';
import type { Store } from './store/types.js';

/**
 * Release artifacts live on each controller's disk. With several controllers, a follower copies every
 * artifact it does not have from the leader (checked against the release's sha256), so that whichever
 * controller leads next can serve agents every release — including the one a deploy in flight needs.
 */
export class ArtifactSync {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = true;
  /** Releases that failed recently: retried after a pause, not in a tight loop. */
  private readonly failedAt = new Map<string, number>();

  constructor(
    private readonly deps: {
      store: Store;
      artifacts: ArtifactStore;
      leadership: Leadership;
      /** A token the leader accepts for artifact downloads (this controller's node token). */
      token: () => string | undefined;
      logger: Logger;
      intervalMs?: number;
    },
  ) {}

  start(): void {
    this.stopped = false;
    const loop = () => {
      this.running = this.tick()
        .catch((err) => this.deps.logger.warn({ err }, 'artifact sync failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, this.deps.intervalMs ?? 2000);
        });
    };
    this.timer = setTimeout(loop, 200);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass: copy what is missing from the leader. Exposed for tests. */
  async tick(): Promise<number> {
    const { leadership, store, artifacts, logger } = this.deps;
    const leader = leadership.isLeader ? null : leadership.leaderUrl;
    const token = this.deps.token();
    if (!leader || !token) return 0;
    let copied = 0;
    for (const svc of await store.listServices()) {
      for (const r of await store.listReleases(svc.name)) {
        if (this.stopped) return copied;
        const key = `${r.service}/${r.version}`;
        if (await artifacts.has(r.service, r.version)) continue;
        if ((this.failedAt.get(key) ?? 0) > Date.now() - 10_000) continue;
        const path = `/v1/services/${encodeURIComponent(r.service)}/releases/${encodeURIComponent(r.version)}/artifact`;
        try {
          const res = await request(leader + path, {
            headers: { authorization: `Bearer ${token}` },
            headersTimeout: 10_000,
            bodyTimeout: 30_000,
          });
          if (res.statusCode !== 200) {
            await res.body.dump();
            throw new Error(`HTTP ${res.statusCode}`);
          }
          const got = await artifacts.receive(r.service, res.body as unknown as Readable, r.sha256);
          await artifacts.commit(got.tmp, r.service, r.version);
          copied++;
          this.failedAt.delete(key);
          logger.info({ release: key, from: leader }, 'artifact copied from the leader');
        } catch (err) {
          this.failedAt.set(key, Date.now());
          logger.warn({ release: key, from: leader, err: (err as Error).message }, 'artifact copy failed');
        }
      }
    }
    return copied;
  }
}
