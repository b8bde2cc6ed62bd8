import { type ArtifactStore, withDownloadUrls } from './artifacts.js';
import type { Fleet } from './fleet.js';
import type { Secrets } from './secrets/index.js';

interface Served {
  generation: number;
  fencingToken: number | undefined;
  at: number;
  json: string;
}

/**
 * The agents' desired-state replies, serialised once per host and generation. An agent polls again
 * after every reply and at least every 25 s, so without this each poll re-read the host's instances,
 * releases and secrets and built and stringified the same answer.
 *
 * Validity: a reply is reused only for the host's current generation counter (read from the store on
 * every poll) and the current fencing token. Every change to what a host runs — its instances, their
 * desired state, a variable or secret of a service it runs — bumps that counter after the write
 * (Fleet, Secrets.notifyHosts), so a reused reply is never older than the counter says. The counter is
 * read before the instances, so a reply built meanwhile is at least as new as its generation. Releases
 * are immutable. Replies with presigned download URLs (remote artifacts, they expire) and replies to
 * anyone but the host itself (no secrets) are not kept. An entry also expires after `maxAgeMs`, so a
 * bug that forgets a bump cannot keep a host stale for longer than that.
 */
export class DesiredReplies {
  private readonly served = new Map<string, Served>();
  private readonly maxAgeMs: number;

  constructor(
    private readonly deps: {
      fleet: Fleet;
      artifacts: ArtifactStore;
      secrets?: Secrets | undefined;
      /** The leader's fencing token, stamped on every reply (agents refuse older ones). */
      leadership?: { readonly token: number } | undefined;
      maxAgeMs?: number;
      now?: () => number;
    },
  ) {
    this.maxAgeMs = deps.maxAgeMs ?? 30_000;
  }

  /** The reply for `hostId`, as JSON, to a caller signed as `signedBy` (secrets only for the host). */
  async reply(hostId: string, signedBy: string | undefined): Promise<string> {
    const { fleet, artifacts, secrets, leadership } = this.deps;
    const now = (this.deps.now ?? Date.now)();
    const generation = await fleet.hostGeneration(hostId);
    const fencingToken = leadership?.token;
    const keep = signedBy === hostId && !artifacts.remote;
    const hit = this.served.get(hostId);
    if (
      keep &&
      hit &&
      hit.generation === generation &&
      hit.fencingToken === fencingToken &&
      now - hit.at < this.maxAgeMs
    )
      return hit.json;
    const desired = await withDownloadUrls(artifacts, await fleet.desiredFor(hostId, generation));
    const answer = secrets ? await secrets.forHost(desired, signedBy) : desired;
    // Agents refuse desired state stamped with a token older than one they have seen (fencing).
    const json = JSON.stringify(leadership ? { ...answer, fencingToken } : answer);
    if (keep) {
      const cur = this.served.get(hostId);
      if (!cur || cur.generation <= generation)
        this.served.set(hostId, { generation, fencingToken, at: now, json });
    }
    return json;
  }

  /** Hosts with a kept reply (for tests). */
  get size(): number {
    return this.served.size;
  }
}
