// A CLI command run in this process as src/cli/main.ts runs it (exit status, stdout, stderr), so a test
// need not start a Node process per case; one real-process case per command still proves the wiring.
import type { Command } from '../../src/cli/command.ts';
import { TollgateError } from '../../src/util/errors.ts';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

const line = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);

/** `tollgate NAME ARGS...` without the process: main's `--help` and error-to-exit-status handling included. */
export async function runInProcess(command: Command, args: string[]): Promise<CommandResult> {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (x: string) => out.push(line(x)), err: (x: string) => err.push(line(x)) };
  const result = (code: number) => ({ code, stdout: out.join(''), stderr: err.join('') });
  if (args.includes('--help') || args.includes('-h')) {
    io.out(command.usage);
    return result(0);
  }
  try {
    return result(await command.run(args, io));
  } catch (error) {
    if (!(error instanceof TollgateError)) throw error;
    io.err(`tollgate ${command.name}: ${error.message} [${error.code}]`);
    return result(error.code === 'E_USAGE' ? 2 : 1);
  }
}
