import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A key and its self-signed certificate, PEM. */
export interface TestCertificate {
  readonly key: Buffer;
  readonly cert: Buffer;
}

/**
 * A self-signed P-256 certificate for `localhost`, made by the openssl CLI
 * for this run (test certificates are generated, never fetched or
 * committed). `name` goes into the subject, to tell two apart.
 */
export function makeCertificate(name: string): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'earwax-cert-'));
  try {
    const key = join(dir, 'cert.key');
    const cert = join(dir, 'cert.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        `/CN=localhost/O=${name}`,
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(key), cert: readFileSync(cert) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
