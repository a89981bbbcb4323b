// `tollgate lint`: the tutorials' NetworkPolicy mistakes in manifests, scenario files or a live cluster.
// Reads objects the way `tollgate explain` does and prints findings; changes nothing anywhere.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { type Finding, LINT_CHECKS, type LintResult, lintCluster } from '../policy/lint.ts';
import { buildState, type ClusterObjects } from '../policy/normalize.ts';
import { UsageError } from '../util/errors.ts';
import { type Command, parseCommandArgs, rejectPositionals } from './command.ts';
import {
  assertOneSource,
  loadObjects,
  manifestFiles,
  OBJECT_SOURCE_FLAGS,
  readManifests,
} from './explain.ts';

/** The scenario model, loaded only when a scenario file is linted (the agent image leaves it out). */
const scenarioParts = async () => ({
  ...(await import('./scenario-objects.ts')),
  ...(await import('./scenarios.ts')),
});

/** Exit status when there are findings (0: clean, 2: usage, 1: other errors). */
export const EXIT_FINDINGS = 4;

interface Input {
  source: string;
  objects: ClusterObjects;
  /** Namespaces and pods are listed (a cluster or a scenario), not only what some files happen to hold. */
  complete: boolean;
}

/** A scenario file rather than Kubernetes manifests: a top-level mapping with steps or pods and no kind. */
function isScenarioFile(file: string): boolean {
  const [first] = parseAllDocuments(readFileSync(file, 'utf8'));
  const top = first?.errors.length === 0 ? (first.toJS() as Record<string, unknown> | null) : null;
  return (
    top !== null &&
    typeof top === 'object' &&
    !Array.isArray(top) &&
    top.kind === undefined &&
    (top.steps !== undefined || top.pods !== undefined)
  );
}

/** --manifests: scenario files among them are clusters of their own; the Kubernetes files form one. */
async function manifestInputs(path: string): Promise<Input[]> {
  const files = manifestFiles(path);
  const scenarios = files.filter(isScenarioFile);
  const plain = files.filter((f) => !scenarios.includes(f));
  const inputs: Input[] = [];
  if (plain.length > 0 || scenarios.length === 0)
    inputs.push({ source: path, objects: readManifests(path, plain), complete: false });
  if (scenarios.length === 0) return inputs;
  const { scenarioObjects } = await scenarioParts();
  for (const file of scenarios)
    inputs.push({ source: file, objects: scenarioObjects(file, undefined), complete: true });
  return inputs;
}

function lintInput(input: Input): LintResult {
  const declaresNamespaces = input.objects.namespaces.some(
    (n) => (n as { kind?: string }).kind === 'Namespace',
  );
  return lintCluster(buildState(input.objects), {
    pods: input.complete || input.objects.pods.length > 0,
    namespaces: input.complete || declaresNamespaces,
  });
}

function formatFinding(f: Finding): string {
  return [
    `  ${f.id}  ${f.object}  ${f.field}`,
    `    ${f.message}`,
    `    why: ${f.why}`,
    `    fix: ${f.fix}`,
  ].join('\n');
}

const checkTable = Object.entries(LINT_CHECKS).map(([id, what]) => `  ${id.padEnd(26)}${what}`);

export const lintCommand: Command = {
  name: 'lint',
  usage: [
    'Usage: tollgate lint [--manifests PATH | --kubeconfig FILE | --scenario FILE|DIR [--step K]]',
    '                     [--output text|json]',
    '',
    'Checks NetworkPolicies against the pods and namespaces they are written for and prints each finding',
    'with a stable id, the object and field, why it matters and a suggested fix.',
    '',
    'Source of the objects (default: the live cluster through the in-cluster configuration):',
    '  --kubeconfig FILE   the live cluster through this kubeconfig',
    '  --scenario FILE     a scenario file after all steps (or --step K: steps 0..K); a directory: each file',
    '  --manifests PATH    a YAML file or a directory of them, read as `tollgate explain` reads them; scenario',
    '                      files found there are linted each on its own. Checks that need pods (or declared',
    '                      Namespaces) are skipped, and say so, when the files have none.',
    '',
    'Options:',
    '  --output text|json  text (default) or one JSON object: {inputs: [{source, findings, skipped}], findings}',
    '  -h, --help          show this help',
    '',
    'Checks:',
    ...checkTable,
    '',
    `Exit status: 0 no findings, ${EXIT_FINDINGS} findings, 2 usage error, 1 other error.`,
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(this, argv, {
      ...OBJECT_SOURCE_FLAGS,
      output: { type: 'string' },
    });
    rejectPositionals(positionals, this.usage);
    assertOneSource(values);
    const output = values.output ?? 'text';
    if (output !== 'text' && output !== 'json')
      throw new UsageError(`--output must be text or json, not '${output}'`);
    if (values.step !== undefined && values.scenario === undefined)
      throw new UsageError('--step needs --scenario');

    let inputs: Input[];
    if (values.manifests !== undefined) inputs = await manifestInputs(values.manifests);
    else if (values.scenario !== undefined) {
      const { expandScenarioPaths, scenarioObjects } = await scenarioParts();
      const files = expandScenarioPaths([values.scenario]);
      if (values.step !== undefined && files.length !== 1)
        throw new UsageError('--step needs a single scenario file, not a directory');
      inputs = files.map((file) => ({
        source: file,
        objects: scenarioObjects(file, values.step),
        complete: true,
      }));
    } else {
      const objects = await loadObjects({ kubeconfig: values.kubeconfig });
      inputs = [{ source: values.kubeconfig ?? 'in-cluster', objects, complete: true }];
    }

    const results = inputs.map((input) => ({ source: input.source, ...lintInput(input) }));
    const total = results.reduce((n, r) => n + r.findings.length, 0);
    if (output === 'json') {
      io.out(JSON.stringify({ inputs: results, findings: total }, null, 2));
    } else {
      for (const r of results) {
        if (r.findings.length === 0) io.out(`ok   ${r.source}`);
        else io.out(`${r.source}: ${r.findings.length} finding${r.findings.length === 1 ? '' : 's'}`);
        for (const f of r.findings) io.out(formatFinding(f));
        const skipped = new Map<string, string[]>();
        for (const s of r.skipped) skipped.set(s.reason, [...(skipped.get(s.reason) ?? []), s.id]);
        for (const [reason, ids] of skipped) io.out(`  note: ${reason}: ${ids.join(', ')} not checked`);
      }
      const dirty = results.filter((r) => r.findings.length > 0).length;
      io.out(
        `${total} finding${total === 1 ? '' : 's'} in ${dirty} of ${results.length} input${results.length === 1 ? '' : 's'}`,
      );
    }
    return total === 0 ? 0 : EXIT_FINDINGS;
  },
};
