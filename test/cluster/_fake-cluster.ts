// Test helper: an in-memory stand-in for the real cluster handle (_cluster.ts) that answers exactly the
// kubectl calls the scenario driver makes and judges probes with the policy model over what it holds, as
// a perfect enforcer would. It proves the driver's bookkeeping (labels, pods kept or replaced, policies
// with the cluster's addresses, skips) without a cluster; the real proof is scenarios.test.ts.
import { parseAddress } from '../../src/policy/address.ts';
import { endpointAt, evaluate } from '../../src/policy/evaluate.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { buildState } from '../../src/policy/normalize.ts';
import type { Cluster, CommandResult } from './_cluster.ts';

type Obj = Record<string, unknown> & {
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
};

export interface FakeOptions {
  /** A broken enforcer: policies are stored but never enforced (the driver must then report failures). */
  ignorePolicies?: boolean;
}

const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string): CommandResult => ({ code: 1, stdout: '', stderr });

export class FakeCluster implements Cluster {
  readonly kubeconfig = '/nonexistent/kubeconfig';
  readonly agnhostImage = 'registry.lab/agnhost:fake';
  readonly tollgateImage = 'registry.lab/tollgate:fake';
  readonly nodes = [
    { name: 'worker-a', ip4: '198.51.100.21', netns: 'fake-node-a', cidr: '10.244.7' },
    { name: 'worker-b', ip4: '198.51.100.22', netns: 'fake-node-b', cidr: '10.244.9' },
  ];
  readonly namespaces = new Map<string, Obj>();
  readonly pods = new Map<string, Obj>();
  readonly policies = new Map<string, Obj>();
  /** Every kubectl call, as its argv joined by spaces. */
  readonly calls: string[] = [];
  podsCreated = 0;
  readonly #options: FakeOptions;
  #nextHost = 10;
  /** Namespaces whose `default` service account does not exist yet (the first pod create is refused). */
  readonly #noServiceAccount = new Set<string>();

  constructor(options: FakeOptions = {}) {
    this.#options = options;
    for (const name of ['default', 'kube-system', 'kube-public', 'tollgate-system'])
      this.namespaces.set(name, { metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } });
    // A pod of the cluster's own: the driver must count it among the node's live pods and never touch it.
    this.#addPod({
      metadata: { name: 'coredns-7f9c', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
      spec: { nodeName: 'worker-b', containers: [{ name: 'coredns', ports: [] }] },
    });
  }

  #addPod(pod: Obj): void {
    const spec = pod.spec as { nodeName: string; hostNetwork?: boolean };
    const node = this.nodes.find((n) => n.name === spec.nodeName)!;
    const podIP = spec.hostNetwork ? node.ip4 : `${node.cidr}.${this.#nextHost++}`;
    this.pods.set(`${pod.metadata.namespace}/${pod.metadata.name}`, {
      ...structuredClone(pod),
      status: { phase: 'Running', podIP, podIPs: [{ ip: podIP }] },
    });
  }

  async kubectl(args: string[]): Promise<CommandResult>;
  async kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<CommandResult> {
    this.calls.push(args.join(' '));
    const [verb, kind] = args;
    const ns = args.includes('-n') ? args[args.indexOf('-n') + 1]! : 'default';
    const names = args
      .slice(2)
      .filter((a, i, all) => !a.startsWith('-') && all[i - 1] !== '-n' && all[i - 1] !== '-p');
    if (verb === 'get' && kind === 'pods' && args.includes('--all-namespaces'))
      return ok(JSON.stringify({ items: [...this.pods.values()] }));
    if (verb === 'get' && kind === 'namespaces')
      return ok(JSON.stringify({ items: [...this.namespaces.values()] }));
    if (verb === 'get') return ok('');
    if (verb === 'delete' && kind === 'networkpolicy') {
      for (const n of names) this.policies.delete(`${ns}/${n}`);
      return ok();
    }
    if (verb === 'delete' && kind === 'pod') {
      for (const n of names) if (!this.pods.delete(`${ns}/${n}`)) return fail(`pods "${n}" not found`);
      return ok();
    }
    if (verb === 'delete' && kind === 'namespace') {
      for (const n of names) {
        if (!this.namespaces.delete(n)) return fail(`namespaces "${n}" not found`);
        for (const m of [this.pods, this.policies])
          for (const k of [...m.keys()]) if (k.startsWith(`${n}/`)) m.delete(k);
      }
      return ok();
    }
    if (verb === 'create' || verb === 'apply') {
      const doc = JSON.parse(opts?.input ?? 'null') as Obj & { kind: string; items?: Obj[] };
      for (const o of doc.kind === 'List' ? doc.items! : [doc]) {
        const r = this.#write(verb, o as Obj & { kind: string });
        if (r) return r;
      }
      return ok();
    }
    if (verb === 'patch') {
      const target =
        kind === 'namespace' ? this.namespaces.get(names[0]!) : this.pods.get(`${ns}/${names[0]}`);
      if (!target) return fail(`${kind} ${names[0]} not found`);
      const patch = JSON.parse(args[args.indexOf('-p') + 1]!) as {
        metadata: { labels: Record<string, string | null> };
      };
      const labels = { ...(target.metadata.labels ?? {}) };
      for (const [k, v] of Object.entries(patch.metadata.labels)) {
        if (kind === 'namespace' && k === 'kubernetes.io/metadata.name')
          return fail('metadata.name label is immutable');
        if (v === null) delete labels[k];
        else labels[k] = v;
      }
      target.metadata.labels = labels;
      return ok();
    }
    if (verb === 'wait') {
      for (const n of names)
        if (!this.pods.has(`${ns}/${n.replace(/^pod\//, '')}`)) return fail(`${n} not found`);
      return ok();
    }
    return fail(`fake kubectl: unsupported: ${args.join(' ')}`);
  }

  #write(verb: string, o: Obj & { kind: string }): CommandResult | undefined {
    const ns = o.metadata.namespace ?? 'default';
    const key = `${ns}/${o.metadata.name}`;
    if (o.kind === 'Namespace') {
      if (this.namespaces.has(o.metadata.name)) return fail(`namespaces "${o.metadata.name}" already exists`);
      const labels = { ...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name };
      this.namespaces.set(o.metadata.name, { ...structuredClone(o), metadata: { ...o.metadata, labels } });
      this.#noServiceAccount.add(o.metadata.name);
      return undefined;
    }
    if (!this.namespaces.has(ns)) return fail(`namespaces "${ns}" not found`);
    if (o.kind === 'Pod') {
      if (this.#noServiceAccount.delete(ns))
        return fail(
          `pods "${o.metadata.name}" is forbidden: error looking up service account ${ns}/default: serviceaccount "default" not found`,
        );
      if (this.pods.has(key))
        return verb === 'create' ? fail(`pods "${o.metadata.name}" already exists`) : undefined;
      this.#addPod(o);
      this.podsCreated++;
      return undefined;
    }
    if (o.kind === 'NetworkPolicy') {
      this.policies.set(key, structuredClone({ ...o, metadata: { ...o.metadata, namespace: ns } }));
      return undefined;
    }
    return fail(`fake kubectl: no kind ${o.kind}`);
  }

  #index(): ClusterIndex {
    const objects = {
      namespaces: [...this.namespaces.values()],
      nodes: this.nodes.map((n) => ({
        metadata: { name: n.name },
        spec: { podCIDR: `${n.cidr}.0/24`, podCIDRs: [`${n.cidr}.0/24`] },
        status: { addresses: [{ type: 'InternalIP', address: n.ip4 }] },
      })),
      pods: [...this.pods.values()],
      policies: this.#options.ignorePolicies ? [] : [...this.policies.values()],
    };
    return new ClusterIndex(buildState(objects as unknown as Parameters<typeof buildState>[0]));
  }

  /** A probe (curl or udp-probe argv) from `source`, judged by the model over what the fake holds. */
  #probe(source: string, argv: string[]): CommandResult {
    let protocol: string;
    let ip: string;
    let port: number;
    if (argv[0] === 'curl') {
      const m = /^http:\/\/([0-9.]+):(\d+)\/$/.exec(argv.at(-1)!)!;
      [protocol, ip, port] = ['TCP', m[1]!, Number(m[2])];
    } else {
      [protocol, ip, port] = ['UDP', argv.at(-3)!, Number(argv.at(-2))];
    }
    const denied: CommandResult = { code: protocol === 'TCP' ? 28 : 3, stdout: '', stderr: 'timed out' };
    const dest = [...this.pods.values()].find((p) => (p.status as { podIP: string }).podIP === ip);
    const env =
      (dest?.spec as { containers: { env?: { name: string; value: string }[] }[] } | undefined)?.containers[0]
        ?.env ?? [];
    const served = env.find(
      (e) => e.name === (protocol === 'TCP' ? `SERVE_PORT_${port}` : `SERVE_UDP_PORT_${port}`),
    );
    const index = this.#index();
    const at = (text: string) => endpointAt(index, parseAddress(text)!);
    const verdict = evaluate(index, { from: at(source), to: at(ip), protocol, port });
    if (!verdict.allowed) return denied;
    if (!served) return { code: protocol === 'TCP' ? 7 : 3, stdout: '', stderr: 'refused' };
    return ok(served.value);
  }

  async inPodNetns(namespace: string, pod: string, argv: string[]): Promise<CommandResult> {
    const p = this.pods.get(`${namespace}/${pod}`);
    if (!p) return { code: 1, stdout: '', stderr: `nsenter: no pod ${namespace}/${pod}` };
    return this.#probe((p.status as { podIP: string }).podIP, argv);
  }

  /** The driver's nodeExec: the agents' /metrics, or a probe from the node's own address. */
  nodeExec = async (netns: string, argv: string[]): Promise<CommandResult> => {
    const node = this.nodes.find((n) => n.netns === netns);
    if (!node) return { code: 1, stdout: '', stderr: `nsenter: no namespace ${netns}` };
    if (argv.at(-1)!.endsWith('/metrics')) {
      const live = [...this.pods.values()].filter(
        (p) =>
          (p.spec as { nodeName: string }).nodeName === node.name &&
          !(p.spec as { hostNetwork?: boolean }).hostNetwork,
      ).length;
      return ok(
        [
          `tollgate_last_successful_sync_timestamp_seconds ${Date.now() / 1000 + 0.001}`,
          'tollgate_sync_failures_consecutive 0',
          `tollgate_programmed{what="pods"} ${live}`,
        ].join('\n'),
      );
    }
    return this.#probe(node.ip4, argv);
  };

  async stop(): Promise<void> {}
}
