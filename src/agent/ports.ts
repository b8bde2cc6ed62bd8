import { createServer } from 'node:net';

/** Asks the kernel for a free TCP port on `address` (listen on 0, read it, close). */
export function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: address, port: 0, exclusive: true }, () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** A free port that is not one of `taken` (ports held by instances that are between two runs). */
export async function allocatePort(address: string, taken: ReadonlySet<number>): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort(address);
    if (!taken.has(port)) return port;
  }
  throw new Error(`could not find a free port on ${address}`);
}
