// Shared pieces of the API-path fault tests: the small cluster and policies of the direct tests, running
// a fault scenario of ours (issue 13) through the API lab, and the checks every convergence window gets. Real kernel, real kube-apiserver, real probes.
import { resolve } from 'node:path';
import type { Test } from 'tap';
import { type ApiDriverOptions, ApiScenarioDriver } from '../../src/lab/api-driver.ts';
import { loadFactor } from '../../src/lab/load.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario, type ScenarioReport, type WindowReport } from '../../src/scenario/probes.ts';
import { formatScenarioReport, formatWindow } from '../../src/scenario/report.ts';
import { World } from '../../src/scenario/world.ts';

/** The cluster of the direct fault tests: x/a and x/c on node 1, x/b on node 2. */
const fixture = resolve(import.meta.dirname, 'fixtures/faults.yaml');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type Policy = Record<string, unknown> & {
  kind: string;
  metadata: { name: string; namespace?: string };
};

/** A NetworkPolicy in namespace x selecting `pod=<target>` for ingress, allowing `from` pods on `ports`. */
export function policy(name: string, target: string, from: string[], ports: number[] = [80]): Policy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: 'x' },
    spec: {
      podSelector: { matchLabels: { pod: target } },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: from.map((p) => ({ podSelector: { matchLabels: { pod: p } } })),
          ports: ports.map((port) => ({ protocol: 'TCP', port })),
        },
      ],
    },
  };
}

export function setPolicy(world: World, p: Policy): void {
  world.policies.set(`x/${p.metadata.name}`, p);
}

export async function startDriver(
  t: Test,
  agentArgs: string[] = [],
): Promise<{ driver: ApiScenarioDriver; world: World }> {
  const world = new World(loadScenario(fixture));
  return { driver: await startWorld(t, world, { agentArgs }), world };
}

/** A lab + API server + agents for `world`, stopped at teardown; a failed start prints the diagnostics. */
export async function startWorld(
  t: Test,
  world: World,
  options: ApiDriverOptions,
): Promise<ApiScenarioDriver> {
  const driver = new ApiScenarioDriver(options);
  t.teardown(() => driver.stop());
  try {
    await driver.start(world);
  } catch (error) {
    t.comment(driver.diagnostics(60));
    throw error;
  }
  return driver;
}

/** One TCP probe, no retries: what the dataplane does right now. */
export async function reachable(
  driver: ApiScenarioDriver,
  from: string,
  to: string,
  port = 80,
): Promise<boolean> {
  return (await driver.lab!.probe(from, to, port, 'TCP', { timeoutMs: 1500 })).ok;
}

export const faultFixture = (name: string) => resolve(import.meta.dirname, 'fixtures/faults', name);

export function loadLine(): string {
  return `load factor ${loadFactor().toFixed(2)} (1-minute load per core)`;
}

/** Runs one fault scenario file; every expectation must hold and every `within` must be met. */
export async function runFaultScenario(
  t: Test,
  file: string,
  driver: ApiScenarioDriver = new ApiScenarioDriver(),
): Promise<ScenarioReport> {
  t.teardown(() => driver.stop());
  const report = await runScenario(loadScenario(faultFixture(file)), driver);
  t.equal(
    report.failed,
    0,
    report.failed === 0
      ? `${report.passed} expectations hold`
      : formatScenarioReport(report, { matrices: false }),
  );
  t.equal(driver.lab, undefined, 'the lab is torn down');
  return report;
}

/**
 * "Within 2 s", checked: the window's convergence is measured by the table checkers from the first
 * change or fault (the tamper) to the moment every node's table equals the model again; the step fails
 * beyond `within` x the load factor (printed with the raw figure). And the probes sampled every 200 ms
 * from that moment on: a deny probe sent after the tables converged never passes.
 */
export function checkTimedWindow(t: Test, where: string, w: WindowReport): void {
  t.comment(`${where}: ${formatWindow(w)}; ${loadLine()}`);
  t.ok(
    w.convergedMs !== undefined && w.convergedMs <= w.allowedMs!,
    `${where}: converged ${w.convergedMs ?? 'never'} ms after the tamper or change (within ${w.withinMs} ms x load = ${w.allowedMs} ms)`,
  );
  const after = w.samples.filter((x) => w.convergedMs !== undefined && x.atMs > w.convergedMs);
  t.ok(after.length > 0, `${where}: ${after.length} deny probes sampled after the repair`);
  t.same(
    after.filter((x) => x.allowed).map((x) => `${x.probe} at ${x.atMs} ms`),
    [],
    `${where}: every deny probe sent after the repair was denied`,
  );
}

/** The windows of the timed (`within`) steps, with where they are. */
export function timedWindows(report: ScenarioReport): [string, WindowReport][] {
  return report.steps
    .filter((s) => s.window?.withinMs !== undefined)
    .map((s) => [s.step.where, s.window!] as [string, WindowReport]);
}
