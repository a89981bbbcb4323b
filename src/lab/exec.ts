// Running commands for the lab: plain child processes, `nsenter` into a lab namespace, `ip`/`bridge` batches.
// Must not run anything that changes the root namespace's network; callers pass lab namespace names only.
import { spawn, spawnSync } from 'node:child_process';
import { LabError } from './errors.ts';
import type { ExecResult } from './types.ts';

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** Replaces the environment (probes drop proxy variables so curl never leaves the lab). */
  env?: NodeJS.ProcessEnv;
}

/** Runs argv to completion and resolves with its exit status and output (never rejects on a non-zero exit). */
export function run(argv: string[], options: RunOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new LabError('E_LAB_COMMAND', 'run: empty argv');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
      env: options.env ?? process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', (error) =>
      reject(
        new LabError('E_LAB_COMMAND', `cannot run ${argv.join(' ')}: ${error.message}`, { cause: error }),
      ),
    );
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Like run, but a non-zero exit becomes a LabError naming the command and quoting its stderr. */
export async function check(argv: string[], options: RunOptions = {}): Promise<ExecResult> {
  const result = await run(argv, options);
  if (result.code !== 0) {
    const input = options.input ? `\ninput:\n${options.input}` : '';
    throw new LabError(
      'E_LAB_COMMAND',
      `${argv.join(' ')} exited ${result.code ?? result.signal}: ${result.stderr.trim()}${input}`,
    );
  }
  return result;
}

/** argv prefix that runs a program inside a lab namespace (lighter than `ip netns exec`: no mount namespace). */
export function inNamespace(ns: string, argv: string[]): string[] {
  return ['nsenter', `--net=/run/netns/${ns}`, '--', ...argv];
}

/** One `ip -batch` per namespace: many netlink changes for the price of one process. */
export function ipBatch(ns: string | undefined, lines: string[]): Promise<ExecResult> {
  const nsArgs = ns === undefined ? [] : ['-n', ns];
  return check(['ip', ...nsArgs, '-batch', '-'], { input: `${lines.join('\n')}\n` });
}

export function bridgeBatch(ns: string, lines: string[]): Promise<ExecResult> {
  return check(['bridge', '-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
}

/** Writes sysctls inside a namespace (/proc/sys/net is the caller's namespace view) with one shell. */
export function sysctls(ns: string, values: Record<string, string | number>): Promise<ExecResult> {
  const script = Object.entries(values)
    .map(([key, value]) => `echo ${value} > /proc/sys/${key.replaceAll('.', '/')}`)
    .join(' && ');
  return check(inNamespace(ns, ['sh', '-ec', script]));
}

/** Synchronous variant for process-exit hooks, where no promise will ever settle. */
export function runSync(argv: string[], input?: string): ExecResult {
  const [file, ...args] = argv;
  const r = spawnSync(file ?? 'false', args, { input, encoding: 'utf8', timeout: 10_000 });
  return { code: r.status ?? -1, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** A counting semaphore: at most `limit` tasks at once (probe matrices, namespace set-up). */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
) {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
