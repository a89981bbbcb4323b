// Test helper run INSIDE the server namespace of test/nflog/kernel.test.ts (ip netns exec): programs a
// small report-and-drop table with our Transaction, listens to its nflog group, runs the client in the
// other namespace, and prints one JSON line with every decoded report. Never run it in the root namespace.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NflogError } from '../../src/nflog/errors.ts';
import { NflogListener } from '../../src/nflog/listener.ts';
import type { NflogPacket } from '../../src/nflog/packet.ts';
import { Chain, Limit, m, NfnlSocket, Rule, Table, Transaction } from '../../src/nft/index.ts';

const here = dirname(fileURLToPath(import.meta.url));

interface Args {
  clientNs: string;
  serverIf: string;
  group: number;
  /** "split": report rule without a verdict, then a drop rule; "combined": `limit ... log ... drop` in one. */
  /** "flood": like split without the limit, into the smallest receive queue the kernel allows. */
  layout: 'split' | 'combined' | 'flood';
  client: Record<string, unknown> & {
    allowedPort: number;
    deniedPort: number;
    sentinelPort: number;
    v6Port: number;
  };
  timeoutMs: number;
}

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const family = 'inet';
const table = 'tg-nflog';
const tx = new Transaction();
tx.add(new Table({ family, name: table }));
tx.add(
  new Chain({ family, table, name: 'in', type: 'filter', hook: 'input', priority: 0, policy: 'accept' }),
);
const rule = (...exprs: Array<ReturnType<typeof m.verdict> | ReturnType<typeof m.match>>) =>
  tx.add(new Rule({ family, table, chain: 'in', exprs: exprs.flat() }));
const tcp = (port: number) => [...m.match('meta l4proto', 'tcp'), ...m.match('th dport', port)];
const c = a.client;
rule(m.match('ct state', 'established,related'), m.verdict('accept'));
rule(tcp(c.allowedPort), m.verdict('accept'));
rule(tcp(c.sentinelPort), m.log({ prefix: 'tg:end', group: a.group }), m.verdict('drop'));
rule(
  tcp(c.v6Port),
  m.match('meta nfproto', 'ipv6'),
  m.log({ prefix: 'tg:v6', group: a.group }),
  m.verdict('drop'),
);
const report = [
  ...m.match('meta l4proto', 'tcp'),
  ...m.match('ct state', 'new'),
  ...(a.layout === 'flood' ? [] : [new Limit({ rate: 20, per: 'second', burst: 5 })]),
  m.log({ prefix: 'tg:deny', group: a.group }),
];
if (a.layout !== 'combined') {
  rule(report);
  rule(m.match('meta l4proto', 'tcp'), m.verdict('drop'));
} else {
  rule(report, m.verdict('drop'));
}

const out: Record<string, unknown> = {};
try {
  const sock = new NfnlSocket();
  await tx.run(sock);
  sock.close();
  out.ruleset = tx.toString();

  const reports: Array<NflogPacket & { receivedAtMs: number }> = [];
  let sawEnd!: () => void;
  const ended = new Promise<void>((resolve) => {
    sawEnd = resolve;
  });
  const errors: string[] = [];
  const listener = await NflogListener.open({
    group: a.group,
    onPacket: (p, receivedAtMs) => {
      reports.push({ ...p, receivedAtMs });
      if (p.prefix === 'tg:end') sawEnd();
    },
    onError: (e) => errors.push(`${e.code}: ${e.message}`),
    ...(a.layout === 'flood' ? { recvBufferSize: 1 } : {}),
  });

  // One listener per group: a second bind is refused with a named, typed error.
  try {
    (await NflogListener.open({ group: a.group, onPacket: () => {} })).close();
    out.secondBind = 'accepted';
  } catch (e) {
    out.secondBind =
      e instanceof NflogError ? { code: e.code, errnoName: e.errnoName, message: e.message } : String(e);
  }

  const server = net.createServer((s) => s.on('data', (d) => s.end(d)));
  await new Promise<void>((resolve) => server.listen(c.allowedPort, resolve));

  const client = spawn(
    'ip',
    ['netns', 'exec', a.clientNs, process.execPath, join(here, '_connect.ts'), JSON.stringify(c)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let clientOut = '';
  client.stdout.on('data', (d) => {
    clientOut += d;
  });
  const clientDone = new Promise<number | null>((resolve) => client.on('close', resolve));
  out.clientStatus = await clientDone;
  out.client = JSON.parse(clientOut.trim().split('\n').pop() || 'null');
  // The sentinel's report comes after every earlier one (one group delivers in order).
  const timer = setTimeout(() => sawEnd(), a.timeoutMs);
  await ended;
  clearTimeout(timer);
  out.sawSentinel = reports.some((r) => r.prefix === 'tg:end');
  out.reports = reports;
  out.stats = { ...listener.stats };
  out.errors = errors;
  out.serverIfindex = Number(readFileSync(`/sys/class/net/${a.serverIf}/ifindex`, 'utf8'));
  await listener.unbind();
  // After the unbind the group is free again at once.
  (await NflogListener.open({ group: a.group, onPacket: () => {} })).close();
  out.rebind = true;
  server.close();
  out.ok = true;
} catch (e) {
  out.fatal =
    e instanceof Error
      ? { message: e.message, code: (e as { code?: string }).code, stack: e.stack }
      : String(e);
}
console.log(JSON.stringify(out));
process.exit(0);
