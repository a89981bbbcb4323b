// Bench helper run INSIDE a lab pod's namespace (ip netns exec) by bench/reports.ts: a paced flood of UDP
// datagrams from many source ports to one address and port, each a new connection attempt for conntrack.
// Never run it in the root namespace. stdin line "count" prints {"sent":N} as one JSON line.
//
// Why UDP and not connect(): a TCP connect costs a socket, a SYN and a timer per attempt and peaked at
// ~1,600 attempts/s here; one datagram is one send() on a reused socket. A datagram the node drops is never
// confirmed by conntrack, so every datagram (also a repeat from the same port) is `ct state new` again:
// one denied attempt each, the same as a SYN the isolation drops.
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';

const a = JSON.parse(process.argv[2] ?? '{}') as {
  host: string;
  port: number;
  /** Target datagrams per second; the pacing catches up after a late timer, 20 ms' worth per turn. */
  rate: number;
  /** How many sockets (source ports) the datagrams rotate over. */
  sockets: number;
};
const payload = Buffer.alloc(16);
const sockets = await Promise.all(
  Array.from(
    { length: a.sockets },
    () =>
      new Promise<dgram.Socket>((resolve) => {
        const s = dgram.createSocket('udp4');
        // Drops come back as ICMP errors only if something answers; nothing must end the flood.
        s.on('error', () => {});
        // Connected: send() then skips the per-datagram address lookup, the flood's main cost.
        s.bind(0, () => s.connect(a.port, a.host, () => resolve(s)));
      }),
  ),
);
const startMs = performance.now();
let sent = 0;
const perTurn = Math.max(1, Math.ceil(a.rate / 50));
let next = 0;
const tick = () => {
  // A bounded turn keeps the event loop (the "count" lines) responsive when sending falls behind.
  const due = Math.min(Math.floor(((performance.now() - startMs) / 1000) * a.rate), sent + perTurn);
  while (sent < due) {
    sockets[next]!.send(payload);
    next = (next + 1) % sockets.length;
    sent++;
  }
};
const timer = setInterval(tick, 5);
createInterface({ input: process.stdin })
  .on('line', (l) => {
    if (l.trim() === 'count') process.stdout.write(`${JSON.stringify({ sent })}\n`);
  })
  .on('close', () => {
    clearInterval(timer);
    for (const s of sockets) s.close();
  });
