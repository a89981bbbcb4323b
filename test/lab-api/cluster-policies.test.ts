// The agent's store and ClusterNetworkPolicies against a real kube-apiserver, as the shipped service
// account: without the CRD the store is synced and live (the kind is "not served"); the CRD installed
// later (the lab's own, src/lab/cnp-crd.ts) is noticed within the re-check period and its policies
// listed and watched; the CRD deleted empties the kind again. Also: RBAC lets the agent read them.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { nodeSpec } from '../../src/lab/addresses.ts';
import { ApiServer } from '../../src/lab/apiserver.ts';
import { CNP_COLLECTION, installClusterPolicyCrd, removeClusterPolicyCrd } from '../../src/lab/cnp-crd.ts';
import { inNamespace } from '../../src/lab/exec.ts';
import { Lab } from '../../src/lab/lab.ts';
import { requireBinaries, skipUnlessRoot } from './_helpers.ts';

const CHILD = join(import.meta.dirname, '_cnp-store-child.ts');
const WAIT = 60_000; // generous: the machine is shared

interface Seen {
  synced: boolean;
  live: boolean;
  missing: string | null;
  names: string[];
}

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) {
  const lab = await Lab.up({ nodes: [nodeSpec(1)], pods: [], hosts: [] });
  t.teardown(() => lab.down());
  const api = await ApiServer.start(lab);
  t.teardown(() => api.stop());

  t.test('not installed, installed later, removed: the store follows', async (t) => {
    const [file, ...args] = inNamespace(lab.networkNs, [process.execPath, CHILD]);
    const child = spawn(file!, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...api.inClusterEnv },
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 4 * WAIT);
    t.teardown(() => {
      clearTimeout(killer);
      child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c;
    });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async (what: string, ok: (s: Seen) => boolean): Promise<Seen> => {
      const deadline = Date.now() + WAIT;
      while (Date.now() < deadline) {
        const r = await lines.next();
        if (r.done) break;
        const s = JSON.parse(r.value) as Seen;
        if (ok(s)) return s;
      }
      throw new Error(`never saw ${what}; stderr: ${stderr}`);
    };

    await next('synced and live without the CRD', (s) => s.synced && s.live && s.missing === 'not served');
    t.pass('synced and live without the CRD: not served');

    await installClusterPolicyCrd(api.adminClient);
    await api.adminClient.call('POST', CNP_COLLECTION, {
      apiVersion: 'policy.networking.k8s.io/v1alpha2',
      kind: 'ClusterNetworkPolicy',
      metadata: { name: 'guard' },
      spec: { tier: 'Admin', priority: 10, subject: { namespaces: {} }, ingress: [] },
    });
    const seen = await next('the policy once the CRD is installed', (s) => s.names.includes('guard'));
    t.same(seen, { synced: true, live: true, missing: null, names: ['guard'] }, 'listed (RBAC allows it)');

    await api.adminClient.call('POST', CNP_COLLECTION, {
      apiVersion: 'policy.networking.k8s.io/v1alpha2',
      kind: 'ClusterNetworkPolicy',
      metadata: { name: 'second' },
      spec: { tier: 'Baseline', priority: 5, subject: { namespaces: {} } },
    });
    await next('a watched creation', (s) => s.names.includes('second') && s.live);
    t.pass('a creation arrives through the watch');

    await removeClusterPolicyCrd(api.adminClient);
    const gone = await next('the CRD removed', (s) => s.missing === 'not served');
    t.same(gone, { synced: true, live: true, missing: 'not served', names: [] }, 'emptied, still live');
    child.stdin!.end();
    t.equal(stderr, '', 'nothing on stderr');
  });
}
