import { mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Agent, request } from 'undici';
import { Failover } from '../core/failover.js';

/**
 * The proxy's own credential (controller/proxies.ts): registered once with a join token, then kept in
 * `<data-dir>/proxy/credentials.json` (mode 0600) and presented as a bearer token of role `proxy`. A
 * restart reads the file and needs no join token.
 */
export interface ProxyCredentials {
  name: string;
  token: string;
}

export function readProxyCredentials(file: string, name: string): ProxyCredentials | undefined {
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as Partial<ProxyCredentials>;
    if (c.name === name && typeof c.token === 'string' && c.token.length > 0) return { name, token: c.token };
  } catch {}
  return undefined;
}

export async function registerProxy(o: {
  controllerUrl: string;
  joinToken: string;
  name: string;
  file: string;
  ca?: string;
}): Promise<ProxyCredentials> {
  const dispatcher = o.ca ? new Agent({ connect: { ca: o.ca } }) : undefined;
  try {
    // Several controller URLs (comma-separated): a follower names the leader, which registers it.
    const text = await new Failover(o.controllerUrl).run(async (base, signal) => {
      const res = await request(`${base}/v1/proxy/register`, {
        method: 'POST',
        headers: { authorization: `Bearer ${o.joinToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: o.name }),
        signal,
        ...(dispatcher ? { dispatcher } : {}),
      });
      const t = await res.body.text();
      if (res.statusCode !== 201) {
        let msg = t.slice(0, 300);
        let code: string | undefined;
        let leader: string | null = null;
        try {
          const e = (
            JSON.parse(t) as { error?: { code?: string; message?: string; details?: { leader?: unknown } } }
          ).error;
          if (e?.code) msg = `${e.code}: ${e.message ?? ''}`;
          code = e?.code;
          if (typeof e?.details?.leader === 'string') leader = e.details.leader;
        } catch {}
        throw Object.assign(new Error(`proxy registration refused (HTTP ${res.statusCode}): ${msg}`), {
          status: res.statusCode,
          code,
          leader,
        });
      }
      return t;
    });
    const body = JSON.parse(text) as { token?: unknown };
    if (typeof body.token !== 'string') throw new Error('proxy registration: the answer has no token');
    const creds = { name: o.name, token: body.token };
    mkdirSync(dirname(o.file), { recursive: true, mode: 0o700 });
    await writeFile(o.file, `${JSON.stringify(creds)}\n`, { mode: 0o600 });
    return creds;
  } finally {
    await dispatcher?.close();
  }
}
