// Where the API lab's kube-apiserver and etcd binaries are: the environment, else scripts/k8s-binaries.sh
// (which builds or reuses its cache). Finds files only; must not start anything.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ApiServerError } from './errors.ts';

const execFileP = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');

export interface K8sBinaries {
  kubeApiserver: string;
  etcd: string;
}

let binaries: Promise<K8sBinaries> | undefined;

/**
 * KUBE_APISERVER and ETCD from the environment (what `eval "$(scripts/k8s-binaries.sh)"` exports), else
 * whatever scripts/k8s-binaries.sh prints (it reuses its cache, or builds: ~9 min cold). Fails loudly:
 * the API tests must not pass by skipping. TOLLGATE_K8S_UNAVAILABLE (set by .ci/run when the build failed)
 * fails at once instead of building again.
 */
export function k8sBinaries(): Promise<K8sBinaries> {
  binaries ??= (async () => {
    if (process.env.TOLLGATE_K8S_UNAVAILABLE)
      throw new ApiServerError(
        'E_APISERVER_BINARIES',
        `kube-apiserver/etcd are not available: ${process.env.TOLLGATE_K8S_UNAVAILABLE}. Build them with scripts/k8s-binaries.sh (needs Go and the module proxy).`,
      );
    let kubeApiserver = process.env.KUBE_APISERVER;
    let etcd = process.env.ETCD;
    if (!kubeApiserver || !etcd) {
      const script = join(REPO, 'scripts/k8s-binaries.sh');
      try {
        const { stdout } = await execFileP(script, [], { maxBuffer: 1 << 20, timeout: 30 * 60_000 });
        kubeApiserver = /^KUBE_APISERVER=(.*)$/m.exec(stdout)?.[1];
        etcd = /^ETCD=(.*)$/m.exec(stdout)?.[1];
      } catch (error) {
        const e = error as { stderr?: string; message: string };
        throw new ApiServerError(
          'E_APISERVER_BINARIES',
          `kube-apiserver/etcd are not available: ${script} failed (${(e.stderr ?? e.message).trim().split('\n').slice(-3).join(' | ')}). Build them with scripts/k8s-binaries.sh (needs Go and the module proxy) or set KUBE_APISERVER and ETCD.`,
          undefined,
          { cause: error },
        );
      }
    }
    for (const [name, path] of [
      ['KUBE_APISERVER', kubeApiserver],
      ['ETCD', etcd],
    ] as const) {
      if (!path || !existsSync(path))
        throw new ApiServerError(
          'E_APISERVER_BINARIES',
          `${name} binary not found ('${path ?? ''}'): run scripts/k8s-binaries.sh or set ${name}`,
        );
    }
    return { kubeApiserver: kubeApiserver!, etcd: etcd! };
  })();
  binaries.catch(() => {
    binaries = undefined; // a later call may find them (e.g. after a build finished)
  });
  return binaries;
}
