// Benchmark of ClusterNetworkPolicies on the dataplane (issue 19): new TCP connections per second from a
// client pod to an nginx pod on another node through tollgate's table with 0, 10 and 100
// ClusterNetworkPolicies selecting both pods, as ratios to the conntrack-only table of the same run. Needs
// root, nginx and ab; not a test. It must not change what bench/dataplane.ts measures.
//
// Method: the lab of bench/dataplane.ts (enforced nodes 1-2 with 10,000 API-only pods, plain pair 3-4).
// ROUNDS rounds; each programs the enforced pair with every configuration in turn (order rotated and
// reversed from round to round: drift spreads over all of them): `conntrack` (only the bench's own table
// with tollgate's two `ct state` rules) and `cnpN` (tollgate's table, no NetworkPolicies, N
// ClusterNetworkPolicies of _dataplane-objects.ts clusterPolicies: the measured SYN walks every Admin and
// Baseline rule and the last Baseline rule accepts it, on the client's egress and the server's ingress).
// Per configuration and round, one ABBA quad of SAMPLE_SECONDS `ab` samples (enforced pair, plain pair)
// gives two paired ratios of connections per CPU-second (see bench/_dataplane-load.ts LoadSample). The
// round's ratio is their mean; `ratio_vs_conntrack` is the median over rounds of the configuration's
// round ratio over the conntrack round ratio of the same round; `wall_*` the same of wall-clock rates.
// `per_packet`: the tier rules and set lookups the measured SYN meets (read from the kernel's listing) at
// 100 ClusterNetworkPolicies, also without the 10,000 API-only pods and with 1,000 NetworkPolicies on them:
// equal figures show the cost grows with the cluster policies selecting the pod only.
import { loadavg } from 'node:os';
import type { SyncResult } from '../src/agent/reconciler.ts';
import { TABLE } from '../src/compile/desired.ts';
import type { Lab } from '../src/lab/index.ts';
import type { ClusterObjects } from '../src/policy/normalize.ts';
import { TollgateError } from '../src/util/errors.ts';
import { LOAD_CPU, type LoadSample, NODE_SYSCTLS, setSysctls } from './_dataplane-load.ts';
import {
  AGENT_PORT,
  baseObjects,
  CLIENT,
  clusterPolicies,
  FAKE_PODS,
  LOAD_PORT,
  OTHER,
  otherPodsPolicies,
  SERVER,
} from './_dataplane-objects.ts';
import {
  BASE_CLIENT,
  BASE_SERVER,
  conntrackTable,
  median,
  openDataplaneLab,
  removeTable,
  round,
} from './dataplane.ts';

const COUNTS = [0, 10, 100];
/** NetworkPolicies on the API-only pods for the per-packet check (bench/dataplane.ts shape a). */
const OTHER_POLICIES = 1_000;
/** BENCH_CNP_ROUNDS: rounds of every configuration (default 10). BENCH_CNP_SMOKE=1: no API-only pods. */
const ROUNDS = Number(process.env.BENCH_CNP_ROUNDS ?? 10);
const SMOKE = process.env.BENCH_CNP_SMOKE === '1';
const SAMPLE_SECONDS = 1;
const CONCURRENCY = 16;

type Config = 'conntrack' | `cnp${number}`;

interface Round {
  cpu: number;
  wall: number;
  enforced: LoadSample[];
  baseline: LoadSample[];
  failed: number;
}

/** What the measured SYN meets in the tier chains of one side (it is IPv4). */
interface TierCost {
  chains: number;
  /**
   * Rules of those chains: the SYN is checked against every one (none but the last Baseline Accept
   * matches); an IPv6 rule stops at its first comparison (`meta nfproto ipv6`).
   */
  rules: number;
  ipv6_rules: number;
  /** Set lookups (`@set`) of the other rules: at most this many per new IPv4 connection. */
  lookups: number;
}

const fail = (message: string) => new TollgateError('E_BENCH', message);

/**
 * The tier chains of one direction (`ti-`/`te-` and their Baseline chains `-b`) in the node's listing
 * (`add rule inet tollgate CHAIN ...` lines): every bench pod of a node shares one plan, so they are the
 * chains the measured pod's dispatch reaches.
 */
function tierCost(listing: string, prefix: 'ti-' | 'te-'): TierCost {
  const cost: TierCost = { chains: 0, rules: 0, ipv6_rules: 0, lookups: 0 };
  for (const line of listing.split('\n')) {
    const m = /^add (chain|rule) inet \S+ (\S+)(.*)$/.exec(line);
    if (m === null || !m[2]!.startsWith(prefix)) continue;
    if (m[1] === 'chain') {
      cost.chains++;
      continue;
    }
    cost.rules++;
    if (m[3]!.includes('meta nfproto ipv6')) cost.ipv6_rules++;
    else cost.lookups += (m[3]!.match(/@/g) ?? []).length;
  }
  return cost;
}

export async function run() {
  const started = performance.now();
  const loadAtStart = loadavg().map((x) => round(x, 2));
  const dataplane = await openDataplaneLab();
  const { lab, enforcers, real } = dataplane;
  try {
    const base = baseObjects(real);
    const pods = SMOKE ? base.pods.slice(FAKE_PODS) : base.pods;
    const sample = (enforced: boolean) => dataplane.sample(enforced, SAMPLE_SECONDS, CONCURRENCY);

    const configs: Config[] = ['conntrack', ...COUNTS.map((n) => `cnp${n}` as const)];
    const rounds = new Map<Config, Round[]>(configs.map((c) => [c, []]));
    const syncs = new Map<Config, SyncResult[][]>(configs.map((c) => [c, []]));
    const costs = new Map<Config, { client_egress: TierCost; server_ingress: TierCost }>();
    let sysctlsSet = false;

    const syncAll = async (what: string, objects: ClusterObjects & { clusterPolicies: unknown[] }) => {
      // Full: the previous configuration may have removed the table behind the reconciler's back.
      const synced = await Promise.all(enforcers.map((e) => e.sync(objects, true)));
      const issues = synced.flatMap((s) => s.issues);
      if (issues.length > 0)
        throw fail(`${what}: bench objects have issues: ${JSON.stringify(issues.slice(0, 3))}`);
      return synced;
    };
    const tierCosts = async () => {
      const [node1, node2] = await Promise.all(enforcers.map((e) => e.list()));
      return { client_egress: tierCost(node1 ?? '', 'te-'), server_ingress: tierCost(node2 ?? '', 'ti-') };
    };

    const program = async (config: Config): Promise<void> => {
      if (config === 'conntrack') {
        await removeTable(lab, TABLE);
        await conntrackTable(lab, true);
      } else {
        await conntrackTable(lab, false);
        const count = Number(config.slice(3));
        const objects = { ...base, pods, policies: [], clusterPolicies: clusterPolicies(count) };
        syncs.get(config)!.push(await syncAll(config, objects));
      }
      // conntrack is loaded now, so its per-namespace sysctls exist.
      if (!sysctlsSet)
        for (const n of [1, 2, 3, 4]) await setSysctls(lab, lab.nodeNamespace(n), NODE_SYSCTLS);
      sysctlsSet = true;
    };

    for (let r = 0; r < ROUNDS; r++) {
      const rotated = configs.map((_, i) => configs[(i + r) % configs.length]!);
      const order = r % 2 === 1 ? rotated.reverse() : rotated;
      for (const config of order) {
        await program(config);
        if (r === 0) {
          await checkVerdicts(lab, config);
          if (config !== 'conntrack') {
            costs.set(config, await tierCosts());
          }
        }
        // ABBA: a drift during the quad weighs on the enforced and the plain pair alike.
        const t1 = await sample(true);
        const b1 = await sample(false);
        const b2 = await sample(false);
        const t2 = await sample(true);
        const mean = (a: number, b: number) => (a + b) / 2;
        rounds.get(config)!.push({
          cpu: mean(t1.cpuCps / b1.cpuCps, t2.cpuCps / b2.cpuCps),
          wall: mean(t1.cps / b1.cps, t2.cps / b2.cps),
          enforced: [t1, t2],
          baseline: [b1, b2],
          failed: t1.failed + t2.failed + b1.failed + b2.failed,
        });
      }
      process.stderr.write(
        `dataplane-cnp: round ${r + 1}/${ROUNDS} done, load ${loadavg()[0]!.toFixed(2)}\n`,
      );
    }

    // The per-packet cost against the cluster's size: the same 100 ClusterNetworkPolicies without the
    // API-only pods, and with 1,000 NetworkPolicies on those pods (none isolates the measured ones).
    const most = clusterPolicies(COUNTS.at(-1)!);
    await syncAll('without API-only pods', {
      ...base,
      pods: base.pods.slice(FAKE_PODS),
      policies: [],
      clusterPolicies: most,
    });
    const withoutPods = await tierCosts();
    await syncAll('with NetworkPolicies', {
      ...base,
      pods,
      policies: otherPodsPolicies(OTHER_POLICIES),
      clusterPolicies: most,
    });
    const withPolicies = await tierCosts();
    await checkVerdicts(lab, `cnp${COUNTS.at(-1)!}`);

    const conntrack = rounds.get('conntrack')!;
    const summary = (config: Config) => {
      const rs = rounds.get(config)!;
      const enforced = rs.flatMap((x) => x.enforced);
      const synced = syncs.get(config)!;
      return {
        cps: round(median(enforced.map((s) => s.cps))),
        cpu_cps: round(median(enforced.map((s) => s.cpuCps))),
        /** enforced / plain pair, connections per CPU-second. */
        ratio: round(median(rs.map((x) => x.cpu)), 3),
        wall_ratio: round(median(rs.map((x) => x.wall)), 3),
        ...(config === 'conntrack'
          ? {}
          : {
              ratio_vs_conntrack: round(median(rs.map((x, i) => x.cpu / conntrack[i]!.cpu)), 3),
              wall_ratio_vs_conntrack: round(median(rs.map((x, i) => x.wall / conntrack[i]!.wall)), 3),
              ...costs.get(config),
              chains: synced[0]?.[1]?.chains,
              sets: synced[0]?.[1]?.sets,
              elements: synced[0]?.[1]?.elements,
              sync_ms: round(median(synced.map((s) => Math.max(...s.map((x) => x.ms))))),
            }),
        failed: rs.reduce((n, x) => n + x.failed, 0),
      };
    };
    const baselines = configs.flatMap((c) => rounds.get(c)!.flatMap((x) => x.baseline));
    const results = Object.fromEntries(configs.map((c) => [c, summary(c)]));
    return {
      ...Object.fromEntries(
        COUNTS.map((n) => [`cnp${n}_ratio_vs_conntrack`, results[`cnp${n}`]!.ratio_vs_conntrack]),
      ),
      results,
      /** The tier rules and lookups the measured SYN meets at the most CNPs, against the cluster's size. */
      per_packet: {
        [`cnp${COUNTS.at(-1)!}`]: costs.get(`cnp${COUNTS.at(-1)!}`),
        without_api_pods: withoutPods,
        [`with_${OTHER_POLICIES}_network_policies`]: withPolicies,
      },
      baseline_cps: round(median(baselines.map((s) => s.cps))),
      baseline_cpu_cps: round(median(baselines.map((s) => s.cpuCps))),
      pods: pods.length,
      rounds: ROUNDS,
      sample_seconds: SAMPLE_SECONDS,
      concurrency: CONCURRENCY,
      load_cpu: LOAD_CPU,
      loadavg_start: loadAtStart,
      loadavg_end: loadavg().map((x) => round(x, 2)),
      seconds: round((performance.now() - started) / 1000),
    };
  } finally {
    await dataplane.close();
  }
}

/**
 * The client reaches the server's load port in every configuration; with ClusterNetworkPolicies the last
 * Baseline rule denies the other pod and the agent port (so the tiers really decide), without them nothing
 * is denied.
 */
async function checkVerdicts(lab: Lab, config: Config): Promise<void> {
  const tiers = config !== 'conntrack' && config !== 'cnp0';
  const expect = [
    { from: CLIENT.key, to: SERVER.key, port: LOAD_PORT, ok: true },
    { from: BASE_CLIENT, to: BASE_SERVER, port: LOAD_PORT, ok: true },
    { from: CLIENT.key, to: SERVER.key, port: AGENT_PORT, ok: !tiers },
    { from: OTHER.key, to: SERVER.key, port: LOAD_PORT, ok: !tiers },
  ];
  const results = await lab.probeMany(
    expect.map((e) => ({ from: e.from, to: e.to, port: e.port, protocol: 'TCP', timeoutMs: 1500 })),
  );
  results.forEach((r, i) => {
    if (r.ok !== expect[i]!.ok)
      throw fail(
        `${config}: ${r.from} -> ${r.to}:${r.port} ${r.ok ? 'allowed' : 'denied'} (${r.detail}), expected the opposite`,
      );
  });
}
