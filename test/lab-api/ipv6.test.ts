// The project's IPv6 scenario fixtures through the API path: pods written to a real kube-apiserver carry
// both addresses in status.podIPs (semantics point 18), so each node's `tollgate agent` fills its IPv6
// sets from the API alone; real probes over IPv6 (TCP, UDP, pods, outside hosts, nodes) then hold as in the
// model, and a wrong `family: both` expectation fails on the IPv6 probe only (point 6).
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { ApiScenarioDriver } from '../../src/lab/api-driver.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { type Probe, type ProbeOutcome, runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import type { World } from '../../src/scenario/world.ts';
import { requireBinaries, skipUnlessRoot } from './_helpers.ts';

t.setTimeout(15 * 60_000);
const fixtures = resolve(import.meta.dirname, '../scenario/fixtures/ipv6');

/** Before the first probe: what the API server holds as each lab pod's podIPs, against the world's. */
class PodIPsDriver extends ApiScenarioDriver {
  readonly podIPs: { key: string; api: string[]; world: string[] }[] = [];
  override async probe(world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
    if (this.podIPs.length === 0) {
      for (const p of world.labPods()) {
        const pod = (await this.api!.adminClient.get(`/api/v1/namespaces/${p.namespace}/pods/${p.name}`)) as {
          status?: { podIPs?: { ip: string }[] };
        };
        this.podIPs.push({
          key: p.key,
          api: (pod.status?.podIPs ?? []).map((x) => x.ip),
          world: [world.podIp4(p), world.podIp6(p)],
        });
      }
    }
    return super.probe(world, probes);
  }
}

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) {
  const files = readdirSync(fixtures)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  for (const f of files) {
    t.test(`api: ipv6/${f}`, async (t) => {
      const driver = new PodIPsDriver();
      const report = await runScenario(loadScenario(join(fixtures, f)), driver);
      t.equal(report.failed, 0, formatScenarioReport(report, { matrices: true }));
      const v6 = report.steps.flatMap((s) => s.outcomes).filter((o) => o.probe.family === 6).length;
      t.ok(v6 >= 5, `${report.passed} probes, ${v6} of them over IPv6`);
      t.ok(driver.podIPs.length > 0, 'the API server was read');
      for (const p of driver.podIPs) t.same(p.api, p.world, `${p.key}: status.podIPs has both families`);
      t.same(
        driver.convergence.filter((c) => !c.converged).map((c) => c.what),
        [],
        'every node table converged to the model',
      );
      t.equal(driver.lab, undefined, 'the lab is torn down');
    });
  }
  t.test('api: faults over both families, IPv6 deny probes sampled while converging', async (t) => {
    const report = await runScenario(
      loadScenario(join(fixtures, 'faults/tamper-both.yaml')),
      new ApiScenarioDriver(),
    );
    t.equal(report.failed, 0, formatScenarioReport(report, { matrices: false }));
    const windows = report.steps.flatMap((s) => (s.window ? [s.window] : []));
    t.equal(windows.length, 3, 'three timed windows');
    t.ok(
      windows.every((w) => w.samples.some((x) => x.probe.endsWith(' over IPv6'))),
      'every window sampled IPv6 deny probes',
    );
  });

  t.test('api: a wrong both expectation fails on its IPv6 probe only', async (t) => {
    const report = await runScenario(
      loadScenario(join(fixtures, 'wrong/both-ipv4-only-block.yaml')),
      new ApiScenarioDriver(),
    );
    t.equal(report.passed, 1, 'IPv4 holds');
    t.equal(report.failed, 1, 'IPv6 fails');
    t.match(
      formatScenarioReport(report, { matrices: false }),
      /host\/backup -> x\/b:80\/TCP over IPv6: expected allow, got deny/,
    );
  });
}
