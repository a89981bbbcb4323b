// Keeps only the fields tollgate needs of each watched object, so that 10,000 pods cost little memory.
// Pure; the policy engine normalizes what is left.
type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Only tollgate's own annotations (audit mode, drop-report opt-out): others can be large. */
function tollgateAnnotations(v: unknown): Obj {
  const kept = Object.entries(obj(v)).filter(([k]) => k.startsWith('tollgate.dev/'));
  return kept.length === 0 ? {} : { annotations: Object.fromEntries(kept) };
}

function meta(o: Obj, namespaced: boolean): Obj {
  const m = obj(o.metadata);
  return {
    name: m.name,
    ...(namespaced ? { namespace: m.namespace } : {}),
    ...(m.labels ? { labels: m.labels } : {}),
    ...tollgateAnnotations(m.annotations),
    resourceVersion: m.resourceVersion,
  };
}

function ports(containers: unknown[]): Obj[] {
  return containers.map((c) => ({
    ...(obj(c).restartPolicy ? { restartPolicy: obj(c).restartPolicy } : {}),
    ports: list(obj(c).ports).map((p) => {
      const x = obj(p);
      return {
        ...(x.name ? { name: x.name } : {}),
        containerPort: x.containerPort,
        protocol: x.protocol ?? 'TCP',
      };
    }),
  }));
}

export function trimPod(o: Obj): Obj {
  const spec = obj(o.spec);
  const status = obj(o.status);
  return {
    metadata: meta(o, true),
    spec: {
      nodeName: spec.nodeName,
      hostNetwork: spec.hostNetwork === true,
      containers: ports(list(spec.containers)),
      // Native sidecars (restartPolicy Always) serve ports too.
      initContainers: ports(list(spec.initContainers).filter((c) => obj(c).restartPolicy === 'Always')),
    },
    status: {
      phase: status.phase,
      podIP: status.podIP,
      podIPs: list(status.podIPs).map((p) => ({ ip: obj(p).ip })),
    },
  };
}

export function trimNamespace(o: Obj): Obj {
  return { metadata: meta(o, false) };
}

export function trimPolicy(o: Obj): Obj {
  return { metadata: meta(o, true), spec: o.spec };
}

/** apiVersion stays: a ClusterNetworkPolicy of another version fails closed (cluster-normalize.ts). */
export function trimClusterPolicy(o: Obj): Obj {
  return { apiVersion: o.apiVersion, metadata: meta(o, false), spec: o.spec };
}

export function trimNode(o: Obj): Obj {
  const spec = obj(o.spec);
  return {
    metadata: meta(o, false),
    spec: { podCIDR: spec.podCIDR, podCIDRs: spec.podCIDRs },
    status: {
      addresses: list(obj(o.status).addresses).map((a) => ({ type: obj(a).type, address: obj(a).address })),
    },
  };
}
