// Long-running programs inside a lab namespace (etcd, kube-apiserver, the API forwarder): started with
// their output in a log file, watched for their exit, stopped with a grace period. Must not interpret output.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { inNamespace } from './exec.ts';

export interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
  name: string;
}

export function startInNamespace(ns: string, argv: string[], logFile: string, name: string): Proc {
  const fd = openSync(logFile, 'a');
  const [file, ...args] = inNamespace(ns, argv);
  // nsenter without --fork execs the program: the pid is the server's own (SIGSTOP/SIGCONT reach it).
  const child = spawn(file!, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<void>((resolvePromise) => {
    child.once('exit', () => resolvePromise());
    child.once('error', () => resolvePromise());
  });
  return { child, exited, name };
}

export function running(p: Proc | undefined): boolean {
  return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
}

/** SIGTERM, SIGKILL after `graceMs`; resolves at the exit (`exited`). For every child the lab starts. */
export async function terminate(child: ChildProcess, exited: Promise<void>, graceMs: number): Promise<void> {
  try {
    child.kill('SIGCONT'); // a frozen process cannot act on SIGTERM
    child.kill('SIGTERM');
  } catch {}
  const timer = setTimeout(() => {
    try {
      child.kill('SIGKILL');
    } catch {}
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

export async function stopProcess(p: Proc | undefined, graceMs = 10_000): Promise<void> {
  if (p && running(p)) await terminate(p.child, p.exited, graceMs);
}
