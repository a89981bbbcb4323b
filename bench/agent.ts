// Benchmark of the agent at 10,000 pods / 1,000 policies: cold full sync, event-to-programmed latency
// (p50/p99) for pod add, label change and policy add, and the RSS of the agent's own process. The driver
// (bench/_agent-run.ts) runs as PID 1 of private network + PID namespaces (`unshare --net --pid --fork
// --kill-child`): its fake API and the agent it starts are gone when it ends, however it ends. Not a test.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const TIMEOUT_MS = 900_000;

export async function run() {
  const driver = fileURLToPath(new URL('./_agent-run.ts', import.meta.url));
  const child = spawn(
    'unshare',
    ['--net', '--pid', '--mount-proc', '--fork', '--kill-child', process.execPath, driver],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c, s) => resolve([c, s]));
  });
  clearTimeout(timer);
  process.off('exit', kill);
  if (code !== 0)
    throw new Error(
      `agent bench failed (${code ?? signal}${signal === 'SIGKILL' ? `, killed after ${TIMEOUT_MS} ms?` : ''}); its output:\n${stdout.slice(-2000)}`,
    );
  const last = stdout.trim().split('\n').at(-1) ?? '{}';
  return JSON.parse(last) as object;
}
