// Entry point of the `tollgate` CLI: dispatches to subcommands and is the only place that sets the exit code.
// Loads only the module of the command that runs: a usage error or `--help` costs no more than that
// command's own imports, and an installation without the developer commands' modules (the agent image has
// no src/lab or src/scenario) still runs every other command.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TollgateError } from '../util/errors.ts';
import { type Command, processIO } from './command.ts';

interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

const commands: CommandEntry[] = [
  {
    name: 'simulate',
    summary: 'run scenario files against the policy model',
    load: async () => (await import('./simulate.ts')).simulateCommand,
  },
  {
    name: 'compile',
    summary: "print the nftables table of one node for a scenario's state",
    load: async () => (await import('./compile.ts')).compileCommand,
  },
  {
    name: 'lab',
    summary: 'network-namespace cluster for trying tollgate with real traffic',
    load: async () => (await import('./lab.ts')).labCommand,
  },
  {
    name: 'agent',
    summary: "run the node agent: watch the cluster, keep this node's nftables table in sync",
    load: async () => (await import('./agent.ts')).agentCommand,
  },
  {
    name: 'cleanup',
    summary: "remove this node's tollgate table (after uninstalling the agent)",
    load: async () => (await import('./cleanup.ts')).cleanupCommand,
  },
  {
    name: 'explain',
    summary: 'why a connection is allowed or denied: the policies that isolate, the rule that allows',
    load: async () => (await import('./explain.ts')).explainCommand,
  },
  {
    name: 'drops',
    summary: 'follow the connections the agents deny (and would deny), with the policies that deny them',
    load: async () => (await import('./drops.ts')).dropsCommand,
  },
  {
    name: 'lint',
    summary: "find the tutorials' NetworkPolicy mistakes (missing DNS, extra dash, typos, ...)",
    load: async () => (await import('./lint.ts')).lintCommand,
  },
];

function mainUsage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'tollgate: a Kubernetes NetworkPolicy enforcer on nftables',
    '',
    'Usage: tollgate COMMAND [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `tollgate COMMAND --help` for the options of a command.',
  ].join('\n');
}

/**
 * A source directory of this package that the command's module needs and this installation lacks as a
 * whole (a single missing file is a bug, not an installation without that part: rethrown as it is).
 */
function missingPart(error: unknown): string | undefined {
  const e = error as { code?: unknown; message?: unknown };
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || typeof e.message !== 'string') return undefined;
  // "Cannot find module '/app/src/lab/index.ts' imported from /app/src/cli/lab.ts"
  const m = /Cannot find module '([^']*)\/(src\/[a-z]+)\/[^']*' imported from [^ ]*\/src\/cli\//.exec(
    e.message,
  );
  if (!m || existsSync(join(m[1]!, m[2]!))) return undefined;
  return m[2];
}

/** The error for a command (or one of its options) whose module this installation leaves out. */
function notInstalled(entry: CommandEntry, error: unknown): TollgateError<'E_NOT_INSTALLED'> | undefined {
  const part = missingPart(error);
  if (part === undefined) return undefined;
  return new TollgateError(
    'E_NOT_INSTALLED',
    `this installation leaves out ${part}/, which \`tollgate ${entry.name}\` needs for this (the agent image ` +
      'has the node commands and reads clusters and manifests; scenarios and the lab need a git checkout of tollgate)',
    { cause: error },
  );
}

async function load(entry: CommandEntry): Promise<Command> {
  try {
    return await entry.load();
  } catch (error) {
    throw notInstalled(entry, error) ?? error;
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    processIO.out(mainUsage());
    return name === undefined ? 2 : 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    processIO.err(`tollgate: unknown command '${name}'\n\n${mainUsage()}`);
    return 2;
  }
  try {
    const command = await load(entry);
    if (rest.includes('--help') || rest.includes('-h')) {
      processIO.out(command.usage);
      return 0;
    }
    try {
      return await command.run(rest, processIO);
    } catch (error) {
      // An option that loads a part lazily (explain/lint --scenario) fails like a command that needs it.
      throw notInstalled(entry, error) ?? error;
    }
  } catch (error) {
    if (error instanceof TollgateError) {
      processIO.err(`tollgate ${name}: ${error.message} [${error.code}]`);
      return error.code === 'E_USAGE' ? 2 : 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
