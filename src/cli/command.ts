// The shape of a CLI subcommand and the shared `--help` handling; parsing only, no domain logic.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from '../util/errors.ts';

export interface Command {
  name: string;
  /** Usage text printed by `tollgate NAME --help`, first line `tollgate NAME ...`. */
  usage: string;
  /** Returns the process exit status; only src/cli decides to end the process. */
  run(argv: string[], io: CommandIO): Promise<number>;
}

export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
}

export const processIO: CommandIO = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

type Options = NonNullable<ParseArgsConfig['options']>;

/** For commands that take flags only: a UsageError naming the first positional argument. */
export function rejectPositionals(positionals: string[], usage: string): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'\n\n${usage}`);
}

/** parseArgs with `--help` added and unknown flags turned into a UsageError naming the flag. */
export function parseCommandArgs<O extends Options>(command: Command, argv: string[], options: O) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${command.usage}`, {
      cause: error,
    });
  }
}
