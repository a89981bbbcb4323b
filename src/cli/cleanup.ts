// `tollgate cleanup`: removes this node's `inet tollgate` table (uninstall). Touches nothing else.
import { NetlinkProgrammer } from '../agent/programmer.ts';
import { TABLE } from '../compile/desired.ts';
import { Table, Transaction } from '../nft/index.ts';
import { type Command, parseCommandArgs, rejectPositionals } from './command.ts';

export const cleanupCommand: Command = {
  name: 'cleanup',
  usage: [
    'Usage: tollgate cleanup',
    '',
    'Deletes the `inet tollgate` nftables table of the network namespace it runs in, in one batch. Pod',
    'traffic is then no longer filtered. Nothing else on the node is touched. Needs CAP_NET_ADMIN.',
    'Remove the agent DaemonSet first: a running agent sees the deletion (nf_tables notifications) and',
    'programs its table again within a moment.',
  ].join('\n'),
  async run(argv, io) {
    const { positionals } = parseCommandArgs(this, argv, {});
    rejectPositionals(positionals, this.usage);
    const programmer = new NetlinkProgrammer();
    try {
      if ((await programmer.listTable()) === undefined) {
        io.out(`no table inet ${TABLE}: nothing to do`);
        return 0;
      }
      await programmer.commit(new Transaction().delete(new Table({ family: 'inet', name: TABLE })));
      io.out(`removed table inet ${TABLE}`);
      return 0;
    } finally {
      programmer.close();
    }
  },
};
