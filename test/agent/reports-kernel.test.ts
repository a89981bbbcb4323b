// Root test of drop reports end to end on the real kernel, in a throwaway lab (network namespaces only):
// the node's table with report rules, the agent's listener on the real nflog group, real denied
// connections. A denied connection (ingress and egress) is logged with the right policies within 1 s; an
// allowed one never reaches userspace; a burst of 1,500 denied attempts gives at most the node's limit
// (semantics 16; ../shared/scenarios/README.md "Denied connections in the log").
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { scaledMs } from '../../src/lab/load.ts';
import { reportLine } from '../../src/nflog/report.ts';
import { shopLab, startReportsChild } from './_reports-lab.ts';

const here = dirname(fileURLToPath(import.meta.url));
const RATE = 20;
const BURST = 5;
const ATTEMPTS = 1500;

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};

t.test('denied connections are reported with their policies, within the node limit', async (t) => {
  const { world, lab, objects } = await shopLab(t);
  objects.policies.push({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'deny-egress', namespace: 'staging' },
    spec: { podSelector: {}, policyTypes: ['Egress'] },
  });
  // Point 25: an audit-mode policy isolates nothing; what it would deny is reported as would-deny.
  const auditPolicy = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'audit-in', namespace: 'staging', annotations: { 'tollgate.dev/audit': 'true' } },
    spec: { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ ports: [{ port: 9999 }] }] },
  };
  objects.policies.push(auditPolicy as (typeof objects.policies)[number]);
  const node = world.node(1).name;
  const { child, reports, others, until } = await startReportsChild(t, lab, {
    node,
    objects,
    reports: { group: 100, rate: RATE, per: 'second', burst: BURST },
  });

  // Latency: from the probe's start to the line on the agent's stdout (what `kubectl logs` reads).
  const latencies: number[] = [];
  const cases = [
    ['shop/web', 'shop/db', 3306, 'shop/web -> shop/db:3306/TCP ingress shop/db-from-api'],
    ['staging/api', 'shop/web', 80, 'staging/api -> shop/web:80/TCP egress staging/deny-egress'],
  ] as const;
  for (let round = 0; round < 5; round++) {
    for (const [from, to, port, line] of cases) {
      const before = reports.length;
      const started = Date.now();
      const probe = await lab.probe(from, to, port, 'TCP', { timeoutMs: 800 });
      t.equal(probe.ok, false, `${from} -> ${to}:${port} is denied`);
      await until(`the report of ${line}`, () => reports.length > before);
      const got = reports.slice(before);
      t.same(
        got.map((r) => reportLine(r.report)),
        [line],
        'one report (the SYN, not its retransmissions), with the isolating policy',
      );
      t.equal(got[0]!.report.node, node);
      latencies.push(got[0]!.seenMs - started);
    }
  }
  t.ok(
    Math.max(...latencies) <= scaledMs(1000),
    `every report within 1 s (max ${Math.max(...latencies)} ms)`,
  );
  // Audit mode: the connection passes, and is reported once as would-deny.
  const auditBefore = reports.length;
  const audit = await lab.probe('shop/web', 'staging/api', 8080, 'TCP', { timeoutMs: 2000 });
  t.equal(audit.ok, true, 'the audit policy denies nothing');
  await until('the would-deny report', () => reports.length > auditBefore);
  await new Promise((r) => setTimeout(r, 200));
  t.same(
    reports.slice(auditBefore).map((r) => reportLine(r.report)),
    ['shop/web -> staging/api:8080/TCP ingress staging/audit-in would-deny'],
    'one would-deny report naming the audit policy',
  );
  // Off the allow path: an allowed connection sends nothing to userspace.
  const allowed = await lab.probe('shop/api', 'shop/db', 3306, 'TCP', { timeoutMs: 2000 });
  t.equal(allowed.ok, true, 'shop/api -> shop/db:3306 is allowed');

  // A burst, after the bucket has refilled: at most BURST + RATE x its duration reports.
  await new Promise((r) => setTimeout(r, 1500));
  const before = reports.length;
  const burst = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      lab.podNamespace('shop/web'),
      process.execPath,
      join(here, '_burst.ts'),
      JSON.stringify({
        host: lab.pod('shop/db').ip4,
        port: 3306,
        attempts: ATTEMPTS,
        concurrency: 100,
        waitMs: 300,
      }),
    ],
    { encoding: 'utf8', timeout: scaledMs(120_000) },
  );
  const b = JSON.parse(burst.stdout.trim().split('\n').pop() ?? '{}');
  t.same(b.counts, { unanswered: ATTEMPTS }, 'every attempt was dropped, those over the limit too');
  // Wait on the reports, not a fixed time: at least the burst, then until no more come (a late one
  // counts against the bound instead of being missed).
  await until('the burst reports', () => reports.length - before >= BURST);
  for (let seen = -1; seen !== reports.length; ) {
    seen = reports.length;
    await new Promise((r) => setTimeout(r, scaledMs(500)));
  }
  const inBurst = reports.slice(before);
  const seconds = (b.lastSentMs - b.startMs) / 1000;
  const bound = BURST + Math.ceil(RATE * seconds) + 1;
  t.ok(inBurst.length >= BURST, `at least the burst is reported (${inBurst.length})`);
  t.ok(
    inBurst.length <= bound,
    `${inBurst.length} reports for ${ATTEMPTS} attempts in ${seconds} s (≤ ${bound})`,
  );
  t.ok(bound < ATTEMPTS, 'the limit did limit');
  t.notOk(
    reports.some((r) => r.report.src.pod === 'shop/api'),
    'the allowed connection was never reported',
  );
  child.stdin.write('stats\n');
  await until('stats', () => others.some((o) => o.stats !== undefined));
  const stats = others.find((o) => o.stats !== undefined)!.stats as Record<string, number>;
  t.equal(stats.denied, reports.length, 'one denied_connections count per report');
  t.ok(
    stats.suppressed! >= ATTEMPTS - inBurst.length,
    `suppressed ${stats.suppressed}: every attempt over the limit counted`,
  );
  t.equal(stats.lost, 0, 'no report lost on the way');
  t.comment(
    `latency p50 ${percentile(latencies, 0.5)} ms, max ${Math.max(...latencies)} ms (${latencies.length} reports); ` +
      `burst ${inBurst.length} reports / ${ATTEMPTS} attempts in ${seconds.toFixed(2)} s (bound ${bound}), suppressed ${stats.suppressed}`,
  );
});
