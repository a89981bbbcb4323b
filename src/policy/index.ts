// An indexed, read-only view of a ClusterState with memoized selector results: which pods are live,
// who a policy selects, who a peer matches. Pure (no I/O); build a new one when the state changes.

import type { Address } from './address.ts';
import { addressKey } from './address.ts';
import { matchesSelector, selectorKey } from './selector.ts';
import type { ClusterState, LabelSelector, Namespace, Node, Peer, Pod, Policy } from './types.ts';

/**
 * Point 13: hostNetwork pods, pods without an IP and terminal pods are neither targets nor peers
 * (a terminal pod's IP may already belong to a new pod).
 */
export function isLivePod(pod: Pod): boolean {
  return !pod.hostNetwork && pod.ips.length > 0 && pod.phase !== 'Succeeded' && pod.phase !== 'Failed';
}

/** The canonical key of a pod peer as seen from a policy namespace: equal keys select the same pods. */
export function podPeerKey(peer: Peer & { kind: 'pods' }, policyNamespace: string): string {
  const ns =
    peer.namespaces.kind === 'own'
      ? `namespace ${policyNamespace}`
      : `namespaces [${selectorKey(peer.namespaces.selector)}]`;
  return `pods [${selectorKey(peer.pods)}] in ${ns}`;
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export class ClusterIndex {
  readonly state: ClusterState;
  readonly livePods: Pod[];
  private readonly podsByNamespace = new Map<string, Pod[]>();
  private readonly podsByAddress = new Map<bigint, Pod>();
  private readonly nodesByAddress = new Map<bigint, Node>();
  private readonly nodesByName = new Map<string, Node>();
  private readonly policiesByNamespace = new Map<string, Policy[]>();
  private readonly namespaceSelection = new Map<string, Set<string>>();
  private readonly peerMembers = new Map<string, Pod[]>();
  private readonly selectedBy = new Map<string, Policy[]>();

  constructor(state: ClusterState) {
    this.state = state;
    this.livePods = state.pods.filter(isLivePod);
    for (const pod of this.livePods) {
      pushTo(this.podsByNamespace, pod.namespace, pod);
      for (const ip of pod.ips) this.podsByAddress.set(addressKey(ip), pod);
    }
    for (const node of state.nodes) {
      this.nodesByName.set(node.name, node);
      for (const a of node.addresses) this.nodesByAddress.set(addressKey(a), node);
    }
    for (const policy of state.policies) {
      pushTo(this.policiesByNamespace, policy.namespace, policy);
    }
  }

  namespace(name: string): Namespace | undefined {
    return this.state.namespaces.get(name);
  }

  node(name: string | undefined): Node | undefined {
    return name === undefined ? undefined : this.nodesByName.get(name);
  }

  /** The live pod that owns an address, if any. */
  podAt(address: Address): Pod | undefined {
    return this.podsByAddress.get(addressKey(address));
  }

  /** The node whose own address this is, if any. */
  nodeAt(address: Address): Node | undefined {
    return this.nodesByAddress.get(addressKey(address));
  }

  /** Policies that select a pod (point 1: only policies of the pod's own namespace). */
  policiesSelecting(pod: Pod): Policy[] {
    let out = this.selectedBy.get(pod.key);
    if (out) return out;
    out = isLivePod(pod)
      ? (this.policiesByNamespace.get(pod.namespace) ?? []).filter(
          (p) => !p.podSelectorValid || matchesSelector(p.podSelector, pod.labels),
        )
      : [];
    this.selectedBy.set(pod.key, out);
    return out;
  }

  private namespacesMatching(selector: LabelSelector): Set<string> {
    const key = selectorKey(selector);
    let out = this.namespaceSelection.get(key);
    if (!out) {
      out = new Set();
      for (const ns of this.state.namespaces.values())
        if (matchesSelector(selector, ns.labels)) out.add(ns.name);
      this.namespaceSelection.set(key, out);
    }
    return out;
  }

  /** Does a pod peer (point 6) match this pod, for a policy in `policyNamespace`? */
  podPeerMatches(peer: Peer & { kind: 'pods' }, policyNamespace: string, pod: Pod): boolean {
    if (!isLivePod(pod)) return false;
    const inScope =
      peer.namespaces.kind === 'own'
        ? pod.namespace === policyNamespace
        : this.namespacesMatching(peer.namespaces.selector).has(pod.namespace);
    return inScope && matchesSelector(peer.pods, pod.labels);
  }

  /** Every live pod a pod peer matches, memoized by the peer's canonical key. */
  podPeerMembers(peer: Peer & { kind: 'pods' }, policyNamespace: string): Pod[] {
    const key = podPeerKey(peer, policyNamespace);
    let out = this.peerMembers.get(key);
    if (out) return out;
    if (peer.namespaces.kind === 'own') {
      out = (this.podsByNamespace.get(policyNamespace) ?? []).filter((p) =>
        matchesSelector(peer.pods, p.labels),
      );
    } else {
      out = [];
      for (const ns of this.namespacesMatching(peer.namespaces.selector)) {
        for (const p of this.podsByNamespace.get(ns) ?? [])
          if (matchesSelector(peer.pods, p.labels)) out.push(p);
      }
    }
    this.peerMembers.set(key, out);
    return out;
  }
}
