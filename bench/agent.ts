// Benchmark of the agent at 10,000 pods / 1,000 policies: cold full sync, event-to-programmed latency
// (p50/p99) for pod add, label change and policy add, and RSS. The agent runs in a child process inside a
// private network namespace (`unshare --net`), programming a real kernel table; the API is an in-memory
// fake, so API-server latency is not included. Not a test.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export async function run() {
  const child = fileURLToPath(new URL('./_agent-run.ts', import.meta.url));
  const r = spawnSync('unshare', ['--net', process.execPath, child], {
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`agent bench failed (${r.status}): ${r.stderr.slice(-2000)}`);
  process.stderr.write(r.stderr);
  const last = r.stdout.trim().split('\n').at(-1) ?? '{}';
  return JSON.parse(last) as object;
}
