import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostSignals, ObservedInstance } from '../core/protocol.js';
import { hostMetricsText } from './hostmetrics.js';

/**
 * The agent's `/metrics` (`--metrics-listen`): node_exporter-compatible host metrics plus the agent's
 * view of its instances. No token, like node_exporter: bind it to an address only Prometheus reaches.
 */
export interface AgentMetricsSource {
  /** A fresh snapshot (read on each scrape). */
  hostSignals(): Promise<HostSignals>;
  observed(): ObservedInstance[];
}

export function agentMetricsText(h: HostSignals, instances: ObservedInstance[]): string {
  const out = hostMetricsText(h);
  out.declare('nines_agent_instances', 'gauge', 'Instances this agent supervises, by state.');
  const byState = new Map<string, number>();
  for (const i of instances) byState.set(i.state, (byState.get(i.state) ?? 0) + 1);
  for (const [state, n] of byState) {
    out.add('nines_agent_instances', 'gauge', 'Instances this agent supervises, by state.', { state }, n);
  }
  out.declare('nines_agent_instance_restarts_total', 'counter', 'Restarts of an instance after it exited.');
  out.declare(
    'nines_agent_instance_healthy',
    'gauge',
    "1 when the instance passes its agent's readiness probe.",
  );
  for (const i of instances) {
    out.add('nines_agent_instance_restarts_total', 'counter', '', { instance: i.id }, i.restarts);
    out.add('nines_agent_instance_healthy', 'gauge', '', { instance: i.id }, i.healthy ? 1 : 0);
  }
  return out.text();
}

export async function startAgentMetrics(
  listen: { host: string; port: number },
  src: AgentMetricsSource,
): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    src
      .hostSignals()
      .then((h) => {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(req.method === 'HEAD' ? undefined : agentMetricsText(h, src.observed()));
      })
      .catch((err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
