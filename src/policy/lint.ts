// The mistakes NetworkPolicy tutorials warn about, found on the normalized model: each finding names the
// policy and field, says why it matters and how to fix it. Pure (no I/O); it judges, it never changes objects.

import { endpointAt, evaluate } from './evaluate.ts';
import { ClusterIndex } from './index.ts';
import { NAMESPACE_NAME_LABEL } from './normalize.ts';
import { isEverything, matchesSelector } from './selector.ts';
import type {
  ClusterState,
  Direction,
  LabelSelector,
  Peer,
  PeerNamespaces,
  Pod,
  Policy,
  PolicyPort,
  Rule,
} from './types.ts';

/** The checks, by stable id (the ids are part of the CLI's contract: scripts match on them). */
export const LINT_CHECKS = {
  'invalid-field': 'a field the API or tollgate rejects; the rule allows nothing',
  'egress-without-dns': 'egress is isolated and no rule allows DNS (UDP 53) to the kube-dns pods',
  'namespace-label-unknown': 'a namespaceSelector that matches no namespace',
  'selector-matches-nothing': "a podSelector (the policy's own or a peer's) that matches no pod",
  'split-peer':
    'a namespaceSelector item next to a podSelector item: two peers (OR) where one (AND) was meant',
  'named-port-unknown': 'a named port that no pod it applies to declares',
  'redundant-policy': 'every rule of the policy is already allowed by other policies',
} as const;

export type LintId = keyof typeof LINT_CHECKS;

export interface Finding {
  id: LintId;
  /** `NetworkPolicy namespace/name` */
  object: string;
  /** JSON-path-like field, e.g. `spec.ingress[0].from[1].podSelector`. */
  field: string;
  /** What is wrong, with the concrete names. */
  message: string;
  /** Why it matters: what the policy really does. */
  why: string;
  /** The suggested change. */
  fix: string;
}

export interface LintOptions {
  /** The input lists pods: checks that judge selectors and ports against pods can run. */
  pods: boolean;
  /** The input lists namespaces with their labels: namespaceSelectors can be judged. */
  namespaces: boolean;
}

export interface LintResult {
  findings: Finding[];
  /** Checks that did not run because the input lacks what they need. */
  skipped: { id: LintId; reason: string }[];
}

const DNS_LABEL = 'k8s-app';
const DNS_VALUE = 'kube-dns';

const objectOf = (p: Policy) => `NetworkPolicy ${p.key}`;
const peerList = (d: Direction) => (d === 'ingress' ? 'from' : 'to');
const directions = (p: Policy): Direction[] =>
  (['ingress', 'egress'] as const).filter((d) => p[d] !== undefined);

export function selectorText(s: LabelSelector): string {
  const parts = [
    ...Object.entries(s.matchLabels).map(([k, v]) => `${k}=${v}`),
    ...s.matchExpressions.map(
      (e) => `${e.key} ${e.operator}${e.values.length ? ` (${e.values.join(',')})` : ''}`,
    ),
  ];
  return parts.length === 0 ? '{}' : parts.join(', ');
}

function listNames(names: string[], max = 3): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/** Edit distance with adjacent transpositions (optimal string alignment): "wbe" is one step from "web". */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.min(2, Math.floor(word.length / 3)));
  for (const c of candidates) {
    const d = distance(word, c);
    if (c !== word && d <= bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Runs every check that the input allows; findings sorted by object, then field. */
export function lintCluster(state: ClusterState, options: LintOptions): LintResult {
  const linter = new Linter(state, options);
  const skipped: LintResult['skipped'] = [];
  const noPods = 'the input has no pods';
  if (!options.pods) {
    for (const id of ['selector-matches-nothing', 'named-port-unknown'] as const)
      skipped.push({ id, reason: noPods });
  }
  if (!options.namespaces)
    skipped.push({ id: 'namespace-label-unknown', reason: 'the input declares no namespaces' });
  linter.run();
  const findings = linter.findings.sort(
    (a, b) => a.object.localeCompare(b.object) || a.field.localeCompare(b.field) || a.id.localeCompare(b.id),
  );
  return { findings, skipped };
}

class Linter {
  readonly findings: Finding[] = [];
  private readonly index: ClusterIndex;
  private readonly selectedMemo = new Map<Policy, Pod[]>();
  private readonly state: ClusterState;
  private readonly options: LintOptions;

  constructor(state: ClusterState, options: LintOptions) {
    this.state = state;
    this.options = options;
    this.index = new ClusterIndex(state);
  }

  run(): void {
    for (const policy of this.state.policies) {
      for (const issue of policy.issues)
        this.findings.push({
          id: 'invalid-field',
          object: issue.object,
          field: issue.field,
          message: issue.message,
          why: 'the API server rejects most of these; where an object gets through, tollgate fails closed: the rule allows nothing',
          fix: 'correct the field',
        });
      this.ownSelector(policy);
      for (const d of directions(policy)) {
        policy[d]!.forEach((rule, i) => {
          if (rule.invalid) return; // reported above; its peers' indexes no longer match the source
          this.peers(policy, d, rule, i);
          this.splitPeers(policy, d, rule, i);
          this.namedPorts(policy, d, rule, i);
        });
      }
    }
    this.dns();
    this.redundant();
  }

  private add(policy: Policy, id: LintId, field: string, message: string, why: string, fix: string): void {
    this.findings.push({ id, object: objectOf(policy), field, message, why, fix });
  }

  /** The live pods a policy selects (point 1: its own namespace only). */
  private selected(policy: Policy): Pod[] {
    let out = this.selectedMemo.get(policy);
    if (!out) {
      out = this.index.livePods.filter(
        (pod) =>
          pod.namespace === policy.namespace &&
          (!policy.podSelectorValid || matchesSelector(policy.podSelector, pod.labels)),
      );
      this.selectedMemo.set(policy, out);
    }
    return out;
  }

  /** A hint for a selector that matches no pod among `scope` (the pods it was meant to look at). */
  private podHint(selector: LabelSelector, scope: readonly Pod[], elsewhere: string): string {
    const labels = new Map<string, Set<string>>();
    for (const pod of scope)
      for (const [k, v] of Object.entries(pod.labels)) {
        const values = labels.get(k) ?? new Set<string>();
        labels.set(k, values);
        values.add(v);
      }
    for (const [k, v] of Object.entries(selector.matchLabels)) {
      const values = labels.get(k);
      if (values?.has(v)) continue;
      const value = values ? closest(v, values) : undefined;
      if (value) return `did you mean ${k}=${value}?`;
      const key = closest(k, labels.keys());
      if (key && labels.get(key)?.has(v)) return `did you mean ${key}=${v}?`;
    }
    const others = this.index.livePods.filter(
      (p) => matchesSelector(selector, p.labels) && !scope.includes(p),
    );
    if (others.length > 0)
      return `pods with these labels live elsewhere (${listNames(others.map((p) => p.key))}): ${elsewhere}`;
    return 'check the labels against `kubectl get pods --show-labels`';
  }

  private ownSelector(policy: Policy): void {
    if (!this.options.pods || !policy.podSelectorValid || isEverything(policy.podSelector)) return;
    if (this.selected(policy).length > 0) return;
    const scope = this.index.livePods.filter((p) => p.namespace === policy.namespace);
    this.add(
      policy,
      'selector-matches-nothing',
      'spec.podSelector',
      `podSelector ${selectorText(policy.podSelector)} selects no pod of namespace ${policy.namespace}`,
      'a policy applies only to the pods it selects: the pods it was meant for are not isolated by it and keep every connection it was meant to deny',
      this.podHint(
        policy.podSelector,
        scope,
        'a policy selects pods of its own namespace only: create it in theirs',
      ),
    );
  }

  private peers(policy: Policy, d: Direction, rule: Rule, i: number): void {
    rule.peers?.forEach((peer, j) => {
      if (peer.kind !== 'pods') return;
      const field = `spec.${d}[${i}].${peerList(d)}[${j}]`;
      let namespaces: string[] = [policy.namespace];
      if (peer.namespaces.kind === 'selector') {
        const selector = peer.namespaces.selector;
        namespaces = [...this.state.namespaces.values()]
          .filter((n) => matchesSelector(selector, n.labels))
          .map((n) => n.name);
        if (namespaces.length === 0) {
          if (this.options.namespaces) this.namespaceFinding(policy, `${field}.namespaceSelector`, selector);
          return;
        }
      }
      if (!this.options.pods || isEverything(peer.pods)) return;
      if (this.index.podPeerMembers(peer, policy.namespace).length > 0) return;
      const scope = this.index.livePods.filter((p) => namespaces.includes(p.namespace));
      const where =
        peer.namespaces.kind === 'own'
          ? `namespace ${policy.namespace}`
          : `namespaces ${listNames(namespaces)}`;
      this.add(
        policy,
        'selector-matches-nothing',
        `${field}.podSelector`,
        `podSelector ${selectorText(peer.pods)} matches no pod in ${where}`,
        `this peer allows nobody: the ${d === 'ingress' ? 'clients' : 'servers'} it was meant for are denied`,
        this.podHint(
          peer.pods,
          scope,
          peer.namespaces.kind === 'own'
            ? 'a podSelector alone matches pods of the policy namespace only; add a namespaceSelector (kubernetes.io/metadata.name) in the same item'
            : 'widen the namespaceSelector',
        ),
      );
    });
  }

  private namespaceFinding(policy: Policy, field: string, selector: LabelSelector): void {
    const names = [...this.state.namespaces.keys()];
    let fix =
      `select by ${NAMESPACE_NAME_LABEL}, the label every namespace carries (e.g. ${NAMESPACE_NAME_LABEL}: NAME), ` +
      'or label the namespaces you mean (`kubectl label namespace NAME KEY=VALUE`)';
    for (const [k, v] of Object.entries(selector.matchLabels)) {
      if (k !== NAMESPACE_NAME_LABEL && names.includes(v)) {
        fix = `write ${NAMESPACE_NAME_LABEL}: ${v} instead of ${k}: ${v}: every namespace carries its name label, ${k}=${v} is on none`;
        break;
      }
      const near = k === NAMESPACE_NAME_LABEL ? closest(v, names) : undefined;
      if (near) {
        fix = `did you mean ${NAMESPACE_NAME_LABEL}: ${near}?`;
        break;
      }
    }
    this.add(
      policy,
      'namespace-label-unknown',
      field,
      `namespaceSelector ${selectorText(selector)} matches no namespace`,
      'the peer allows nothing: no namespace carries that label, so the connections it was written for are denied',
      fix,
    );
  }

  private splitPeers(policy: Policy, d: Direction, rule: Rule, i: number): void {
    const peers = rule.peers ?? [];
    const list = peerList(d);
    for (let j = 1; j < peers.length; j++) {
      const a = peers[j - 1]!;
      const b = peers[j]!;
      if (a.kind !== 'pods' || b.kind !== 'pods') continue;
      const nsOnly = (p: Peer & { kind: 'pods' }) => p.namespaces.kind === 'selector' && isEverything(p.pods);
      const podsOnly = (p: Peer & { kind: 'pods' }) => p.namespaces.kind === 'own' && !isEverything(p.pods);
      const [ns, pods] = nsOnly(a) && podsOnly(b) ? [a, b] : nsOnly(b) && podsOnly(a) ? [b, a] : [];
      if (!ns || !pods || ns.namespaces.kind !== 'selector') continue;
      const nsSel = ns.namespaces.selector;
      const everyNamespace = isEverything(nsSel);
      this.add(
        policy,
        'split-peer',
        `spec.${d}[${i}].${list}[${j}]`,
        `${list}[${j - 1}] and ${list}[${j}] are two peers: ` +
          `${everyNamespace ? 'every pod of every namespace' : `every pod of the namespaces ${selectorText(nsSel)}`}` +
          ` OR the pods ${selectorText(pods.pods)} of namespace ${policy.namespace}`,
        `each list item is a peer of its own and the peers add up, so ${everyNamespace ? 'the whole cluster' : 'every pod of those namespaces'} is allowed, not only the pods ${selectorText(pods.pods)} there`,
        `if you meant "pods ${selectorText(pods.pods)} in namespaces ${selectorText(nsSel)}", remove the dash before the second selector so that namespaceSelector and podSelector sit in one item`,
      );
    }
  }

  private namedPorts(policy: Policy, d: Direction, rule: Rule, i: number): void {
    if (!this.options.pods || !rule.ports) return;
    rule.ports.forEach((port, k) => {
      if (typeof port.port !== 'string') return;
      const name = port.port;
      const field = `spec.${d}[${i}].ports[${k}].port`;
      let pods: readonly Pod[];
      let whose: string;
      if (d === 'ingress') {
        pods = this.selected(policy);
        whose = 'the pods the policy selects';
      } else if (rule.peers === undefined) {
        pods = this.index.livePods;
        whose = 'any pod';
      } else {
        const members = new Set<Pod>();
        for (const peer of rule.peers)
          if (peer.kind === 'pods')
            for (const p of this.index.podPeerMembers(peer, policy.namespace)) members.add(p);
        pods = [...members];
        whose = 'the peer pods of this rule';
        if (rule.peers.every((p) => p.kind === 'ipBlock')) {
          this.add(
            policy,
            'named-port-unknown',
            field,
            `named port '${name}' in a rule whose peers are all ipBlocks`,
            'a named port resolves on the destination pod; through an ipBlock peer it never matches, so this port allows nothing',
            'use the port number',
          );
          return;
        }
      }
      if (pods.length === 0) return; // the selector finding says why
      if (pods.some((p) => p.ports.some((c) => c.name === name && c.protocol === port.protocol))) return;
      const declared = new Set(pods.flatMap((p) => p.ports.flatMap((c) => (c.name ? [c.name] : []))));
      const otherProtocol = pods
        .flatMap((p) => p.ports)
        .find((c) => c.name === name && c.protocol !== port.protocol);
      const near = closest(name, declared);
      const fix = otherProtocol
        ? `the pods declare '${name}' as ${otherProtocol.protocol}: set protocol: ${otherProtocol.protocol}`
        : near
          ? `did you mean '${near}'?`
          : `use a port name the pods declare (${listNames([...declared].sort(), 6) || 'they declare none'}) or a number`;
      this.add(
        policy,
        'named-port-unknown',
        field,
        `no pod among ${whose} (${listNames(pods.map((p) => p.key))}) declares a ${port.protocol} port named '${name}'`,
        'a named port matches only where a pod declares it (containerPort name and protocol); here it matches nothing, so this port allows nothing',
        fix,
      );
    });
  }

  /** egress-without-dns: judged per selected pod (the union of its policies), reported once per pod group. */
  private dns(): void {
    // Audit-mode policies (point 25) isolate nothing and allow nothing: neither blamed nor a DNS rule.
    const egressPolicies = this.state.policies.filter((p) => p.egress !== undefined && !p.audit);
    if (egressPolicies.length === 0) return;
    if (!this.options.pods) {
      // Without pods, only a rule that allows UDP 53 to someone counts, in the policy or a namespace-wide one.
      for (const policy of egressPolicies) {
        const helpers = egressPolicies.filter(
          (q) => q === policy || (q.namespace === policy.namespace && isEverything(q.podSelector)),
        );
        if (!helpers.some((q) => q.egress!.some(allowsDnsPort))) this.dnsFinding(policy, [], false);
      }
      return;
    }
    const dnsPods = this.index.livePods.filter((p) => p.labels[DNS_LABEL] === DNS_VALUE);
    const blamed = new Map<Policy, Pod[]>();
    for (const pod of this.index.livePods) {
      const isolating = this.index.policiesSelecting(pod).filter((p) => p.egress !== undefined);
      if (isolating.length === 0 || pod.labels[DNS_LABEL] === DNS_VALUE) continue;
      const resolves =
        dnsPods.length > 0
          ? dnsPods.some((dnsPod) => this.egressAllowed(pod, dnsPod))
          : isolating.some((p) => p.egress!.some(allowsDnsPort));
      if (resolves) continue;
      // Blame the broadest policy (a namespace default-deny): that is where a DNS rule belongs.
      const broadest = [...isolating].sort(
        (a, b) => this.selected(b).length - this.selected(a).length || a.key.localeCompare(b.key),
      )[0]!;
      const list = blamed.get(broadest) ?? [];
      list.push(pod);
      blamed.set(broadest, list);
    }
    for (const [policy, pods] of blamed) this.dnsFinding(policy, pods, dnsPods.length > 0);
  }

  private egressAllowed(from: Pod, to: Pod): boolean {
    const a = from.ips[0]!;
    const b = to.ips.find((ip) => ip.family === a.family);
    if (!b) return false;
    const verdict = evaluate(this.index, {
      from: endpointAt(this.index, a),
      to: endpointAt(this.index, b),
      protocol: 'UDP',
      port: 53,
    });
    return verdict.egress?.allowed ?? true;
  }

  private dnsFinding(policy: Policy, pods: Pod[], dnsPodsKnown: boolean): void {
    const who = pods.length > 0 ? `pods ${listNames(pods.map((p) => p.key).sort())}` : 'the pods it selects';
    this.add(
      policy,
      'egress-without-dns',
      policy.egress!.length > 0 ? 'spec.egress' : 'spec.policyTypes',
      `egress of ${who} is isolated and no rule allows DNS (${
        dnsPodsKnown
          ? `UDP 53 to the ${DNS_LABEL}=${DNS_VALUE} pods`
          : 'UDP 53 to anyone; the input has no kube-dns pods'
      })`,
      'every name lookup fails, so the application cannot reach even the services its policies allow (by name); this is the most common default-deny mistake',
      `add an egress rule: to: [{namespaceSelector: {matchLabels: {${NAMESPACE_NAME_LABEL}: kube-system}}, podSelector: {matchLabels: {${DNS_LABEL}: ${DNS_VALUE}}}}], ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]`,
    );
  }

  /**
   * redundant-policy: a policy with rules, every one of which (each peer x port) another policy selecting
   * the same pods already allows, while another policy isolates those pods in each of its directions.
   * Checked in reverse key order against the policies not yet found redundant, so that of two equal
   * policies only one is reported, and removing every reported policy together changes no verdict.
   */
  private redundant(): void {
    // Audit-mode policies (point 25) allow nothing, so they cover nothing, and removing one never
    // changes a verdict: they are neither coverers nor reported.
    const enforced = this.state.policies.filter((p) => !p.audit);
    const kept = new Set(enforced);
    const order = [...enforced].sort((a, b) => b.key.localeCompare(a.key));
    for (const policy of order) {
      const ruleCount = directions(policy).reduce((n, d) => n + policy[d]!.length, 0);
      if (ruleCount === 0 || policy.issues.length > 0 || !policy.podSelectorValid) continue;
      kept.delete(policy);
      const coverers = this.coverersOf(policy, kept);
      if (coverers === undefined) {
        kept.add(policy);
        continue;
      }
      this.add(
        policy,
        'redundant-policy',
        'spec',
        `everything this policy allows is already allowed by ${listNames([...coverers].map(objectOf).sort(), 4)}`,
        'removing it changes no verdict today; two policies for one intent drift apart, and a later fix to one of them leaves the other open',
        'delete it, or merge what it means into the other policy',
      );
    }
  }

  /** The policies that together cover `policy`, or undefined when something it allows is its own. */
  private coverersOf(policy: Policy, others: Set<Policy>): Set<Policy> | undefined {
    const used = new Set<Policy>();
    const candidates = [...others].filter((q) => q.namespace === policy.namespace);
    // Which policies select each pod that `policy` selects; without pods, selectors that include its own.
    // Pods with the same policies form one group, checked once.
    const groups = new Map<string, Policy[]>();
    if (this.options.pods) {
      for (const pod of this.selected(policy)) {
        const group = this.index.policiesSelecting(pod).filter((q) => others.has(q));
        groups.set(group.map((q) => q.key).join('\n'), group);
      }
    } else {
      groups.set(
        '',
        candidates.filter((q) => selectorSubset(policy.podSelector, q.podSelector)),
      );
    }
    if (groups.size === 0) return undefined; // selects nothing: the selector finding covers it
    for (const group of groups.values()) {
      for (const d of directions(policy)) {
        const isolating = group.filter((q) => q[d] !== undefined);
        if (isolating.length === 0) return undefined;
        for (const rule of policy[d]!) {
          for (const peer of rule.peers ?? [undefined]) {
            for (const port of rule.ports ?? [undefined]) {
              const by = isolating.find((q) =>
                q[d]!.some((r) => !r.invalid && this.ruleCovers(r, peer, port, policy.namespace)),
              );
              if (!by) return undefined;
              used.add(by);
            }
          }
        }
      }
    }
    return used;
  }

  private ruleCovers(
    rule: Rule,
    peer: Peer | undefined,
    port: PolicyPort | undefined,
    namespace: string,
  ): boolean {
    const peerOk =
      rule.peers === undefined ||
      (peer !== undefined && rule.peers.some((p) => this.peerSubset(peer, p, namespace)));
    const portOk =
      rule.ports === undefined || (port !== undefined && rule.ports.some((p) => portSubset(port, p)));
    return peerOk && portOk;
  }

  private peerSubset(a: Peer, b: Peer, namespace: string): boolean {
    if (a.kind === 'ipBlock' || b.kind === 'ipBlock') {
      return (
        a.kind === 'ipBlock' &&
        b.kind === 'ipBlock' &&
        a.ranges.every((r) =>
          b.ranges.some((s) => s.family === r.family && s.first <= r.first && r.last <= s.last),
        )
      );
    }
    return this.scopeSubset(a.namespaces, b.namespaces, namespace) && selectorSubset(a.pods, b.pods);
  }

  private scopeSubset(a: PeerNamespaces, b: PeerNamespaces, namespace: string): boolean {
    if (b.kind === 'selector' && isEverything(b.selector)) return true;
    if (a.kind === 'own') {
      if (b.kind === 'own') return true;
      const ns = this.state.namespaces.get(namespace);
      return ns !== undefined && matchesSelector(b.selector, ns.labels);
    }
    return b.kind === 'selector' && selectorSubset(a.selector, b.selector);
  }
}

function allowsDnsPort(rule: Rule): boolean {
  if (rule.invalid) return false;
  return (
    rule.ports === undefined ||
    rule.ports.some(
      (p) =>
        p.protocol === 'UDP' &&
        (p.port === undefined || (typeof p.port === 'number' && p.port <= 53 && 53 <= (p.endPort ?? p.port))),
    )
  );
}

/** Does every label set that `a` matches also match `b`? (A sufficient, structural test.) */
export function selectorSubset(a: LabelSelector, b: LabelSelector): boolean {
  for (const [k, v] of Object.entries(b.matchLabels)) if (a.matchLabels[k] !== v) return false;
  return b.matchExpressions.every((e) => {
    const same = a.matchExpressions.some(
      (x) => x.key === e.key && x.operator === e.operator && x.values.join('\0') === e.values.join('\0'),
    );
    if (same) return true;
    const has = Object.hasOwn(a.matchLabels, e.key);
    if (e.operator === 'Exists')
      return has || a.matchExpressions.some((x) => x.key === e.key && x.operator === 'In');
    if (e.operator === 'In') return has && e.values.includes(a.matchLabels[e.key]!);
    return false;
  });
}

function portSubset(a: PolicyPort, b: PolicyPort): boolean {
  if (a.protocol !== b.protocol) return false;
  if (b.port === undefined) return true;
  if (typeof a.port === 'number' && typeof b.port === 'number')
    return b.port <= a.port && (a.endPort ?? a.port) <= (b.endPort ?? b.port);
  return typeof a.port === 'string' && a.port === b.port;
}
