// An indexed view of a ClusterState with memoized selector results: which pods are live, who a policy
// selects, who a peer matches. Pure (no I/O). Either built once for a state, or kept for a long time and
// brought up to date with `update(nextState)`: it compares objects by identity (callers that reuse the
// normalized objects of unchanged Kubernetes objects, as the agent does, pay only for what changed) and
// keeps every memo it can, so the cost of an update follows the change, not the cluster's size.

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

const selectorKeys = new WeakMap<LabelSelector, string>();
/** selectorKey, memoized by selector object (normalized selectors are never mutated). */
function keyOf(selector: LabelSelector): string {
  let key = selectorKeys.get(selector);
  if (key === undefined) {
    key = selectorKey(selector);
    selectorKeys.set(selector, key);
  }
  return key;
}

/** The canonical key of a pod peer as seen from a policy namespace: equal keys select the same pods. */
export function podPeerKey(peer: Peer & { kind: 'pods' }, policyNamespace: string): string {
  const ns =
    peer.namespaces.kind === 'own'
      ? `namespace ${policyNamespace}`
      : `namespaces [${keyOf(peer.namespaces.selector)}]`;
  return `pods [${keyOf(peer.pods)}] in ${ns}`;
}

/** Pods that changed since the previous update, by key: the new object, or undefined when gone. */
export type PodChanges = ReadonlyMap<string, Pod | undefined>;

/** The pods one pod peer matches, kept up to date pod by pod. */
interface PeerMembers {
  peer: Peer & { kind: 'pods' };
  policyNamespace: string;
  members: Map<string, Pod>;
  /** Rebuilt (a new array) whenever membership or a member changes: identity tells "unchanged". */
  list: readonly Pod[] | undefined;
}

export class ClusterIndex {
  private current: ClusterState;
  private readonly pods = new Map<string, Pod>();
  private readonly live = new Map<string, Pod>();
  private readonly liveByNamespace = new Map<string, Map<string, Pod>>();
  private readonly liveByNode = new Map<string, Map<string, Pod>>();
  private liveList: readonly Pod[] | undefined;
  private byAddress: Map<bigint, Pod> | undefined;
  private nodesByAddress = new Map<bigint, Node>();
  private nodesByName = new Map<string, Node>();
  private policiesByNamespace = new Map<string, Policy[]>();
  private namespaceSelection = new Map<string, Set<string>>();
  private readonly peerMembers = new Map<string, PeerMembers>();
  private readonly selectedBy = new Map<string, Policy[]>();
  private lastPolicies: Policy[] = [];
  private lastNodes: Node[] = [];
  private lastNamespaces = new Map<string, Namespace>();

  constructor(state: ClusterState) {
    this.current = state;
    this.update(state);
  }

  get state(): ClusterState {
    return this.current;
  }

  /** Every live pod (point 13), in a stable order; the same array until a live pod changes. */
  get livePods(): readonly Pod[] {
    this.liveList ??= [...this.live.values()];
    return this.liveList;
  }

  /**
   * Brings the index to `state`. Unchanged objects (the same object as in the previous state) cost a map
   * lookup; a changed pod is re-matched against every memoized peer; a changed namespace or policy drops
   * only the memos that depend on it. With `podChanges` (every pod that may differ from the previous
   * state, by key, with its new object or undefined when gone) the pods are not scanned at all: the
   * caller vouches that every other pod of `state` is the very object it was. Returns whether anything
   * changed.
   */
  update(state: ClusterState, podChanges?: PodChanges): boolean {
    this.current = state;
    let changed = false;
    if (!sameList(state.nodes, this.lastNodes)) {
      changed = true;
      this.lastNodes = state.nodes;
      this.nodesByName = new Map();
      this.nodesByAddress = new Map();
      for (const node of state.nodes) {
        this.nodesByName.set(node.name, node);
        for (const a of node.addresses) this.nodesByAddress.set(addressKey(a), node);
      }
    }
    if (!sameNamespaces(state.namespaces, this.lastNamespaces)) {
      changed = true;
      this.lastNamespaces = state.namespaces;
      this.namespaceSelection = new Map();
      // Memberships through a namespace selector depend on namespace labels: recomputed on next use.
      for (const [key, entry] of this.peerMembers)
        if (entry.peer.namespaces.kind === 'selector') this.peerMembers.delete(key);
    }
    if (!sameList(state.policies, this.lastPolicies)) {
      changed = true;
      this.lastPolicies = state.policies;
      this.policiesByNamespace = new Map();
      for (const policy of state.policies) pushTo(this.policiesByNamespace, policy.namespace, policy);
      this.selectedBy.clear();
    }
    if (podChanges !== undefined) {
      for (const [key, pod] of podChanges) {
        const old = this.pods.get(key);
        if (old === pod) continue;
        if (pod === undefined) this.pods.delete(key);
        else this.pods.set(key, pod);
        this.podChanged(old, pod);
        changed = true;
      }
      return changed;
    }
    // Pods: a changed or removed pod is replaced in every structure and re-matched against every peer.
    const before = this.pods.size;
    let present = 0;
    for (const pod of state.pods) {
      const old = this.pods.get(pod.key);
      if (old !== undefined) present++;
      if (old === pod) continue;
      this.pods.set(pod.key, pod);
      this.podChanged(old, pod);
      changed = true;
    }
    // Every old key seen and no duplicates: nothing was removed (the common case needs no key set).
    if (present !== before || state.pods.length !== this.pods.size) {
      const keys = new Set(state.pods.map((p) => p.key));
      for (const [key, old] of this.pods) {
        if (keys.has(key)) continue;
        this.pods.delete(key);
        this.podChanged(old, undefined);
        changed = true;
      }
    }
    return changed;
  }

  private podChanged(old: Pod | undefined, pod: Pod | undefined): void {
    const key = (old ?? pod)!.key;
    this.selectedBy.delete(key);
    this.byAddress = undefined;
    const wasLive = old !== undefined && this.live.has(key);
    const isLive = pod !== undefined && isLivePod(pod);
    if (wasLive) {
      this.live.delete(key);
      this.liveByNamespace.get(old.namespace)?.delete(key);
      if (old.nodeName !== undefined) this.liveByNode.get(old.nodeName)?.delete(key);
    }
    if (isLive) {
      this.live.set(key, pod);
      mapIn(this.liveByNamespace, pod.namespace).set(key, pod);
      if (pod.nodeName !== undefined) mapIn(this.liveByNode, pod.nodeName).set(key, pod);
    }
    if (!wasLive && !isLive) return;
    this.liveList = undefined;
    for (const entry of this.peerMembers.values()) {
      const was = entry.members.has(key);
      const is = isLive && this.podPeerMatches(entry.peer, entry.policyNamespace, pod);
      if (is) entry.members.set(key, pod);
      else if (was) entry.members.delete(key);
      if (was || is) entry.list = undefined;
    }
  }

  namespace(name: string): Namespace | undefined {
    return this.current.namespaces.get(name);
  }

  node(name: string | undefined): Node | undefined {
    return name === undefined ? undefined : this.nodesByName.get(name);
  }

  /** The live pods of one node (unsorted). */
  podsOnNode(name: string): Iterable<Pod> {
    return this.liveByNode.get(name)?.values() ?? [];
  }

  /** The live pod that owns an address, if any. */
  podAt(address: Address): Pod | undefined {
    if (this.byAddress === undefined) {
      this.byAddress = new Map();
      for (const pod of this.live.values()) for (const ip of pod.ips) this.byAddress.set(addressKey(ip), pod);
    }
    return this.byAddress.get(addressKey(address));
  }

  /** The node whose own address this is, if any. */
  nodeAt(address: Address): Node | undefined {
    return this.nodesByAddress.get(addressKey(address));
  }

  /** Policies that select a pod (point 1: only policies of the pod's own namespace). */
  policiesSelecting(pod: Pod): Policy[] {
    let out = this.selectedBy.get(pod.key);
    if (out && this.pods.get(pod.key) === pod) return out;
    out = isLivePod(pod)
      ? (this.policiesByNamespace.get(pod.namespace) ?? []).filter(
          (p) => !p.podSelectorValid || matchesSelector(p.podSelector, pod.labels),
        )
      : [];
    if (this.pods.get(pod.key) === pod) this.selectedBy.set(pod.key, out);
    return out;
  }

  private namespacesMatching(selector: LabelSelector): Set<string> {
    const key = keyOf(selector);
    let out = this.namespaceSelection.get(key);
    if (!out) {
      out = new Set();
      for (const ns of this.current.namespaces.values())
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

  /**
   * Every live pod a pod peer matches, memoized by the peer's canonical key and kept up to date by
   * `update`: the same array (by identity) as long as no member was added, removed or changed.
   */
  podPeerMembers(peer: Peer & { kind: 'pods' }, policyNamespace: string): readonly Pod[] {
    const key = podPeerKey(peer, policyNamespace);
    let entry = this.peerMembers.get(key);
    if (!entry) {
      const members = new Map<string, Pod>();
      const scope =
        peer.namespaces.kind === 'own'
          ? [policyNamespace]
          : this.namespacesMatching(peer.namespaces.selector);
      for (const ns of scope)
        for (const p of this.liveByNamespace.get(ns)?.values() ?? [])
          if (matchesSelector(peer.pods, p.labels)) members.set(p.key, p);
      entry = { peer, policyNamespace, members, list: undefined };
      this.peerMembers.set(key, entry);
    }
    entry.list ??= [...entry.members.values()];
    return entry.list;
  }

  /** Forgets memoized peers other than these keys (callers that plan repeatedly keep memory bounded). */
  retainPeers(keys: ReadonlySet<string>): void {
    for (const key of this.peerMembers.keys()) if (!keys.has(key)) this.peerMembers.delete(key);
  }
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function mapIn<K, K2, V>(map: Map<K, Map<K2, V>>, key: K): Map<K2, V> {
  let inner = map.get(key);
  if (!inner) {
    inner = new Map();
    map.set(key, inner);
  }
  return inner;
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => x === b[i]));
}

function sameNamespaces(a: Map<string, Namespace>, b: Map<string, Namespace>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const [name, ns] of a) if (b.get(name) !== ns) return false;
  return true;
}
