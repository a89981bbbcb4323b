// Shared set-up for the lab's kernel tests: a small spec and a lab torn down in t.teardown.
// Must not leave namespaces behind: every lab made here is downed even when the test fails.
import type { Test } from 'tap';
import { DEFAULT_PORTS, Lab, type LabSpec, nodeSpec } from '../../src/lab/index.ts';

export const isRoot = process.getuid?.() === 0;
export const skipUnlessRoot = isRoot ? false : 'needs root (network namespaces)';

/** Two nodes; x/a, x/b on node 1, y/a on node 2, hostNetwork y/h on node 2 (8080/TCP), host backup. */
export function twoNodeSpec(): LabSpec {
  return {
    nodes: [nodeSpec(1), nodeSpec(2)],
    pods: [
      { key: 'x/a', node: 1, hostNetwork: false, ports: [...DEFAULT_PORTS] },
      { key: 'x/b', node: 1, hostNetwork: false, ports: [...DEFAULT_PORTS] },
      { key: 'y/a', node: 2, hostNetwork: false, ports: [...DEFAULT_PORTS] },
      {
        key: 'y/h',
        node: 2,
        hostNetwork: true,
        ports: [
          { port: 8080, protocol: 'TCP' },
          { port: 8080, protocol: 'UDP' },
        ],
      },
    ],
    hosts: [
      {
        name: 'backup',
        ip4: '203.0.113.10',
        ports: [
          { port: 80, protocol: 'TCP' },
          { port: 53, protocol: 'UDP' },
        ],
      },
    ],
  };
}

export async function labFor(t: Test, spec: LabSpec = twoNodeSpec()): Promise<Lab> {
  const lab = await Lab.up(spec);
  t.teardown(() => lab.down());
  return lab;
}

export async function netnsNames(): Promise<string[]> {
  const { execFileSync } = await import('node:child_process');
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** A process that exists and is not a zombie (detached agents are reaped by whoever inherits them, maybe late). */
export async function running(pid: number | string): Promise<boolean> {
  const { readFileSync } = await import('node:fs');
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
