// `tollgate compile SCENARIO --node N [--step K]`: prints the nft text of node N's table for a scenario
// state, exactly what the netlink path programs. Reads the file; no kernel access.
import { REPORT_FLAGS, reportOptions, reportUsage } from '../agent/options.ts';
import { desiredState } from '../compile/desired.ts';
import { fullTransaction } from '../compile/diff.ts';
import { formatIssue } from '../policy/errors.ts';
import { Planner } from '../policy/plan.ts';
import { loadScenario } from '../scenario/parse.ts';
import { World } from '../scenario/world.ts';
import { UsageError } from '../util/errors.ts';
import { type Command, parseCommandArgs } from './command.ts';

export const compileCommand: Command = {
  name: 'compile',
  usage: [
    'Usage: tollgate compile SCENARIO --node N [--step K]',
    '',
    'Prints, as nft commands (`nft -f` accepts them), the `inet tollgate` table that node N (1-based) holds',
    'after steps 0..K of the scenario have been applied (default: all steps). Validation problems of the',
    'policies are printed to stderr; the table is still printed (bad rules allow nothing).',
    '',
    'Options:',
    '  --node N               node index, 1-based (required)',
    '  --step K               apply steps 0..K only (0-based; expect/matrix steps change nothing)',
    '  --established MODE     keep (default) or cut: the table of an agent run with --established=MODE',
    '                         (cut adds the rules that drop new pod TCP without a SYN)',
    ...reportUsage(22),
    '  -h, --help             show this help',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(this, argv, {
      node: { type: 'string' },
      step: { type: 'string' },
      established: { type: 'string' },
      ...REPORT_FLAGS,
    });
    const reports = reportOptions(values);
    const established = values.established ?? 'keep';
    if (established !== 'keep' && established !== 'cut')
      throw new UsageError(`--established must be keep or cut, not '${established}'`);
    if (positionals.length !== 1) throw new UsageError(`give exactly one scenario file\n\n${this.usage}`);
    const node = Number(values.node);
    if (!Number.isInteger(node) || node < 1)
      throw new UsageError(`--node must be a node index (1, 2, ...)\n\n${this.usage}`);
    const scenario = loadScenario(positionals[0]!);
    if (node > scenario.nodes)
      throw new UsageError(`--node ${node}: ${scenario.file} has ${scenario.nodes} node(s)`);
    let last = scenario.steps.length - 1;
    if (values.step !== undefined) {
      last = Number(values.step);
      if (!Number.isInteger(last) || last < 0 || last >= scenario.steps.length) {
        throw new UsageError(`--step must be 0..${scenario.steps.length - 1} for ${scenario.file}`);
      }
    }
    const world = new World(scenario);
    for (const step of scenario.steps.slice(0, last + 1)) world.applyStep(step);
    const plan = new Planner(world.state()).planNode(world.node(node).name);
    for (const issue of plan.issues) io.err(`warning: ${formatIssue(issue)}`);
    io.out(
      fullTransaction(
        desiredState(plan, undefined, {
          ...(reports ? { reports } : {}),
          ...(established === 'cut' ? { requireSyn: true } : {}),
        }),
        {
          replace: false,
        },
      ).toString(),
    );
    return 0;
  },
};
