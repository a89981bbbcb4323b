// `tollgate lab up|run|down|list`: a small dispatcher over lab subcommands (add one entry to `subcommands` to
// extend it, e.g. `lab run`). Argument handling and printing only; everything network is in src/lab.

import type { ParseArgsConfig } from 'node:util';
import { LabError } from '../lab/errors.ts';
import { demoSpec, Lab, listLabs, sweepLabs } from '../lab/index.ts';
import { LabScenarioDriver } from '../lab/scenario.ts';
import { UsageError } from '../util/errors.ts';
import { type Command, type CommandIO, parseCommandArgs } from './command.ts';
import { requireScenarios, runScenarioFiles } from './scenarios.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface LabSubcommand<O extends Options = Options> {
  summary: string;
  /** Usage lines shown under `tollgate lab --help`. */
  usage: string;
  /** Its flags, parsed by the dispatcher: a bad one is shown with the whole `tollgate lab` usage. */
  options: O;
  run(args: ReturnType<typeof parseCommandArgs<O>>, io: CommandIO): Promise<number>;
}

/** Keeps each subcommand's own flag types inside it while the table holds them all alike. */
const subcommand = <const O extends Options>(s: LabSubcommand<O>) => s as unknown as LabSubcommand;

function positiveInt(flag: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new UsageError(`--${flag} must be 1..${max}, not '${value}'`);
  return n;
}

const up = subcommand({
  summary: 'create a demo lab that stays up after the command returns',
  usage: [
    'tollgate lab up [--nodes N] [--pods K] [--id ID]',
    '  --nodes N  nodes (default 2): 198.51.100.N, pods 10.244.N.0/24 and fd00:10:244:N::/64',
    '  --pods K   pods (default 6) named x/a, y/a, z/a, x/b, ... round-robin over the nodes, each serving',
    '             80/TCP 81/TCP (HTTP) and 80/UDP 81/UDP (echo); plus host/backup at 203.0.113.10 (80/TCP)',
    '  --id ID    lab id in every namespace name tglab-ID-... (default: random)',
  ].join('\n'),
  options: { nodes: { type: 'string' }, pods: { type: 'string' }, id: { type: 'string' } },
  async run({ values }, io) {
    const nodes = positiveInt('nodes', values.nodes, 2, 50);
    const pods = positiveInt('pods', values.pods, 6, 240);
    if (values.id !== undefined && !/^[a-z0-9]{1,12}$/.test(values.id)) {
      throw new UsageError(`--id must be 1-12 characters a-z 0-9, not '${values.id}'`);
    }
    const started = performance.now();
    const lab = await Lab.up(demoSpec(nodes, pods), { detached: true, id: values.id });
    const first = lab.pods[0];
    const second = lab.pods[1] ?? first;
    io.out(`${lab.describe()}\n`);
    io.out(
      [
        `lab ${lab.id} is up in ${Math.round(performance.now() - started)} ms. Try:`,
        first ? `  ip netns exec ${first.ns} bash                   # a shell in pod ${first.key}` : '',
        first && second
          ? `  ip netns exec ${first.ns} curl -s http://${second.ip4}/   # ${first.key} -> ${second.key}`
          : '',
        `  ip netns exec ${lab.nodeNamespace(1)} nft list ruleset   # node 1, where the enforcer programs nftables`,
        `  tollgate lab down ${lab.id}`,
      ]
        .filter(Boolean)
        .join('\n'),
    );
    return 0;
  },
});

const down = subcommand({
  summary: 'remove labs: the given ids, or every lab no running process owns (crashed runs, `lab up`)',
  usage: [
    'tollgate lab down [ID...] [--all]',
    '  ID     remove these labs (namespaces tglab-ID-* and the processes inside them)',
    '  --all  also remove labs that a running test or benchmark still owns',
  ].join('\n'),
  options: { all: { type: 'boolean' } },
  async run({ values, positionals }, io) {
    const removed = await sweepLabs({ ids: positionals, all: values.all ?? false });
    const missing = positionals.filter((id) => !removed.some((l) => l.id === id));
    for (const lab of removed) io.out(`removed lab ${lab.id} (${lab.namespaces.length} namespaces)`);
    if (removed.length === 0 && positionals.length === 0) io.out('no stale labs');
    for (const id of missing) io.err(`no lab ${id}`);
    return missing.length > 0 ? 1 : 0;
  },
});

const list = subcommand({
  summary: 'list the labs on this machine',
  usage: 'tollgate lab list',
  options: {},
  async run(_args, io) {
    const labs = await listLabs();
    if (labs.length === 0) io.out('no labs');
    for (const lab of labs) {
      const state = lab.owned ? `owned by pid ${lab.ownerPid}` : lab.detached ? 'detached (lab up)' : 'stale';
      io.out(`${lab.id}  ${lab.namespaces.length} namespaces  ${state}  ${lab.createdAt ?? ''}`);
    }
    return 0;
  },
});

const run = subcommand({
  summary: 'run scenario files with real traffic in a fresh lab per scenario',
  usage: [
    'tollgate lab run [--api] SCENARIO|DIR...',
    '  Builds the scenario cluster in network namespaces, programs every node (compile + netlink inside the',
    '  node namespace), probes every expectation from inside its source (curl for TCP, a UDP client for',
    "  UDP), retrying up to 10 s until it converges. Prints each matrix step and a closing 'N passed,",
    "  N failed'; exit status 1 if any expectation failed. Everything it creates is removed afterwards.",
    '  --api  through a real kube-apiserver + etcd in the lab (scripts/k8s-binaries.sh): objects written to',
    '         the API, one `tollgate agent` per node with the daemonset/rbac.yaml service account. Only',
    '         here do fault steps run (tamper, agent, api, same-ip-as): `expect: {within: 2s}` is timed',
    '         from the first change or fault to every table equal to the model (allowance: within x the',
    '         load per core, 1..5), and the deny probes are sampled every 200 ms through the window; the',
    '         report prints both for every such step',
  ].join('\n'),
  options: { api: { type: 'boolean' } },
  async run({ values, positionals }, io) {
    requireScenarios(positionals, this.usage);
    // The API driver (and the Kubernetes client library it loads) only when asked for.
    const ApiScenarioDriver = values.api
      ? (await import('../lab/api-driver.ts')).ApiScenarioDriver
      : undefined;
    const makeDriver = () => (ApiScenarioDriver ? new ApiScenarioDriver() : new LabScenarioDriver());
    // A lab run takes seconds to minutes per file: on a terminal, say which file of how many is running.
    const progress = process.stderr.isTTY ? (line: string) => io.err(line) : undefined;
    return runScenarioFiles(positionals, makeDriver, io, {
      matrices: true,
      // A file with probes the lab cannot send (SCTP): refused before its lab is built; the rest still run.
      notProbed: (e) => (e instanceof LabError && e.code === 'E_LAB_UNSUPPORTED' ? e.message : undefined),
      ...(progress ? { progress } : {}),
    });
  },
});

export const subcommands: Record<string, LabSubcommand> = { up, run, down, list };

function usage(): string {
  return [
    'tollgate lab SUBCOMMAND: a Flannel-like cluster of network namespaces on this machine (needs root)',
    '',
    ...Object.entries(subcommands).flatMap(([name, s]) => [`${name}: ${s.summary}`, s.usage, '']),
  ].join('\n');
}

export const labCommand: Command = {
  name: 'lab',
  get usage() {
    return usage();
  },
  async run(argv, io) {
    const [name, ...rest] = argv;
    const sub = name !== undefined && Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
    if (!sub) {
      io.err(name === undefined ? usage() : `tollgate lab: unknown subcommand '${name}'\n\n${usage()}`);
      return 2;
    }
    return sub.run(parseCommandArgs(labCommand, rest, sub.options), io);
  },
};
