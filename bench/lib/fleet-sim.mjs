// Simulated hosts for bench/fleet: each speaks the real agent protocol with the agent's own client
// (dist/agent/client.js) — registers, signs every request with its key, long-polls its desired state,
// reports on change and every second — but "runs" its instances as records, not processes, so one
// process can be a thousand hosts.
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const { ControllerClient } = await import(join(root, 'dist', 'agent', 'client.js'));

export class SimAgent {
  /** Receipt times of desired states: generation → ms timestamp. */
  received = new Map();
  reports = { ok: 0, failed: 0, latencies: [] };
  generation = 0;
  instances = [];

  constructor({ url, token, name, zone, heartbeatMs = 1000, onDesired }) {
    this.client = new ControllerClient(url, token);
    this.name = name;
    this.zone = zone;
    this.heartbeatMs = heartbeatMs;
    this.onDesired = onDesired;
    this.abort = new AbortController();
  }

  async start() {
    const { hostId, key } = await this.client.register(
      { name: this.name, zone: this.zone, labels: {}, address: '127.0.0.1' },
      this.abort.signal,
    );
    this.hostId = hostId;
    if (key) this.client.credentials = { hostId, key };
    this.polling = this.poll();
    // Spread heartbeats over the interval, as real hosts started at different times do.
    this.heartbeat = setTimeout(() => this.beat(), Math.random() * this.heartbeatMs);
  }

  async poll() {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        const d = await this.client.desired(this.hostId, this.generation, 25, signal);
        if (d.generation !== this.generation) {
          const at = Date.now();
          this.generation = d.generation;
          this.received.set(d.generation, at);
          this.instances = d.instances;
          this.onDesired?.(this, d, at);
          this.report();
        }
      } catch (err) {
        if (signal.aborted) return;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  beat() {
    if (this.abort.signal.aborted) return;
    this.report();
    this.heartbeat = setTimeout(() => this.beat(), this.heartbeatMs);
  }

  observed() {
    return this.instances
      .filter((i) => i.desired === 'running')
      .map((i, k) => ({
        id: i.id,
        state: 'running',
        healthy: true,
        pid: 10_000 + k,
        port: 20_000 + k,
        restarts: 0,
        startedAt: this.startedAt ?? Date.now(),
      }));
  }

  async report() {
    if (this.reporting) return;
    this.reporting = true;
    const t0 = performance.now();
    try {
      await this.client.report(
        { hostId: this.hostId, generation: this.generation, instances: this.observed() },
        AbortSignal.any([this.abort.signal, AbortSignal.timeout(10_000)]),
      );
      this.reports.ok++;
      this.reports.latencies.push(performance.now() - t0);
    } catch {
      if (!this.abort.signal.aborted) this.reports.failed++;
    } finally {
      this.reporting = false;
    }
  }

  async stop() {
    this.abort.abort();
    clearTimeout(this.heartbeat);
    await this.polling?.catch(() => {});
    await this.client.close();
  }
}

export function percentile(values, p) {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
