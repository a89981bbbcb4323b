// Test helper run INSIDE the client namespace of test/nflog/kernel.test.ts (ip netns exec): one allowed
// connection with an echo, a burst of connection attempts to a denied port from known source ports, then
// one sentinel attempt. Prints one JSON line; never run it in the root namespace.

import net from 'node:net';

interface Args {
  dst: string;
  dst6: string;
  allowedPort: number;
  deniedPort: number;
  sentinelPort: number;
  v6Port: number;
  attempts: number;
  firstSport: number;
  /** How long an unanswered attempt is kept open before it is abandoned, ms. */
  waitMs: number;
}

type Outcome = 'connected' | 'refused' | 'unanswered' | 'error';

function attempt(
  host: string,
  port: number,
  localPort: number | undefined,
  waitMs: number,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, ...(localPort === undefined ? {} : { localPort }) });
    const done = (o: Outcome) => {
      clearTimeout(timer);
      s.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done('unanswered'), waitMs);
    s.on('connect', () => done('connected'));
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error'));
  });
}

function echo(host: string, port: number, waitMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, waitMs);
    s.on('connect', () => s.write('ping'));
    s.on('data', (d) => {
      clearTimeout(timer);
      s.end();
      resolve(d.toString() === 'ping');
    });
    s.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const allowed = await echo(a.dst, a.allowedPort, a.waitMs * 20);
const burstStart = Date.now();
const outcomes = await Promise.all(
  Array.from({ length: a.attempts }, (_, i) => attempt(a.dst, a.deniedPort, a.firstSport + i, a.waitMs)),
);
const burstEnd = Date.now();
const v6 = await attempt(a.dst6, a.v6Port, a.firstSport - 1, a.waitMs);
const sentinel = await attempt(a.dst, a.sentinelPort, a.firstSport - 2, a.waitMs);
const counts: Record<string, number> = {};
for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
console.log(JSON.stringify({ allowed, burstStart, burstEnd, counts, v6, sentinel }));
