// Text reports of scenario runs: one line per scenario, failing expectations with their explanation,
// matrices for failing (or, when asked, all) matrix steps, and the closing `N passed, N failed` line.
import { formatMatrix, type ScenarioReport, type WindowReport } from './probes.ts';

export function formatScenarioReport(report: ScenarioReport, options: { matrices: boolean }): string {
  const total = report.passed + report.failed;
  const lines = [
    `${report.failed === 0 ? 'ok  ' : 'FAIL'} ${report.scenario.name}: ${report.passed}/${total} expectations`,
  ];
  for (const s of report.steps) {
    const wrong = s.outcomes.filter((o) => o.allowed !== o.probe.expectAllow);
    if (s.matrixPods && (options.matrices || wrong.length > 0)) {
      const step = s.step as { port?: unknown; protocol?: unknown; family?: string };
      const family = step.family === 'ipv6' ? ', IPv6' : step.family === 'both' ? ', IPv4 and IPv6' : '';
      lines.push(`  ${s.step.where} (port ${String(step.port)}/${String(step.protocol)}${family}):`);
      for (const l of formatMatrix(s.matrixPods, s.outcomes).split('\n')) lines.push(`    ${l}`);
    }
    if (s.window) lines.push(`  ${s.step.where}: ${formatWindow(s.window)}`);
    for (const d of s.drops ?? []) {
      if (d.matched) continue;
      lines.push(`  ${d.drop.where}: '${d.drop.text}': not reported`);
      for (const l of (d.explanation ?? '').split('\n').filter(Boolean)) lines.push(`    ${l}`);
    }
    for (const o of wrong) {
      const [yes, no] = o.probe.words ?? ['allow', 'deny'];
      lines.push(
        `  ${o.probe.where}: ${o.probe.text}: expected ${o.probe.expectAllow ? yes : no}, got ${o.allowed ? yes : no}`,
      );
      for (const l of (o.explanation ?? '').split('\n').filter(Boolean)) lines.push(`    ${l}`);
    }
  }
  return lines.join('\n');
}

/** One line: how fast the window converged against what was allowed, and the sampled deny probes. */
export function formatWindow(w: WindowReport): string {
  const timing =
    w.withinMs === undefined
      ? 'after a fault'
      : `${w.convergedMs === undefined ? 'did not converge' : `converged ${w.convergedMs} ms after the first change`} (${w.late ? 'LATE' : 'in time'}: within ${w.withinMs} ms, allowed ${w.allowedMs} ms under load)`;
  const sampled =
    w.samples.length === 0
      ? 'no deny probe sampled'
      : `${w.wrong} of ${w.samples.length} sampled deny probes passed${w.wrong > 0 ? ` (${passedRuns(w)})` : ''}`;
  return `${timing}; ${sampled}`;
}

/** Per probe, the stretches of consecutive samples that passed: `x/b -> x/a:80/TCP 0-1804, 2400 ms`. */
function passedRuns(w: WindowReport): string {
  const byProbe = new Map<string, WindowReport['samples']>();
  for (const x of w.samples) byProbe.set(x.probe, [...(byProbe.get(x.probe) ?? []), x]);
  const out: string[] = [];
  for (const [probe, samples] of byProbe) {
    const runs: [number, number][] = [];
    let open = false;
    for (const x of samples) {
      if (x.allowed && open) runs.at(-1)![1] = x.atMs;
      else if (x.allowed) runs.push([x.atMs, x.atMs]);
      open = x.allowed;
    }
    if (runs.length === 0) continue;
    const text = runs.slice(0, 5).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
    if (runs.length > 5) text.push(`+${runs.length - 5} more`);
    out.push(`${probe} at ${text.join(', ')} ms`);
  }
  return out.join('; ');
}

export function formatTotals(passed: number, failed: number): string {
  return `${passed} passed, ${failed} failed`;
}
