// Test helper run INSIDE a throwaway namespace of test/nflog/dead-socket.test.ts (ip netns exec): binds an
// nflog group, injects socket errors into the listener's socket and prints one JSON line of what the
// callbacks saw and whether the group is free again. Never run it in the root namespace.

import { NflogListener } from '../../src/nflog/listener.ts';

const group = Number(process.argv[2] ?? 19);
const seen: { errors: string[]; closed: string[] } = { errors: [], closed: [] };
const open = () =>
  NflogListener.open({
    group,
    onPacket: () => {},
    onError: (e) => seen.errors.push(`${e.code} ${e.message}`),
    onClosed: (e) => seen.closed.push(`${e.code} ${e.message}`),
  });
const socketError = (errno: number, code: string) => Object.assign(new Error(code), { errno, code });

const l = await open();
// biome-ignore lint/suspicious/noExplicitAny: the private socket, to inject what the kernel would report
const sock = (l as any).sock as NodeJS.EventEmitter;
sock.emit('error', socketError(105, 'ENOBUFS'));
const afterNobufs = { closed: seen.closed.length, errors: seen.errors.length };
sock.emit('error', socketError(5, 'EIO'));
sock.emit('error', socketError(5, 'EIO'));
let rebound = 'no';
try {
  const again = await open();
  rebound = 'yes';
  again.close();
} catch (e) {
  rebound = (e as Error).message;
}
l.close();
console.log(JSON.stringify({ ok: true, afterNobufs, ...seen, rebound }));
