// Throwaway certificates for the labs' API servers: a CA, one serving certificate and the service-account
// signing key pair, made with the openssl binary (EC P-256: fast). For tests and labs only; never a node's.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROUTER } from './addresses.ts';
import { LabError } from './errors.ts';
import { registerOpenLab } from './registry.ts';

const execFileP = promisify(execFile);

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  caPem: string;
  servingCert: string;
  servingKey: string;
  saKey: string;
  saPub: string;
}

export interface PkiNames {
  /** The CA's common name. */
  ca: string;
  /** The serving certificate's subjectAltName entries, e.g. `IP:198.51.100.1`, `DNS:kubernetes`. */
  altNames: string[];
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await execFileP('openssl', args, { cwd }).catch((error: { stderr?: string; message: string }) => {
    throw new LabError('E_LAB_COMMAND', `openssl ${args[0]} failed: ${error.stderr ?? error.message}`);
  });
}

/** Writes the CA, the API server's serving certificate (valid 2 days) and the SA keys into `dir`. */
export async function makePki(dir: string, names: PkiNames): Promise<Pki> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const days = ['-days', '2'];
  await openssl(
    ['req', '-x509', ...ec, ...days, '-subj', `/CN=${names.ca}`, '-keyout', 'ca.key', '-out', 'ca.crt'],
    dir,
  );
  await openssl(
    ['req', ...ec, '-subj', '/CN=kube-apiserver', '-keyout', 'serving.key', '-out', 'serving.csr'],
    dir,
  );
  writeFileSync(
    join(dir, 'serving.ext'),
    `subjectAltName=${names.altNames.join(',')}\nextendedKeyUsage=serverAuth\n`,
  );
  const sign = ['-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', ...days, '-extfile', 'serving.ext'];
  await openssl(['x509', '-req', '-in', 'serving.csr', ...sign, '-out', 'serving.crt'], dir);
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key'], dir);
  await openssl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    servingCert: join(dir, 'serving.crt'),
    servingKey: join(dir, 'serving.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
}

let apiCredentials: Promise<Pki> | undefined;

/**
 * The lab API servers' set, one per process: the serving certificate is for 198.51.100.254 (every lab's
 * router has that address, so one certificate serves every lab of this process). Removed at exit.
 */
export function labApiCredentials(): Promise<Pki> {
  apiCredentials ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-k8s-creds-'));
    registerOpenLab({ teardownSync: () => rmSync(dir, { recursive: true, force: true }) });
    return makePki(dir, {
      ca: 'tollgate-lab-ca',
      altNames: [`IP:${ROUTER.nodeNet4}`, 'IP:10.96.0.1', 'DNS:kubernetes', 'DNS:kubernetes.default.svc'],
    });
  })();
  apiCredentials.catch(() => {
    apiCredentials = undefined;
  });
  return apiCredentials;
}
