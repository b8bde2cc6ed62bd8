import type { Logger } from 'pino';

/** Waits `ms`, or less if `signal` aborts; never rejects (loops check `signal.aborted` themselves). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The agent's side of a per-host work list the controller keeps open (host tasks, drill faults): long
 * poll the open items (the controller answers once the list differs from the ids we already have), act
 * once on each new id, forget ids the controller no longer lists. An item is never acted on twice, even
 * when its answer is lost.
 */
export async function pollOpenItems<T extends { id: string }>(o: {
  what: string;
  hostId: () => string | undefined;
  list: (hostId: string, have: string[], signal: AbortSignal) => Promise<T[]>;
  act: (hostId: string, item: T) => Promise<void>;
  logger: Logger;
  signal: AbortSignal;
}): Promise<void> {
  const { signal } = o;
  const seen = new Set<string>();
  while (!signal.aborted) {
    const hostId = o.hostId();
    if (!hostId) {
      await sleep(500, signal);
      continue;
    }
    let items: T[];
    try {
      items = await o.list(hostId, [...seen], signal);
    } catch (err) {
      if (signal.aborted) break;
      o.logger.debug({ err }, `${o.what}: poll failed, retrying`);
      await sleep(1000, signal);
      continue;
    }
    const open = new Set(items.map((i) => i.id));
    for (const id of seen) if (!open.has(id)) seen.delete(id);
    let fresh = 0;
    for (const item of items) {
      if (seen.has(item.id)) continue;
      seen.add(item.id);
      fresh++;
      await o.act(hostId, item);
    }
    // Nothing new: wait a moment so an unchanged list does not spin.
    if (fresh === 0) await sleep(200, signal);
  }
}
