import type { Logger } from 'pino';
import { type ArtifactSource, pruneBackups, type StateSnapshot, writeBackup } from '../core/backup-file.js';
import type { ArtifactStore } from './artifacts.js';
import type { Leadership } from './leadership.js';
import type { Store } from './store/types.js';

/** The release artifacts this controller holds, as backup sources. */
export async function artifactSources(store: Store, artifacts: ArtifactStore): Promise<ArtifactSource[]> {
  const out: ArtifactSource[] = [];
  for (const svc of await store.listServices()) {
    for (const r of await store.listReleases(svc.name)) {
      if (!(await artifacts.has(r.service, r.version))) continue;
      out.push({
        service: r.service,
        version: r.version,
        sha256: r.sha256,
        open: async () => (await artifacts.open(r.service, r.version)).stream,
      });
    }
  }
  return out;
}

export interface BackupScheduleOptions {
  dir: string;
  key: Buffer;
  intervalMs: number;
  keep: number;
  artifacts: boolean;
}

/**
 * Scheduled backups: on the leader only (registered with `leadership.onLeadership`), one backup every
 * `intervalMs` into `dir`, then the oldest beyond `keep` are removed.
 */
export class BackupScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private active = false;

  constructor(
    private readonly deps: {
      store: Store;
      artifacts: ArtifactStore;
      leadership: Leadership;
      logger: Logger;
      schedule: BackupScheduleOptions;
    },
  ) {
    deps.leadership.onLeadership(
      () => this.start(),
      () => this.stop(),
    );
  }

  private start(): void {
    this.active = true;
    const loop = () => {
      this.running = this.once()
        .catch((err) => this.deps.logger.error({ err }, 'scheduled backup failed'))
        .finally(() => {
          if (this.active) this.timer = setTimeout(loop, this.deps.schedule.intervalMs);
        });
    };
    this.timer = setTimeout(loop, this.deps.schedule.intervalMs);
  }

  private async stop(): Promise<void> {
    this.active = false;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One backup now, then retention. Returns the backup's path. */
  async once(): Promise<string> {
    const { store, artifacts, schedule, logger } = this.deps;
    const state: StateSnapshot = await store.exportSnapshot();
    const path = await writeBackup(
      schedule.dir,
      schedule.key,
      state,
      schedule.artifacts ? await artifactSources(store, artifacts) : null,
    );
    const removed = await pruneBackups(schedule.dir, schedule.keep);
    logger.info({ path, removed }, 'backup written');
    await store.appendEvent({
      at: Date.now(),
      kind: 'backup.written',
      subject: 'controller',
      message: `backup ${path}${removed.length ? `; removed ${removed.length} older` : ''}`,
      data: { path },
    });
    return path;
  }
}
