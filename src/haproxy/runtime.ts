import { createConnection } from 'node:net';

/**
 * A client of HAProxy's Runtime API (the `stats socket … level admin` of the global section): one
 * command per connection, in HAProxy's non-interactive mode — it reads one line, answers and closes.
 * `socket` is a unix socket path, or `host:port` for a TCP stats socket.
 */
export class HaproxyRuntime {
  constructor(
    readonly socket: string,
    private readonly timeoutMs = 5000,
  ) {}

  command(cmd: string): Promise<string> {
    if (/[\r\n;]/.test(cmd)) {
      // One command per call: a `;` would let a server name smuggle in a second command.
      return Promise.reject(
        new Error(`runtime command must be one line without ';': ${JSON.stringify(cmd)}`),
      );
    }
    return new Promise((resolve, reject) => {
      const tcp = /^([^/]+):(\d+)$/.exec(this.socket);
      const conn = tcp
        ? createConnection({ host: tcp[1] ?? '127.0.0.1', port: Number(tcp[2]) })
        : createConnection({ path: this.socket });
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => {
        conn.destroy();
        reject(
          new Error(
            `haproxy runtime API (${this.socket}): no answer to "${cmd}" within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      conn.on('connect', () => conn.end(`${cmd}\n`));
      conn.on('data', (d: Buffer) => chunks.push(d));
      conn.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`haproxy runtime API (${this.socket}): ${err.message}`));
      });
      conn.on('close', (hadError) => {
        clearTimeout(timer);
        if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
      });
    });
  }
}
