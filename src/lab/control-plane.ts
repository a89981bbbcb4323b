// The processes of one lab API server inside the lab's network namespace: the unix-socket forwarder, etcd
// and kube-apiserver, with their command lines, readiness, logs, and the faults tests inject (stop, start,
// freeze). Must not listen outside the namespace, and knows no credentials beyond the files it is given.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROUTER } from './addresses.ts';
import { type AdminClient, API_PORT } from './admin-client.ts';
import { ApiServerError } from './errors.ts';
import type { K8sBinaries } from './k8s-binaries.ts';
import type { Pki } from './pki.ts';
import { type Proc, running, startInNamespace, stopProcess } from './processes.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A one-member etcd on the namespace's loopback, for a throwaway API server (no fsync: tests only). */
export function etcdArgs(dataDir: string): string[] {
  return [
    '--name=lab',
    `--data-dir=${dataDir}`,
    '--listen-client-urls=http://127.0.0.1:2379',
    '--advertise-client-urls=http://127.0.0.1:2379',
    '--listen-peer-urls=http://127.0.0.1:2380',
    '--initial-advertise-peer-urls=http://127.0.0.1:2380',
    '--initial-cluster=lab=http://127.0.0.1:2380',
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
}

// Copies bytes between a unix socket in the harness's filesystem and the API server's TCP port; runs inside
// the network namespace, so the harness never needs a route into the lab. Stopped by stop() or the lab's
// teardown (which kills every process in its namespaces).
const FORWARDER = `
const net = require('node:net'); const fs = require('node:fs');
const [path, host, port] = process.argv.slice(-3);
try { fs.unlinkSync(path); } catch {}
net.createServer((c) => {
  const u = net.connect(Number(port), host);
  c.pipe(u); u.pipe(c);
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
}).listen(path, () => process.stdout.write('ready\\n'));
`;

export interface ControlPlaneFiles {
  /** Instance directory: etcd data, logs, the forwarder socket. */
  dir: string;
  /** kube-apiserver's --token-auth-file. */
  tokenFile: string;
  creds: Pki;
  bins: K8sBinaries;
  /** More kube-apiserver flags (appended; a later flag wins). */
  extraArgs: string[];
}

export class ControlPlane {
  readonly ns: string;
  /** Where the forwarder listens: the harness's way in. */
  readonly socketPath: string;
  /** Milliseconds from the last startServers() to the API being ready. */
  readyMs = 0;
  readonly #files: ControlPlaneFiles;
  #etcd: Proc | undefined;
  #apiserver: Proc | undefined;
  #forwarder: Proc | undefined;

  constructor(ns: string, files: ControlPlaneFiles) {
    this.ns = ns;
    this.#files = files;
    this.socketPath = join(files.dir, 'api.sock');
  }

  async startForwarder(): Promise<void> {
    const proc = startInNamespace(
      this.ns,
      [process.execPath, '-e', FORWARDER, this.socketPath, ROUTER.nodeNet4, String(API_PORT)],
      join(this.#files.dir, 'forwarder.log'),
      'forwarder',
    );
    this.#forwarder = proc;
    const deadline = performance.now() + 10_000;
    while (!existsSync(this.socketPath)) {
      if (!running(proc) || performance.now() > deadline)
        throw new ApiServerError(
          'E_APISERVER_START',
          `the API forwarder did not start: ${this.logTail(5, 'forwarder')}`,
        );
      await sleep(20);
    }
  }

  #apiserverArgs(): string[] {
    const { dir, creds, tokenFile } = this.#files;
    return [
      this.#files.bins.kubeApiserver,
      '--etcd-servers=http://127.0.0.1:2379',
      `--bind-address=${ROUTER.nodeNet4}`,
      `--advertise-address=${ROUTER.nodeNet4}`,
      `--secure-port=${API_PORT}`,
      // No controller manager maintains the kubernetes Endpoints; nothing here needs them.
      '--endpoint-reconciler-type=none',
      `--cert-dir=${join(dir, 'cert-dir')}`,
      `--tls-cert-file=${creds.servingCert}`,
      `--tls-private-key-file=${creds.servingKey}`,
      `--client-ca-file=${creds.caCert}`,
      `--token-auth-file=${tokenFile}`,
      '--authorization-mode=Node,RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${creds.saPub}`,
      `--service-account-signing-key-file=${creds.saKey}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      // No controller manager creates each namespace's `default` service account, which this plugin
      // would require of every pod; the pods here are never run by a kubelet anyway.
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--profiling=false',
      ...this.#files.extraArgs,
    ];
  }

  /** Starts etcd and kube-apiserver and waits until `client` gets 200 from /readyz. */
  async startServers(client: AdminClient, timeoutMs: number): Promise<void> {
    const started = performance.now();
    const { dir, bins } = this.#files;
    mkdirSync(join(dir, 'etcd'), { recursive: true });
    this.#etcd = startInNamespace(
      this.ns,
      [bins.etcd, ...etcdArgs(join(dir, 'etcd'))],
      join(dir, 'etcd.log'),
      'etcd',
    );
    // The API server retries etcd until it answers, so both start at once.
    this.#apiserver = startInNamespace(
      this.ns,
      this.#apiserverArgs(),
      join(dir, 'apiserver.log'),
      'kube-apiserver',
    );
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      for (const p of [this.#etcd, this.#apiserver])
        if (!running(p))
          throw new ApiServerError(
            'E_APISERVER_START',
            `${p.name} exited (${p.child.exitCode ?? p.child.signalCode})`,
          );
      const r = await client.request('GET', '/readyz', undefined, { timeoutMs: 5000 }).catch(() => undefined);
      if (r?.status === 200) break;
      if (performance.now() > deadline) {
        const why = await client.request('GET', '/readyz?verbose').catch(() => undefined);
        throw new ApiServerError(
          'E_APISERVER_START',
          `kube-apiserver not ready after ${timeoutMs} ms: ${JSON.stringify(why?.body ?? {}).slice(0, 1500)}`,
        );
      }
      await sleep(200);
    }
    this.readyMs = Math.round(performance.now() - started);
  }

  get running(): boolean {
    return running(this.#apiserver) && running(this.#etcd);
  }

  get pid(): number | undefined {
    return this.#apiserver?.child.pid;
  }

  freeze(): void {
    this.#apiserver?.child.kill('SIGSTOP');
  }

  thaw(): void {
    this.#apiserver?.child.kill('SIGCONT');
  }

  /** kube-apiserver then etcd; etcd's data stays. */
  async stopServers(): Promise<void> {
    await stopProcess(this.#apiserver);
    await stopProcess(this.#etcd);
  }

  /** Every process, the forwarder last; the instance directory is removed. */
  async stop(): Promise<void> {
    await this.stopServers();
    await stopProcess(this.#forwarder, 2000);
    rmSync(this.#files.dir, { recursive: true, force: true });
  }

  /** For the exit and signal hooks: kill everything at once, synchronously. */
  killSync(): void {
    for (const p of [this.#apiserver, this.#etcd, this.#forwarder])
      if (running(p))
        try {
          p!.child.kill('SIGKILL');
        } catch {}
    rmSync(this.#files.dir, { recursive: true, force: true });
  }

  /** Last lines of a process's log (default: etcd and kube-apiserver). */
  logTail(lines = 20, which?: 'etcd' | 'apiserver' | 'forwarder'): string {
    const names = which ? [which] : (['etcd', 'apiserver'] as const);
    return names
      .map((n) => {
        try {
          const text = readFileSync(join(this.#files.dir, `${n}.log`), 'utf8')
            .trimEnd()
            .split('\n')
            .slice(-lines)
            .join('\n');
          return text ? `--- ${n}.log (last ${lines} lines) ---\n${text}` : '';
        } catch {
          return '';
        }
      })
      .filter(Boolean)
      .join('\n');
  }
}
