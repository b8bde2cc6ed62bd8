import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { S3Options } from '../controller/s3.js';
import type { TlsFiles } from '../controller/tls.js';
import { NinesError } from '../core/errors.js';

/**
 * Option groups shared by several commands: object storage for release artifacts (`nines controller`).
 * Storage credentials are never flags (they would show in `ps`): the SDK's chain reads
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile or an instance role.
 */
export function addS3Options(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--s3-bucket <bucket>', 'store release artifacts in this S3-compatible bucket').env(
        'NINES_S3_BUCKET',
      ),
    )
    .addOption(
      new Option('--s3-endpoint <url>', 'S3-compatible endpoint (MinIO, Ceph…; default AWS S3)').env(
        'NINES_S3_ENDPOINT',
      ),
    )
    .addOption(
      new Option('--s3-region <region>', 'bucket region').env('NINES_S3_REGION').default('us-east-1'),
    )
    .addOption(
      new Option('--s3-prefix <prefix>', 'key prefix of artifacts').env('NINES_S3_PREFIX').default('nines/'),
    );
}

export function s3Options(o: {
  s3Bucket?: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3Prefix?: string;
}): S3Options | undefined {
  if (!o.s3Bucket) {
    if (o.s3Endpoint) throw new NinesError('NINES_E_VALIDATION', '--s3-endpoint needs --s3-bucket');
    return undefined;
  }
  if (o.s3Endpoint && !/^https?:\/\/[^/]+/.test(o.s3Endpoint)) {
    throw new NinesError('NINES_E_VALIDATION', `--s3-endpoint ${o.s3Endpoint}: use http(s)://host[:port]`);
  }
  return {
    bucket: o.s3Bucket,
    ...(o.s3Endpoint ? { endpoint: o.s3Endpoint } : {}),
    ...(o.s3Region ? { region: o.s3Region } : {}),
    ...(o.s3Prefix !== undefined ? { prefix: o.s3Prefix } : {}),
  };
}

/** `nines controller --tls-cert/--tls-key`: serve the API over HTTPS. */
export function addTlsOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--tls-cert <file>', 'PEM certificate (chain) to serve the API over HTTPS').env(
        'NINES_TLS_CERT',
      ),
    )
    .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert').env('NINES_TLS_KEY'));
}

export async function tlsFiles(o: { tlsCert?: string; tlsKey?: string }): Promise<TlsFiles | undefined> {
  if (!o.tlsCert && !o.tlsKey) return undefined;
  if (!o.tlsCert || !o.tlsKey) {
    throw new NinesError('NINES_E_VALIDATION', '--tls-cert and --tls-key go together');
  }
  const read = (f: string, what: string) =>
    readFile(f, 'utf8').catch((err: Error) => {
      throw new NinesError('NINES_E_VALIDATION', `${what} ${f}: ${err.message}`);
    });
  const cert = await read(o.tlsCert, '--tls-cert');
  const key = await read(o.tlsKey, '--tls-key');
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) {
    throw new NinesError('NINES_E_VALIDATION', `--tls-cert ${o.tlsCert} holds no PEM certificate`);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw new NinesError('NINES_E_VALIDATION', `--tls-key ${o.tlsKey} holds no PEM private key`);
  }
  return { cert, key };
}
