// A real two-node Kubernetes cluster on this machine, in throwaway namespaces, for the tests that need a real
// kubelet, container runtime, kube-proxy and Flannel (issue 15). Test code only; it must never route anything
// from the machine's own namespace, and it removes everything it made, also when a test fails.
//
// Note for the scenario driver (branch cscen): this handle is the contract; it may grow fields, nothing listed
// here changes without a note at the top of this file.

export interface ClusterOptions {
  /** Worker nodes (each runs kubelet, containerd, kube-proxy, flanneld); default 2. */
  nodes?: number;
  /** kube-proxy mode; default 'nftables' (IPVS is missing on this kernel). */
  proxyMode?: 'iptables' | 'nftables';
  /** true (default): `kubectl apply -f daemonset/` with the lab's image, then wait for the rollout. */
  installTollgate?: boolean;
}

export interface ClusterNode {
  name: string;
  ip4: string;
  /** The node's network namespace name (under /run/netns). */
  netns: string;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cluster {
  /** Admin kubeconfig file (its server address is reachable only inside the lab: use kubectl() below). */
  kubeconfig: string;
  nodes: ClusterNode[];
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<CommandResult>;
  /** Runs a command inside a pod's network namespace (found via the container runtime), e.g. curl. */
  inPodNetns(
    namespace: string,
    pod: string,
    argv: string[],
    opts?: { timeoutMs?: number },
  ): Promise<CommandResult>;
  agnhostImage: string;
  tollgateImage: string;
  stop(): Promise<void>;
}

export async function startCluster(_opts: ClusterOptions = {}): Promise<Cluster> {
  throw new Error('not implemented yet');
}
