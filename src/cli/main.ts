// Entry point of the `tollgate` CLI: dispatches to subcommands and is the only place that sets the exit code.
import { TollgateError } from '../util/errors.ts';
import { agentCommand } from './agent.ts';
import { cleanupCommand } from './cleanup.ts';
import { type Command, processIO } from './command.ts';
import { compileCommand } from './compile.ts';
import { explainCommand } from './explain.ts';
import { labCommand } from './lab.ts';
import { lintCommand } from './lint.ts';
import { simulateCommand } from './simulate.ts';

const commands: Command[] = [
  simulateCommand,
  compileCommand,
  labCommand,
  agentCommand,
  cleanupCommand,
  explainCommand,
  lintCommand,
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

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    processIO.out(mainUsage());
    return name === undefined ? 2 : 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    processIO.err(`tollgate: unknown command '${name}'\n\n${mainUsage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    processIO.out(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, processIO);
  } catch (error) {
    if (error instanceof TollgateError) {
      processIO.err(`tollgate ${name}: ${error.message} [${error.code}]`);
      return error.code === 'E_USAGE' ? 2 : 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
