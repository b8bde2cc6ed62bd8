import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:https';

/** PEM certificate chain and private key for the controller's API. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/**
 * A Fastify `serverFactory` that serves HTTPS. Fastify's types follow the `https` option to a different
 * server type; a factory keeps the API's type (and every plugin written against it) the same whether
 * TLS is on or not — an https.Server is an http.Server to everything Fastify calls on it.
 */
export function httpsServerFactory(tls: TlsFiles) {
  return (handler: (req: IncomingMessage, res: ServerResponse) => void): Server =>
    createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, handler) as unknown as Server;
}
