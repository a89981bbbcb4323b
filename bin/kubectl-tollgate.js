#!/usr/bin/env node
// kubectl plugin launcher (`kubectl tollgate ...`): runs tollgate's read-only commands, talking to the
// cluster of the current kubeconfig context unless told otherwise. Never runs the agent or changes a node.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { loadInstalledTypeScript } from './_installed.js';

const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`kubectl-tollgate needs Node.js 24 or newer (this is ${process.version}).\n`);
  process.exit(1);
}

const COMMANDS = ['drops', 'explain', 'lint', 'simulate'];
/** The commands that read a cluster, and the flags that name another source. */
const CLUSTER_COMMANDS = ['drops', 'explain', 'lint'];
const SOURCE_FLAGS = ['--kubeconfig', '--scenario', '--manifests'];

const usage = `kubectl tollgate: why a pod's connection is allowed or denied, and what is wrong with its policies

Usage: kubectl tollgate COMMAND [options]

Commands:
  drops     follow the connections the agents deny, and the policies that deny them (tollgate drops)
  explain   why a connection is allowed or denied (tollgate explain)
  lint      the tutorials' NetworkPolicy mistakes (tollgate lint; exit status 4 on findings)
  simulate  run scenario files against the policy model (tollgate simulate)

drops, explain and lint read the cluster of the current kubeconfig context: the first file of $KUBECONFIG, or
~/.kube/config (switch contexts with \`kubectl config use-context\`). --kubeconfig FILE, --scenario FILE or
--manifests PATH read somewhere else. Run \`kubectl tollgate COMMAND --help\` for a command's options.

Examples:
  kubectl tollgate explain --from shop/web --to shop/db --port 3306
  kubectl tollgate drops --namespace shop
  kubectl tollgate lint
  kubectl tollgate lint --manifests k8s/ --output json`;

/** The kubeconfig kubectl would use: the first existing file of $KUBECONFIG, else ~/.kube/config. */
function defaultKubeconfig() {
  const listed = (process.env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  if (listed.length > 0) return listed.find((f) => existsSync(f)) ?? listed[0];
  return join(homedir(), '.kube', 'config');
}

const [name, ...rest] = process.argv.slice(2);
if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
  process.stdout.write(`${usage}\n`);
  process.exit(name === undefined ? 2 : 0);
}
if (!COMMANDS.includes(name)) {
  process.stderr.write(
    `kubectl tollgate: '${name}' is not one of ${COMMANDS.join(', ')} (the node commands are \`tollgate ${name}\`)\n\n${usage}\n`,
  );
  process.exit(2);
}
const args = [name, ...rest];
const helping = rest.includes('--help') || rest.includes('-h');
const named = rest.some((a) => SOURCE_FLAGS.some((f) => a === f || a.startsWith(`${f}=`)));
if (CLUSTER_COMMANDS.includes(name) && !helping && !named) {
  const kubeconfig = defaultKubeconfig();
  if (!existsSync(kubeconfig)) {
    process.stderr.write(
      `kubectl tollgate ${name}: no kubeconfig at ${kubeconfig}: set KUBECONFIG or pass --kubeconfig FILE\n`,
    );
    process.exit(2);
  }
  args.push('--kubeconfig', kubeconfig);
}
process.argv = [process.argv[0], process.argv[1], ...args];
loadInstalledTypeScript();
await import('../src/cli/main.ts');
