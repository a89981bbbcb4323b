// Text reports of scenario runs: one line per scenario, failing expectations with their explanation,
// matrices for failing (or, when asked, all) matrix steps, and the closing `N passed, N failed` line.
import { formatMatrix, type ScenarioReport } from './probes.ts';

export function formatScenarioReport(report: ScenarioReport, options: { matrices: boolean }): string {
  const total = report.passed + report.failed;
  const lines = [
    `${report.failed === 0 ? 'ok  ' : 'FAIL'} ${report.scenario.name}: ${report.passed}/${total} expectations`,
  ];
  for (const s of report.steps) {
    const wrong = s.outcomes.filter((o) => o.allowed !== o.probe.expectAllow);
    if (s.matrixPods && (options.matrices || wrong.length > 0)) {
      const step = s.step as { port?: unknown; protocol?: unknown };
      lines.push(`  ${s.step.where} (port ${String(step.port)}/${String(step.protocol)}):`);
      for (const l of formatMatrix(s.matrixPods, s.outcomes).split('\n')) lines.push(`    ${l}`);
    }
    for (const o of wrong) {
      lines.push(
        `  ${o.probe.where}: ${o.probe.text}: expected ${o.probe.expectAllow ? 'allow' : 'deny'}, got ${o.allowed ? 'allow' : 'deny'}`,
      );
      for (const l of (o.explanation ?? '').split('\n').filter(Boolean)) lines.push(`    ${l}`);
    }
  }
  return lines.join('\n');
}

export function formatTotals(passed: number, failed: number): string {
  return `${passed} passed, ${failed} failed`;
}
