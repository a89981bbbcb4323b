// `tollgate simulate SCENARIO...`: runs scenario files against the policy model (no privileges, no I/O but reading).
import type { Command } from './command.ts';

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'run scenario files against the policy model',
  usage: 'tollgate simulate SCENARIO...\n',
  async run(_argv, io) {
    io.err('not implemented yet');
    return 1;
  },
};
