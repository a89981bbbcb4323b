// Test helper run INSIDE a lab pod's namespace (ip netns exec) by test/compile/cut-kernel.test.ts: one
// long-lived TCP connection. `server PORT`: echoes every byte back. `client HOST PORT`: connects, prints
// {"connected":true}; each stdin line "send" writes one byte and prints {"echo":true} when a byte comes
// back. Never run it in the root namespace.
import net from 'node:net';
import { createInterface } from 'node:readline';

const [mode, x, y] = process.argv.slice(2);
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
if (mode === 'server') {
  net
    .createServer((s) => {
      s.on('data', (d) => s.write(d));
      s.on('error', () => {});
    })
    .listen(Number(x), () => out({ listening: true }));
} else {
  const s = net.connect({ host: x!, port: Number(y) }, () => out({ connected: true }));
  s.setNoDelay(true);
  s.on('data', () => out({ echo: true }));
  s.on('error', (e) => out({ error: String(e) }));
  createInterface({ input: process.stdin }).on('line', (l) => {
    if (l.trim() === 'send') s.write('x');
  });
  process.stdin.on('end', () => s.destroy());
}
