// Test helper run INSIDE a lab pod's namespace (ip netns exec) by test/agent/reports-kernel.test.ts: opens
// `attempts` TCP connections to a denied address and port as fast as it can (each abandoned after waitMs,
// before the first SYN retransmission), then prints one JSON line with the wall-clock window. Never run it
// in the root namespace.
import net from 'node:net';

const a = JSON.parse(process.argv[2] ?? '{}') as {
  host: string;
  port: number;
  attempts: number;
  concurrency: number;
  waitMs: number;
};
const counts: Record<string, number> = {};
function attempt(): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: a.host, port: a.port });
    const done = (what: string) => {
      clearTimeout(timer);
      s.destroy();
      counts[what] = (counts[what] ?? 0) + 1;
      resolve();
    };
    const timer = setTimeout(() => done('unanswered'), a.waitMs);
    s.on('connect', () => done('connected'));
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
  });
}
const startMs = Date.now();
let next = 0;
let lastSentMs = startMs;
await Promise.all(
  Array.from({ length: a.concurrency }, async () => {
    while (next < a.attempts) {
      next++;
      lastSentMs = Date.now();
      await attempt();
    }
  }),
);
process.stdout.write(`${JSON.stringify({ startMs, lastSentMs, endMs: Date.now(), counts })}\n`);
