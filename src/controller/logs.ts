import { randomUUID } from 'node:crypto';
import type { LogChunk, LogRequest } from '../core/logs-protocol.js';
import type { Hub } from './hub.js';

/**
 * Open log requests, per host, in memory: a reader (the CLI or the dashboard) opens one per instance,
 * the host's agent picks them up by long poll and posts chunks. A request lives only as long as its
 * reader; with several controllers the reader and the agent must reach the same one (noted in
 * docs/operations.md), which a later issue can lift by relaying through the store.
 */
export interface LogSink {
  chunk(instanceId: string, chunk: LogChunk): void;
}

interface Open {
  hostId: string;
  request: LogRequest;
  sink: LogSink;
}

export class LogRelay {
  private readonly open = new Map<string, Open>();

  constructor(private readonly hub: Pick<Hub, 'signal'>) {}

  request(hostId: string, instanceId: string, tail: number, follow: boolean, sink: LogSink): string {
    const id = randomUUID();
    this.open.set(id, { hostId, request: { id, instanceId, tail, follow }, sink });
    this.hub.signal(topic(hostId));
    return id;
  }

  close(id: string): void {
    const o = this.open.get(id);
    if (!o) return;
    this.open.delete(id);
    this.hub.signal(topic(o.hostId));
  }

  forHost(hostId: string): LogRequest[] {
    const out: LogRequest[] = [];
    for (const o of this.open.values()) if (o.hostId === hostId) out.push(o.request);
    return out;
  }

  /** False when the request is gone (reader left) or belongs to another host. */
  deliver(id: string, hostId: string, chunk: LogChunk): boolean {
    const o = this.open.get(id);
    if (!o || o.hostId !== hostId) return false;
    o.sink.chunk(o.request.instanceId, chunk);
    if (chunk.done) this.close(id);
    return true;
  }
}

export function logTopic(hostId: string): string {
  return topic(hostId);
}

function topic(hostId: string): string {
  return `logs:${hostId}`;
}

/**
 * Prefixes every line with its instance (`kubectl logs --prefix` style) across interleaved chunks: a
 * chunk may end mid-line, so the tail of each instance's last chunk waits for the rest of its line.
 */
export class LinePrefixer {
  private readonly partial = new Map<string, string>();

  constructor(private readonly write: (text: string) => void) {}

  push(instanceId: string, data: string): void {
    const text = (this.partial.get(instanceId) ?? '') + data;
    const cut = text.lastIndexOf('\n');
    if (cut < 0) {
      this.partial.set(instanceId, text);
      return;
    }
    this.partial.set(instanceId, text.slice(cut + 1));
    const lines = text.slice(0, cut).split('\n');
    this.write(lines.map((l) => `[${instanceId}] ${l}\n`).join(''));
  }

  /** The unterminated rest of an instance's output, when it will send no more. */
  flush(instanceId: string): void {
    const rest = this.partial.get(instanceId);
    this.partial.delete(instanceId);
    if (rest) this.write(`[${instanceId}] ${rest}\n`);
  }
}
