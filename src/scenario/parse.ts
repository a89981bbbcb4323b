// Parses and validates scenario files; every error names the file and the field. No probing, no state.
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { parseReportLine, ReportFormatError } from '../nflog/report.ts';
import type { Protocol } from '../policy/types.ts';
import { PROTOCOLS } from '../policy/types.ts';
import { UsageError } from '../util/errors.ts';
import { isObj, type Obj } from '../util/objects.ts';
import { yamlDocuments as parseYamlDocuments } from '../util/yaml.ts';
import type {
  AgentAction,
  DeleteResource,
  DropLine,
  ProbeFamily,
  Scenario,
  ScenarioConnection,
  ScenarioHost,
  ScenarioPod,
  ScenarioPort,
  Step,
} from './types.ts';
import { AGENT_ACTIONS, DEFAULT_PORTS, ESTABLISHED, PROBE_FAMILIES } from './types.ts';

export class ScenarioError extends UsageError {}

/** Every document of a scenario's YAML text (see util/yaml.ts); a problem is a ScenarioError. */
export function yamlDocuments(text: string, where: string): unknown[] {
  return parseYamlDocuments(text, where, (message, cause) => new ScenarioError(message, { cause }));
}

class Reader {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }
  fail(field: string, message: string): never {
    throw new ScenarioError(`${this.file}: ${field}: ${message}`);
  }
  obj(v: unknown, field: string): Obj {
    if (!isObj(v)) this.fail(field, 'must be a mapping');
    return v;
  }
  list(v: unknown, field: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(field, 'must be a list');
    return v;
  }
  str(v: unknown, field: string): string {
    if (typeof v !== 'string' || v === '') this.fail(field, 'must be a non-empty string');
    return v;
  }
  /** A list of non-empty strings (absent: empty), each error naming its index. */
  strings(v: unknown, field: string): string[] {
    return this.list(v, field).map((x, i) => this.str(x, `${field}[${i}]`));
  }
  labels(v: unknown, field: string): Record<string, string> {
    if (v === undefined || v === null) return {};
    const o = this.obj(v, field);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o)) out[k] = typeof val === 'string' ? val : String(val);
    return out;
  }
  protocol(v: unknown, field: string): Protocol {
    if (v === undefined) return 'TCP';
    if (typeof v !== 'string' || !(PROTOCOLS as readonly string[]).includes(v))
      this.fail(field, 'must be TCP, UDP or SCTP');
    return v as Protocol;
  }
  port(v: unknown, field: string): number {
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535)
      this.fail(field, 'must be a port number');
    return v as number;
  }
  ports(v: unknown, field: string, withDefault: boolean): ScenarioPort[] {
    if ((v === undefined || v === null) && withDefault) return DEFAULT_PORTS.map((p) => ({ ...p }));
    return this.list(v, field).map((p, i) => {
      const o = this.obj(p, `${field}[${i}]`);
      return {
        name: o.name === undefined ? undefined : this.str(o.name, `${field}[${i}].name`),
        port: this.port(o.port, `${field}[${i}].port`),
        protocol: this.protocol(o.protocol, `${field}[${i}].protocol`),
      };
    });
  }
  podKey(v: unknown, field: string): string {
    const s = this.str(v, field);
    if (!/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(s)) this.fail(field, `'${s}' is not namespace/name`);
    return s;
  }
  node(v: unknown, field: string, nodes: number): number {
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > nodes)
      this.fail(field, `must be a node index from 1 to ${nodes}`);
    return v as number;
  }
  family(v: unknown, field: string): ProbeFamily {
    if (v === undefined) return 'ipv4';
    if (typeof v !== 'string' || !(PROBE_FAMILIES as readonly string[]).includes(v))
      this.fail(field, `must be ipv4, ipv6 or both (got ${JSON.stringify(v)})`);
    return v as ProbeFamily;
  }
  /** `2s`, `500ms`, `1.5s` or a number of seconds, as milliseconds. */
  duration(v: unknown, field: string): number {
    const m = typeof v === 'number' ? [String(v), String(v), 's'] : /^(\d+(?:\.\d+)?)(ms|s)$/.exec(String(v));
    const ms = m ? Number(m[1]) * (m[2] === 's' ? 1000 : 1) : Number.NaN;
    if (!(ms > 0 && ms <= 600_000))
      this.fail(field, `must be a duration such as 2s or 500ms (got ${String(v)})`);
    return ms;
  }
  pod(v: unknown, field: string, nodes: number, inStep = false): ScenarioPod {
    const o = this.obj(v, field);
    const node = o.node === undefined ? undefined : this.node(o.node, `${field}.node`, nodes);
    if (!inStep && o['same-ip-as'] !== undefined)
      this.fail(`${field}.same-ip-as`, "only pods of an add-pods step may claim a live pod's address");
    if (o['same-ip-as'] !== undefined && o['reuse-ip-of'] !== undefined)
      this.fail(field, 'give at most one of reuse-ip-of and same-ip-as');
    return {
      name: this.podKey(o.name, `${field}.name`),
      labels: this.labels(o.labels, `${field}.labels`),
      node,
      hostNetwork: o.hostNetwork === true,
      ports: this.ports(o.ports, `${field}.ports`, true),
      reuseIpOf:
        o['reuse-ip-of'] === undefined ? undefined : this.podKey(o['reuse-ip-of'], `${field}.reuse-ip-of`),
      sameIpAs:
        o['same-ip-as'] === undefined ? undefined : this.podKey(o['same-ip-as'], `${field}.same-ip-as`),
    };
  }
}

export function parseScenarioText(text: string, file: string): Scenario {
  const r = new Reader(file);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new ScenarioError(`${file}: not valid YAML: ${(error as Error).message}`, { cause: error });
  }
  const top = r.obj(doc, '(top level)');
  const nodes = top.nodes === undefined ? 2 : top.nodes;
  if (!Number.isInteger(nodes) || (nodes as number) < 1 || (nodes as number) > 200)
    r.fail('nodes', 'must be 1 to 200');
  const nodeCount = nodes as number;
  const namespaces = r.list(top.namespaces, 'namespaces').map((n, i) => {
    const o = r.obj(n, `namespaces[${i}]`);
    return {
      name: r.str(o.name, `namespaces[${i}].name`),
      labels: r.labels(o.labels, `namespaces[${i}].labels`),
    };
  });
  const pods = r.list(top.pods, 'pods').map((p, i) => r.pod(p, `pods[${i}]`, nodeCount));
  const hosts: ScenarioHost[] = r.list(top.hosts, 'hosts').map((h, i) => {
    const o = r.obj(h, `hosts[${i}]`);
    const ip = r.str(o.ip, `hosts[${i}].ip`);
    // The IPv6 address is derived from this one (world.ts, hostIp6), so it must be IPv4.
    if (!isIPv4(ip)) r.fail(`hosts[${i}].ip`, `'${ip}' is not an IPv4 address`);
    return {
      name: r.str(o.name, `hosts[${i}].name`),
      ip,
      ports: r.ports(o.ports, `hosts[${i}].ports`, false),
    };
  });
  const steps = r.list(top.steps, 'steps').map((s, i) => parseStep(r, s, i, nodeCount));
  const established = top.established ?? 'keep';
  if (!(ESTABLISHED as readonly unknown[]).includes(established))
    r.fail('established', `must be keep or cut (got ${JSON.stringify(established)})`);
  return {
    file,
    name: typeof top.name === 'string' ? top.name : file,
    description: typeof top.description === 'string' ? top.description : '',
    nodes: nodeCount,
    namespaces,
    pods,
    hosts,
    steps,
    established: established as Scenario['established'],
  };
}

const STEP_KINDS =
  'apply, delete, label, add-pods, expect, matrix, drops, tamper, agent, api, connect, connections';

function parseStep(r: Reader, raw: unknown, index: number, nodes: number): Step {
  const field = `steps[${index}]`;
  const o = r.obj(raw, field);
  const keys = Object.keys(o);
  if (keys.length !== 1)
    r.fail(field, `a step has exactly one of ${STEP_KINDS} (got ${keys.join(', ') || 'nothing'})`);
  const kind = keys[0]!;
  const v = o[kind];
  const where = `${r.file}: ${field}.${kind}`;
  const base = { index, where };
  switch (kind) {
    case 'apply':
      return { ...base, kind: 'apply', text: r.str(v, `${field}.apply`) };
    case 'delete': {
      const m = /^(networkpolicy|pod|namespace|clusternetworkpolicy)\s+(\S+)$/.exec(
        r.str(v, `${field}.delete`).trim(),
      );
      if (!m)
        r.fail(
          `${field}.delete`,
          "must be 'networkpolicy NS/NAME', 'pod NS/NAME', 'namespace NAME' or 'clusternetworkpolicy NAME'",
        );
      return { ...base, kind: 'delete', resource: m[1] as DeleteResource, key: m[2]! };
    }
    case 'label': {
      const l = r.obj(v, `${field}.label`);
      const target = l.namespace !== undefined ? 'namespace' : l.pod !== undefined ? 'pod' : undefined;
      if (!target) r.fail(`${field}.label`, 'needs namespace: NAME or pod: NS/NAME');
      const remove = r.strings(l.remove, `${field}.label.remove`);
      return {
        ...base,
        kind: 'label',
        target,
        key: r.str(l[target], `${field}.label.${target}`),
        set: r.labels(l.set, `${field}.label.set`),
        remove,
      };
    }
    case 'add-pods':
      return {
        ...base,
        kind: 'add-pods',
        pods: r.list(v, `${field}.add-pods`).map((p, i) => r.pod(p, `${field}.add-pods[${i}]`, nodes, true)),
      };
    case 'expect': {
      if (Array.isArray(v))
        return {
          ...base,
          kind: 'expect',
          probes: v.map((p, i) => r.str(p, `${field}.expect[${i}]`)),
          withinMs: undefined,
          family: 'ipv4',
        };
      const e = r.obj(v, `${field}.expect`);
      for (const k of Object.keys(e))
        if (!['probes', 'within', 'family'].includes(k))
          r.fail(`${field}.expect.${k}`, 'unknown field (probes, within, family)');
      if (!Array.isArray(e.probes) || e.probes.length === 0)
        r.fail(`${field}.expect.probes`, 'must be a non-empty list of probes');
      return {
        ...base,
        kind: 'expect',
        probes: e.probes.map((p, i) => r.str(p, `${field}.expect.probes[${i}]`)),
        withinMs: e.within === undefined ? undefined : r.duration(e.within, `${field}.expect.within`),
        family: r.family(e.family, `${field}.expect.family`),
      };
    }
    case 'drops': {
      if (!Array.isArray(v) || v.length === 0)
        r.fail(`${field}.drops`, 'must be a non-empty list of report lines');
      return { ...base, kind: 'drops', lines: v.map((x, i) => dropLine(r, x, `${field}.drops[${i}]`)) };
    }
    case 'tamper': {
      const o = r.obj(v, `${field}.tamper`);
      return {
        ...base,
        kind: 'tamper',
        node: r.node(o.node, `${field}.tamper.node`, nodes),
        nft: r.str(o.nft, `${field}.tamper.nft`),
      };
    }
    case 'agent': {
      const o = r.obj(v, `${field}.agent`);
      const action = r.str(o.do, `${field}.agent.do`);
      if (!(AGENT_ACTIONS as readonly string[]).includes(action))
        r.fail(`${field}.agent.do`, `'${action}' is not one of ${AGENT_ACTIONS.join(', ')}`);
      return {
        ...base,
        kind: 'agent',
        node: r.node(o.node, `${field}.agent.node`, nodes),
        action: action as AgentAction,
      };
    }
    case 'api': {
      if (v !== 'stop' && v !== 'start') r.fail(`${field}.api`, "must be 'stop' or 'start'");
      return { ...base, kind: 'api', action: v };
    }
    case 'matrix': {
      const m = r.obj(v, `${field}.matrix`);
      for (const k of Object.keys(m))
        if (!['port', 'protocol', 'rules', 'family'].includes(k))
          r.fail(`${field}.matrix.${k}`, 'unknown field (port, protocol, rules, family)');
      const port = typeof m.port === 'string' ? m.port : r.port(m.port, `${field}.matrix.port`);
      const rules = r.strings(m.rules, `${field}.matrix.rules`);
      return {
        ...base,
        kind: 'matrix',
        port,
        protocol: r.protocol(m.protocol, `${field}.matrix.protocol`),
        rules,
        family: r.family(m.family, `${field}.matrix.family`),
      };
    }
    case 'connect':
      return { ...base, kind: 'connect', connections: parseConnect(r, v, `${field}.connect`) };
    case 'connections':
      return { ...base, kind: 'connections', checks: parseConnectionChecks(r, v, `${field}.connections`) };
    default:
      return r.fail(field, `unknown step '${kind}' (${STEP_KINDS})`);
  }
}

/** A `drops` line in the report-line form (nflog/report.ts); it must name a port, as every probe has one. */
function dropLine(r: Reader, raw: unknown, field: string): DropLine {
  const text = r.str(raw, field);
  try {
    const line = parseReportLine(text);
    if (line.port === undefined) r.fail(field, `'${text}' names no port (SRC -> DST:PORT/PROTO ...)`);
    return { text, where: `${r.file}: ${field}`, line };
  } catch (error) {
    if (error instanceof ReportFormatError) r.fail(field, error.message);
    throw error;
  }
}

/** `connect: [{name, from, to, port}]`: names unique within the step (and, at run time, the scenario). */
function parseConnect(r: Reader, v: unknown, field: string): ScenarioConnection[] {
  const list = r.list(v, field);
  if (list.length === 0) r.fail(field, 'must be a non-empty list of {name, from, to, port}');
  const seen = new Set<string>();
  return list.map((c, i) => {
    const o = r.obj(c, `${field}[${i}]`);
    for (const k of Object.keys(o))
      if (!['name', 'from', 'to', 'port'].includes(k))
        r.fail(`${field}[${i}].${k}`, 'unknown field (name, from, to, port)');
    const name = r.str(o.name, `${field}[${i}].name`);
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name))
      r.fail(`${field}[${i}].name`, `'${name}' is not a name (a-z, 0-9, -)`);
    if (seen.has(name)) r.fail(`${field}[${i}].name`, `'${name}' twice`);
    seen.add(name);
    return {
      name,
      from: r.podKey(o.from, `${field}[${i}].from`),
      to: r.podKey(o.to, `${field}[${i}].to`),
      port: r.port(o.port, `${field}[${i}].port`),
    };
  });
}

/** `connections: ['c1 cut', 'c2 alive']`. */
function parseConnectionChecks(
  r: Reader,
  v: unknown,
  field: string,
): { name: string; expect: 'alive' | 'cut' }[] {
  const list = r.list(v, field);
  if (list.length === 0) r.fail(field, "must be a non-empty list such as ['c1 cut', 'c2 alive']");
  return list.map((x, i) => {
    const m = /^\s*(\S+)\s+(alive|cut)\s*$/.exec(r.str(x, `${field}[${i}]`));
    if (!m) r.fail(`${field}[${i}]`, `must be 'NAME alive' or 'NAME cut' (got ${JSON.stringify(x)})`);
    return { name: m[1]!, expect: m[2] as 'alive' | 'cut' };
  });
}

export function loadScenario(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ScenarioError(`${file}: cannot read: ${(error as Error).message}`, { cause: error });
  }
  return parseScenarioText(text, file);
}
