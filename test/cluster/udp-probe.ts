// A one-shot UDP probe run inside a pod's or node's network namespace (scenario-driver.ts): sends one
// datagram and waits for the echo of agnhost porter. Node builtins only (it starts once per probe).
// Exit 0: answered; 3: no answer in time or refused (ICMP); 2: bad arguments or a local error.
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

const [host, portText, timeoutText] = process.argv.slice(2);
const port = Number(portText);
const timeoutMs = Number(timeoutText ?? '1500');
if (!host || !Number.isInteger(port) || port < 1 || port > 65535 || !(timeoutMs > 0)) {
  process.stderr.write('usage: udp-probe.ts HOST PORT [TIMEOUT_MS]\n');
  process.exit(2);
}

const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
const finish = (code: number, text: string) => {
  clearTimeout(timer);
  (code === 0 ? process.stdout : process.stderr).write(`${text}\n`);
  socket.close();
  process.exitCode = code;
};
const timer = setTimeout(() => finish(3, `no UDP answer within ${timeoutMs} ms`), timeoutMs);
socket.on('message', (msg) => finish(0, msg.toString()));
// Refused and unreachable are what a reject (or no route) looks like: a denied probe, not a broken one.
const DENIED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH']);
socket.on('error', (error: NodeJS.ErrnoException) =>
  finish(DENIED.has(error.code ?? '') ? 3 : 2, `UDP ${error.code ?? ''}: ${error.message}`),
);
// connect() makes an ICMP port-unreachable come back as ECONNREFUSED (a reject), not as silence.
socket.connect(port, host, () => {
  socket.send('probe');
});
