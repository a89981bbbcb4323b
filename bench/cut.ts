// Benchmark of one --established=cut pass on a busy node: reading a conntrack dump of 100,000 entries
// (ctnetlink bytes, as the kernel sends them) and deciding each against 10,000 pods under 1,000 policies,
// next to planning the same node from scratch in the same run (the ratio is what to watch). Two ways of
// reading, in the same run: decoding every entry (the baseline), and skipping those without a local pod
// before decoding (what a pass does). CPU times, since the machine is shared. Also one --policy-usage pass
// (src/agent/usage.ts) over the same dump: the first (every local entry new) and a steady one (all seen
// before), each with the peek; a pass runs every 10 s by default. Not a test.
import { pino } from 'pino';
import { connectionsToCut, localAddresses } from '../src/agent/cut.ts';
import { createMetrics } from '../src/agent/metrics.ts';
import { PolicyUsage } from '../src/agent/usage.ts';
import { decodeEntry, sourcesTouch, writeTuple } from '../src/conntrack/entry.ts';
import { Writer } from '../src/netlink/attr.ts';
import { CTA, ctnlType, IPCTNL_MSG, NFPROTO, NLM_F } from '../src/netlink/constants.ts';
import { beginMessage, endMessage, splitMessages } from '../src/netlink/message.ts';
import { parseAddress } from '../src/policy/address.ts';
import { ClusterIndex } from '../src/policy/index.ts';
import { Memo } from '../src/policy/memo.ts';
import { normalizeNamespace, normalizeNode, normalizePod, normalizePolicy } from '../src/policy/normalize.ts';
import { Planner } from '../src/policy/plan.ts';
import { ipOf, NODES, syntheticCluster } from './_synthetic.ts';

const PODS = 10_000;
const POLICIES = 1_000;
const ENTRIES = 100_000;

const addr = (s: string) => parseAddress(s)!;

/** A dump: entry k connects pod (k * 7919) % PODS to pod k % PODS on port 8000-8002, or (every 7th) to an outside host. */
function dumpBytes(): Buffer {
  const w = new Writer(ENTRIES * 200);
  for (let k = 0; k < ENTRIES; k++) {
    const src = addr(ipOf((k * 7919) % PODS));
    const dst = k % 7 === 0 ? addr(`203.0.113.${k % 250}`) : addr(ipOf(k % PODS));
    const sport = 32768 + (k % 28000);
    const dport = 8000 + (k % 3);
    const s = beginMessage(w, ctnlType(IPCTNL_MSG.CT_NEW), NLM_F.MULTI, 1, NFPROTO.IPV4);
    writeTuple(w, CTA.TUPLE_ORIG, { src, dst, protocol: 6, sport, dport });
    writeTuple(w, CTA.TUPLE_REPLY, { src: dst, dst: src, protocol: 6, sport: dport, dport: sport });
    w.u32be(CTA.STATUS, 0xe);
    w.u32be(CTA.TIMEOUT, 431999);
    w.u32be(CTA.MARK, 0);
    w.nest(CTA.PROTOINFO, () => w.nest(1, () => w.u8(1, 3)));
    w.u32be(CTA.ID, k);
    endMessage(w, s);
  }
  return Buffer.from(w.bytes());
}

export async function run() {
  const raw = syntheticCluster(PODS, POLICIES);
  const memo = new Memo();
  const state = {
    namespaces: new Map(raw.namespaces.map((n) => normalizeNamespace(n, memo)).map((n) => [n.name, n])),
    pods: raw.pods.map((p) => normalizePod(p, memo)),
    policies: raw.policies.map(normalizePolicy),
    nodes: raw.nodes.map(normalizeNode),
  };
  const planStart = performance.now();
  const index = new ClusterIndex(state, memo);
  new Planner(index).planNode('node0');
  const planMs = performance.now() - planStart;

  const bytes = dumpBytes();
  const cpuMs = <T>(f: () => T): [T, number] => {
    const c = process.cpuUsage();
    const v = f();
    const d = process.cpuUsage(c);
    return [v, (d.user + d.system) / 1000];
  };
  const messages = splitMessages(bytes);
  const [entries, decodeMs] = cpuMs(() => messages.map(decodeEntry));
  const [cut, decideMs] = cpuMs(() => connectionsToCut(index, 'node0', entries));
  const [local, peekMs] = cpuMs(() => {
    const only = localAddresses(index, 'node0');
    return messages.filter((m) => sourcesTouch(m, only)).map(decodeEntry);
  });
  const [cutPeeked, peekDecideMs] = cpuMs(() => connectionsToCut(index, 'node0', local));
  if (cutPeeked.length !== cut.length) throw new RangeError('the peek changed what is cut');
  // The usage passes read the dump through the same peek (the fake access decodes what the socket would).
  const usage = new PolicyUsage({
    nodeName: 'node0',
    log: pino({ level: 'silent' }),
    metrics: createMetrics(),
    index: () => index,
    conntrack: () => ({
      dump: async (_family, only) => {
        const entries = messages.filter((m) => sourcesTouch(m, only!)).map(decodeEntry);
        return { entries, undecodable: 0, skipped: messages.length - entries.length };
      },
      delete: async () => 'gone' as const,
    }),
    intervalMs: 10_000,
  });
  const asyncCpuMs = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
    const c = process.cpuUsage();
    const v = await f();
    const d = process.cpuUsage(c);
    return [v, (d.user + d.system) / 1000];
  };
  const [firstPass, usageFirstMs] = await asyncCpuMs(() => usage.pass());
  const [steadyPass, usageSteadyMs] = await asyncCpuMs(() => usage.pass());
  return {
    pods: PODS,
    policies: POLICIES,
    nodes: NODES,
    entries: entries.length,
    dumpMB: Math.round(bytes.length / 1e5) / 10,
    decodeAllCpuMs: Math.round(decodeMs),
    decideAllCpuMs: Math.round(decideMs),
    localEntries: local.length,
    peekDecodeCpuMs: Math.round(peekMs),
    peekDecideCpuMs: Math.round(peekDecideMs),
    cut: cut.length,
    planNodeMs: Math.round(planMs),
    allOverPlan: Math.round(((decodeMs + decideMs) / planMs) * 100) / 100,
    peekOverPlan: Math.round(((peekMs + peekDecideMs) / planMs) * 100) / 100,
    peekOverAll: Math.round(((peekMs + peekDecideMs) / (decodeMs + decideMs)) * 100) / 100,
    usageFirstCpuMs: Math.round(usageFirstMs),
    usageFirstCounted: firstPass?.counted,
    usageSteadyCpuMs: Math.round(usageSteadyMs),
    usageSteadyNew: steadyPass?.new,
    usageSteadyOverPlan: Math.round((usageSteadyMs / planMs) * 100) / 100,
    usagePolicies: usage.records().length,
    rssMB: Math.round(process.memoryUsage().rss / 1e6),
  };
}
