// The agent hands pods to normalizePod as listed, without trimming them first (store.ts rawIngest): that
// is only right while normalizePod reads nothing the trim drops and applies the trim's defaults.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { trimPod } from '../../src/k8s/trim.ts';
import { normalizePod } from '../../src/policy/normalize.ts';

const anyValue = fc.oneof(fc.constant(undefined), fc.constant(null), fc.boolean(), fc.integer(), fc.string());
const port = fc.record(
  {
    name: fc.oneof(fc.constantFrom('http', 'dns', ''), anyValue),
    containerPort: fc.oneof(fc.integer({ min: 0, max: 70_000 }), anyValue),
    protocol: fc.oneof(fc.constantFrom('TCP', 'UDP', 'SCTP', 'tcp'), anyValue),
    hostPort: fc.integer(),
  },
  { requiredKeys: [] },
);
const container = fc.record(
  {
    name: fc.string(),
    image: fc.string(),
    restartPolicy: fc.oneof(fc.constantFrom('Always', 'OnFailure'), anyValue),
    ports: fc.oneof(fc.array(port, { maxLength: 3 }), anyValue),
  },
  { requiredKeys: [] },
);
const ip = fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('', '10.0.0.01', ' 10.0.0.1'), anyValue);
const pod = fc.record({
  metadata: fc.record(
    {
      name: fc.oneof(fc.constantFrom('a', 'b'), anyValue),
      namespace: fc.oneof(fc.constantFrom('x', ''), anyValue),
      labels: fc.oneof(
        fc.dictionary(fc.constantFrom('app', 'tier', 'role'), fc.oneof(fc.string(), anyValue)),
        anyValue,
      ),
      resourceVersion: fc.string(),
      annotations: fc.dictionary(fc.string(), fc.string()),
    },
    { requiredKeys: [] },
  ),
  spec: fc.record(
    {
      nodeName: fc.oneof(fc.constantFrom('n1', ''), anyValue),
      hostNetwork: anyValue,
      containers: fc.oneof(fc.array(container, { maxLength: 2 }), anyValue),
      initContainers: fc.oneof(fc.array(container, { maxLength: 2 }), anyValue),
      volumes: fc.array(fc.string()),
    },
    { requiredKeys: [] },
  ),
  status: fc.record(
    {
      phase: fc.oneof(fc.constantFrom('Running', 'Succeeded', 'Pending'), anyValue),
      podIP: ip,
      podIPs: fc.oneof(fc.array(fc.record({ ip }, { requiredKeys: [] }), { maxLength: 3 }), anyValue),
      conditions: fc.array(fc.string()),
    },
    { requiredKeys: [] },
  ),
});

const outcome = (raw: unknown) => {
  try {
    return { pod: normalizePod(raw) };
  } catch (error) {
    return { error: (error as Error).message };
  }
};

t.test('normalizePod of a listed pod equals normalizePod of its trimmed copy (property)', async (t) => {
  fc.assert(
    fc.property(pod, (raw) =>
      isDeepStrictEqual(outcome(raw), outcome(trimPod(raw as Record<string, unknown>))),
    ),
    { numRuns: 3000 },
  );
  t.pass('equal');
});

t.test('trimming keeps tollgate.dev annotations (audit mode, point 25) and drops the others', async (t) => {
  const { trimNamespace, trimPolicy } = await import('../../src/k8s/trim.ts');
  const { normalizePolicy } = await import('../../src/policy/normalize.ts');
  const annotations = {
    'tollgate.dev/audit': 'true',
    'kubectl.kubernetes.io/last-applied-configuration': '{"a huge":"json"}',
  };
  const policy = trimPolicy({
    metadata: { name: 'p', namespace: 'x', annotations },
    spec: { podSelector: {} },
  });
  t.same((policy.metadata as { annotations?: unknown }).annotations, { 'tollgate.dev/audit': 'true' });
  t.equal(normalizePolicy(policy).audit, true, 'the trimmed policy is still in audit mode');
  const ns = trimNamespace({ metadata: { name: 'x', annotations: { 'tollgate.dev/drop-reports': 'off' } } });
  t.same((ns.metadata as { annotations?: unknown }).annotations, { 'tollgate.dev/drop-reports': 'off' });
  const plain = trimPolicy({
    metadata: { name: 'p', namespace: 'x', annotations: { other: 'x' } },
    spec: {},
  });
  t.notOk('annotations' in (plain.metadata as object), 'no annotations key when none is kept');
});
