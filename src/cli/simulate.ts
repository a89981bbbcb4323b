// `tollgate simulate SCENARIO...`: runs scenario files against the policy model (no privileges needed).
import { modelDriver } from '../scenario/model.ts';
import { type Command, parseCommandArgs } from './command.ts';
import { requireScenarios, runScenarioFiles } from './scenarios.ts';

export const simulateCommand: Command = {
  name: 'simulate',
  usage: [
    'Usage: tollgate simulate [--matrices] SCENARIO|DIR...',
    '',
    'Runs scenario files (YAML; a directory means every .yaml file below it) in model mode: the reference',
    'evaluator decides every expectation. Prints each failing expectation with the explanation of the',
    "verdict, and ends with 'N passed, N failed' (counting expectations). Exit status 1 if any failed.",
    '',
    'Options:',
    '  --matrices   print every matrix step, not only failing ones',
    '  -h, --help   show this help',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(this, argv, { matrices: { type: 'boolean' } });
    requireScenarios(positionals, this.usage);
    return runScenarioFiles(positionals, () => modelDriver, io, { matrices: values.matrices === true });
  },
};
