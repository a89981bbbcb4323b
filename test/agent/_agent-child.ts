// Test helper run inside a throwaway network namespace (test/agent/kernel-heal.test.ts): the real agent
// loop with the real kernel parts (netlink programmer, nf_tables notifications, the node lock, the CNI
// bridge), and an in-memory API that the parent drives with JSON lines on stdin. Log lines go to stdout.
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { Agent, type AgentOptions } from '../../src/agent/agent.ts';
import { nodeParts } from '../../src/agent/parts.ts';
import { NetlinkProgrammer } from '../../src/agent/programmer.ts';
import { FakeApi } from '../k8s/fake-api.ts';
import { TEST_AGENT_OPTIONS } from './_fixtures.ts';

type Msg =
  | { op: 'put'; path: string; name: string; object: Record<string, unknown>; type?: 'ADDED' | 'MODIFIED' }
  | { op: 'remove'; path: string; name: string }
  | { op: 'api'; down: boolean }
  | { op: 'stop' };

const options = JSON.parse(process.argv[2] ?? '{}') as Partial<AgentOptions> & {
  apiDown?: boolean;
  objects?: { path: string; name: string; object: Record<string, unknown> }[];
};
const api = new FakeApi();
for (const o of options.objects ?? []) api.put(o.path, o.name, o.object);
if (options.apiDown) api.failLists = 503;
const log = pino({ level: 'debug' }, pino.destination({ dest: 1, sync: true }));
const programmer = new NetlinkProgrammer();
const agent = new Agent(api, programmer, log, { ...TEST_AGENT_OPTIONS, ...options }, nodeParts('n1'));
await agent.start();
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line) as Msg;
  if (m.op === 'put') api.put(m.path, m.name, m.object, m.type);
  else if (m.op === 'remove') api.remove(m.path, m.name);
  else if (m.op === 'api') api.failLists = m.down ? 503 : undefined;
  else if (m.op === 'stop')
    void agent.stop().then(() => {
      programmer.close();
      process.exit(0);
    });
});
