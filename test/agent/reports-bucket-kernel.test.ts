// Root test of the node's one drop report bucket on the real kernel, in a throwaway lab (network
// namespaces only): floods through a deny chain, an ingress audit chain and an egress audit chain at the
// same time give at most one bucket's reports together (burst + rate x duration), every attempt over it
// is counted as suppressed, and the would-denies over the limit still pass (semantics 16, 25; issue 18:
// the audit chains name the deny gate's limit object instead of a bucket each).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Lab } from '../../src/lab/index.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { shopLab, startReportsChild } from './_reports-lab.ts';

const here = dirname(fileURLToPath(import.meta.url));
const RATE = 10;
const BURST = 5;
const ATTEMPTS = 600;

const audit = (name: string, namespace: string, spec: Record<string, unknown>) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name, namespace, annotations: { 'tollgate.dev/audit': 'true' } },
  spec,
});

/** Runs _burst.ts in a pod's namespace (each attempt abandoned after waitMs); resolves with its JSON line. */
async function burst(lab: Lab, from: string, to: string, port: number, waitMs: number) {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      lab.podNamespace(from),
      process.execPath,
      join(here, '_burst.ts'),
      JSON.stringify({ host: lab.pod(to).ip4, port, attempts: ATTEMPTS, concurrency: 50, waitMs }),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], timeout: scaledMs(120_000) },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await once(child, 'exit');
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as {
    startMs: number;
    endMs: number;
    counts: Record<string, number>;
  };
}

t.test('deny and would-deny floods share one bucket per node', async (t) => {
  const { world, lab, objects } = await shopLab(t);
  // Node 1's staging/api: audited in both directions (an ingress and an egress audit chain).
  const policies = objects.policies as unknown[];
  policies.push(audit('audit-in', 'staging', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] }));
  policies.push(audit('audit-out', 'staging', { podSelector: {}, policyTypes: ['Egress'], egress: [] }));
  const { child, reports, others, until } = await startReportsChild(t, lab, {
    node: world.node(1).name,
    objects,
    reports: { group: 100, rate: RATE, per: 'second', burst: BURST },
  });
  child.stdin.write('stats\n');
  await until('stats', () => others.some((o) => o.stats !== undefined));
  const before = (others.find((o) => o.stats !== undefined)!.stats as Record<string, number>).suppressed!;

  const [deny, auditIn, auditOut] = await Promise.all([
    // Denied attempts are abandoned before the first SYN retransmission (which would be new again);
    // allowed ones get a generous wait, so that a slow accept under load is not taken for a drop.
    burst(lab, 'shop/web', 'shop/db', 3306, 300),
    burst(lab, 'shop/web', 'staging/api', 8080, scaledMs(5000)),
    burst(lab, 'staging/api', 'shop/web', 80, scaledMs(5000)),
  ]);
  t.same(deny.counts, { unanswered: ATTEMPTS }, 'the denied attempts were all dropped');
  t.same(auditIn.counts, { connected: ATTEMPTS }, 'ingress would-denies all pass, over the limit too');
  t.same(auditOut.counts, { connected: ATTEMPTS }, 'egress would-denies all pass, over the limit too');
  // Wait on the reports, not a fixed time: at least the burst, then until no more come.
  await until('the burst reports', () => reports.length >= BURST);
  for (let seen = -1; seen !== reports.length; ) {
    seen = reports.length;
    await new Promise((r) => setTimeout(r, scaledMs(500)));
  }
  const runs = [deny, auditIn, auditOut];
  const startMs = Math.min(...runs.map((r) => r.startMs));
  // Until the last attempt ended: a SYN retransmitted under load is new to conntrack, and draws too.
  const seconds = (Math.max(...runs.map((r) => r.endMs)) - startMs) / 1000;
  const bound = BURST + Math.ceil(RATE * seconds) + 1;
  const kinds = (kind: string, direction: string) =>
    reports.filter(({ report: r }) => r.kind === kind && r.direction === direction).length;
  const byKind = `deny ${kinds('deny', 'ingress')}, would-deny in ${kinds('would-deny', 'ingress')}, out ${kinds('would-deny', 'egress')}`;
  t.ok(reports.length >= BURST, `at least the burst is reported (${reports.length})`);
  t.ok(
    reports.length <= bound,
    `${reports.length} reports (${byKind}) for ${3 * ATTEMPTS} attempts in ${seconds.toFixed(2)} s: one bucket (≤ ${bound})`,
  );
  // Each flood alone exceeds the bucket: a bucket per chain (the audit chains' own limits of before)
  // would have reported about three buckets' worth and failed the bound above.
  t.ok(ATTEMPTS > bound, 'every flood alone is over the limit');
  child.stdin.write('stats\n');
  const count = others.length;
  await until('stats', () => others.length > count && others.at(-1)!.stats !== undefined);
  const stats = others.at(-1)!.stats as Record<string, number>;
  const suppressed = stats.suppressed! - before;
  t.equal(stats.denied, reports.length, 'one denied_connections count per report');
  t.ok(
    suppressed >= 3 * ATTEMPTS - reports.length,
    `suppressed ${suppressed}: every attempt over the limit counted, deny and would-deny alike`,
  );
  t.equal(stats.lost, 0, 'no report lost on the way');
  t.comment(
    `${reports.length} reports (${byKind}), bound ${bound}, suppressed ${suppressed}, ${seconds.toFixed(2)} s`,
  );
});
