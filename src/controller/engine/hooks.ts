import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unpackArchive } from '../../core/artifact.js';
import type { HookConfig } from '../../core/config.js';
import type { DeployRecord, ReleaseRecord } from '../store/types.js';
import { OperationFailure } from './ops.js';

/** The last bytes of a hook's output kept for the deploy's events. */
const TAIL_BYTES = 2000;

export interface HookResult {
  ok: boolean;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  ms: number;
  output: string;
}

/**
 * Run a deploy hook once on the controller's host: `sh -c command` in a fresh unpacked copy of the
 * release, with the service's env and NINES_SERVICE / NINES_RELEASE / NINES_FROM_RELEASE / NINES_DEPLOY.
 * A timeout kills the whole process group (SIGTERM, SIGKILL 2 s later).
 */
export async function runHook(
  name: string,
  hook: Required<HookConfig>,
  deploy: DeployRecord,
  release: ReleaseRecord,
  artifactPath: string,
  signal: AbortSignal,
): Promise<HookResult> {
  const dir = await mkdtemp(join(tmpdir(), `nines-hook-${deploy.service}-`));
  try {
    const cwd = join(dir, 'release');
    await unpackArchive(artifactPath, cwd, release.sha256);
    return await new Promise<HookResult>((resolve) => {
      const t0 = Date.now();
      const child = spawn('sh', ['-c', hook.command], {
        cwd,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? cwd,
          ...release.spec.env,
          NINES_SERVICE: deploy.service,
          NINES_RELEASE: release.version,
          NINES_FROM_RELEASE: deploy.fromVersion ?? '',
          NINES_DEPLOY: deploy.id,
          NINES_HOOK: name,
        },
      });
      let out = '';
      const keep = (b: Buffer) => {
        out = (out + b.toString('utf8')).slice(-TAIL_BYTES);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let timedOut = false;
      const kill = () => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGTERM');
        } catch {}
        setTimeout(() => {
          try {
            if (child.pid) process.kill(-child.pid, 'SIGKILL');
          } catch {}
        }, 2000).unref();
      };
      const timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, hook.timeout);
      const onAbort = () => kill();
      signal.addEventListener('abort', onAbort, { once: true });
      child.on('error', (err) => {
        out += `\n${err.message}`;
      });
      child.on('close', (code, sig) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve({
          ok: code === 0 && !timedOut,
          code,
          signal: sig,
          timedOut,
          ms: Date.now() - t0,
          output: out.trim(),
        });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function hookFailure(name: string, hook: Required<HookConfig>, r: HookResult): OperationFailure {
  const why = r.timedOut
    ? `timed out after ${hook.timeout} ms`
    : r.signal
      ? `was killed by ${r.signal}`
      : `exited with code ${r.code}`;
  return new OperationFailure(
    `${name} hook \`${hook.command}\` ${why}${r.output ? `: ${r.output.split('\n').slice(-5).join(' | ')}` : ''}`,
  );
}
