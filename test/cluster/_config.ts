// Files the real-cluster harness writes for its components: throwaway PKI, tokens, kubeconfigs, and the
// kubelet, kube-proxy, containerd, CNI and Flannel configurations. Pure text; starts nothing.
import { makePki as makeLabPki, type Pki } from '../../src/lab/pki.ts';

// Addresses (../shared/scenarios/README.md "Addresses"): nodes on the documentation range 198.51.100.0/24, pods
// 10.244.N.0/24 inside Flannel's network, Services in the top of 10.244/16 (inside the lab's ranges, so the
// overlap check of src/lab/overlap.ts covers it, and outside every pod range).
export const HUB_IP = '198.51.100.1';
export const API_PORT = 6443;
export const REGISTRY_PORT = 5000;
export const POD_NETWORK = '10.244.0.0/17';
export const SERVICE_CIDR = '10.244.240.0/20';
export const KUBERNETES_SERVICE_IP = '10.244.240.1';
/** What pods name images by; containerd mirrors it to the lab registry (nothing else resolves). */
export const REGISTRY_NAME = 'registry.tollgate.invalid';
export const nodeIp = (i: number) => `198.51.100.${10 + i}`;
// Dual stack (opt-in): nodes and the hub on 2001:db8:5100::/64, pods fd00:10:244:N::/64, Services at the top
// of fd00:10:244::/48 (all inside the lab's ranges).
export const HUB_IP6 = '2001:db8:5100::1';
export const nodeIp6 = (i: number) => `2001:db8:5100::${10 + i}`;
export const POD_NETWORK6 = 'fd00:10:244::/56';
export const SERVICE_CIDR6 = 'fd00:10:244:ffff::/112';
export const podCidr6 = (i: number) => `fd00:10:244:${i}::/64`;
export const podCidr = (i: number) => `10.244.${i}.0/24`;
export const nodeName = (i: number) => `node-${i}`;

export type { Pki };

/** A CA, the API server's serving certificate (hub address and the kubernetes Service IP), SA keys. */
export function makePki(dir: string): Promise<Pki> {
  return makeLabPki(dir, {
    ca: 'tollgate-cluster-ca',
    altNames: [
      `IP:${HUB_IP}`,
      `IP:${KUBERNETES_SERVICE_IP}`,
      'DNS:kubernetes',
      'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc',
    ],
  });
}

export interface Identity {
  file: string;
  user: string;
  groups: string[];
  token: string;
}

/** Static tokens (--token-auth-file): the components' identities are the ones the default RBAC binds. */
export function tokensCsv(ids: Identity[]): string {
  return `${ids.map((i) => `${i.token},${i.user},${i.user},"${i.groups.join(',')}"`).join('\n')}\n`;
}

export function kubeconfig(pki: Pki, user: string, token: string): string {
  const ca = Buffer.from(pki.caPem).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: lab`,
    `  cluster: {server: 'https://${HUB_IP}:${API_PORT}', certificate-authority-data: ${ca}}`,
    'users:',
    `- name: '${user}'`,
    `  user: {token: '${token}'}`,
    'contexts:',
    '- name: lab',
    `  context: {cluster: lab, user: '${user}'}`,
    'current-context: lab',
    '',
  ].join('\n');
}

/** kubelet's values of the sysctls it checks under protectKernelDefaults (bind-mounted inside the node). */
export const KUBELET_SYSCTLS: Record<string, string> = {
  'vm.overcommit_memory': '1',
  'vm.panic_on_oom': '0',
  'kernel.panic': '10',
  'kernel.panic_on_oops': '1',
  'kernel.keys.root_maxkeys': '1000000',
  'kernel.keys.root_maxbytes': '25000000',
};

export function kubeletConfig(i: number, resolvConf: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This VM is cgroup v1 (hybrid); kubelet 1.35+ refuses v1 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
# Never write the machine's kernel sysctls: the node's own values are bind-mounted where kubelet reads them.
protectKernelDefaults: true
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: ${nodeIp(i)}
readOnlyPort: 0
# Lab only: the API server reaches exec/logs without client certificates.
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
resolvConf: ${resolvConf}
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
localStorageCapacityIsolation: false
rotateCertificates: false
nodeStatusUpdateFrequency: 5s
`;
}

export function kubeProxyConfig(
  i: number,
  mode: 'iptables' | 'nftables',
  kubeconfigFile: string,
  dualStack = false,
): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ${mode}
clientConnection: {kubeconfig: ${kubeconfigFile}}
hostnameOverride: ${nodeName(i)}
clusterCIDR: ${dualStack ? `${POD_NETWORK},${POD_NETWORK6}` : POD_NETWORK}
# nf_conntrack_max is the machine's, not the node's: leave it alone.
conntrack: {maxPerCore: 0, min: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`;
}

export function containerdConfig(o: {
  runc: string;
  cniBinDir: string;
  cniConfDir: string;
  certsDir: string;
  pauseImage: string;
}): string {
  return `version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "${o.pauseImage}"
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = "${o.certsDir}"
[plugins.'io.containerd.cri.v1.runtime']
  # The VM lacks CAP_SYS_RESOURCE: an oom_score_adj below containerd's own is refused.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["${o.cniBinDir}"]
  conf_dir = "${o.cniConfDir}"
  max_conf_num = 1
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "${o.runc}"
  SystemdCgroup = false
`;
}

/** The mirror: every pull of REGISTRY_NAME goes to the lab registry over plain HTTP, nowhere else. */
export function hostsToml(): string {
  return `server = "http://${HUB_IP}:${REGISTRY_PORT}"
[host."http://${HUB_IP}:${REGISTRY_PORT}"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
`;
}

/**
 * Flannel's CNI plugin is not served by the module proxy, so a static bridge config stands in for what it
 * would delegate to (cni0, host-local IPAM of the node's podCIDR, MTU of the VXLAN device).
 */
export function cniConflist(i: number, dualStack = false): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'cbr0',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          mtu: 1450,
          ipam: {
            type: 'host-local',
            ranges: [
              [{ subnet: podCidr(i), gateway: `10.244.${i}.1` }],
              ...(dualStack ? [[{ subnet: podCidr6(i), gateway: `fd00:10:244:${i}::1` }]] : []),
            ],
            routes: [{ dst: '0.0.0.0/0' }, ...(dualStack ? [{ dst: '::/0' }] : [])],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

export function flannelNetConf(dualStack = false): string {
  return JSON.stringify({
    Network: POD_NETWORK,
    EnableNFTables: true,
    Backend: { Type: 'vxlan' },
    ...(dualStack ? { EnableIPv6: true, IPv6Network: POD_NETWORK6 } : {}),
  });
}
