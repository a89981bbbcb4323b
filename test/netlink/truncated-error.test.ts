// A reply the socket cannot decode is an error of the request it answers, never an exception out of the
// socket's message handler (that would end the process): here an NLMSG_ERROR cut to its 16-byte header.
import t from 'tap';
import { HOST_IS_LE } from '../../src/netlink/attr.ts';
import { NLMSG } from '../../src/netlink/constants.ts';
import { NetlinkError } from '../../src/netlink/errors.ts';
import { NfnlSocket } from '../../src/netlink/socket.ts';

t.test('a 16-byte NLMSG_ERROR for a pending request rejects that request', async (t) => {
  const sock = new NfnlSocket({ timeoutMs: 5000 });
  t.teardown(() => sock.close());
  const internals = sock as unknown as { waiters: Map<number, unknown>; onData(buf: Buffer): void };
  // The waiter is registered before the request is sent, in the same turn as the call.
  const pending = sock.getGeneration();
  const [seq] = [...internals.waiters.keys()];
  t.ok(seq !== undefined, 'a request is pending');
  const header = Buffer.alloc(16);
  const w32 = (v: number, o: number) =>
    HOST_IS_LE ? header.writeUInt32LE(v, o) : header.writeUInt32BE(v, o);
  const w16 = (v: number, o: number) =>
    HOST_IS_LE ? header.writeUInt16LE(v, o) : header.writeUInt16BE(v, o);
  w32(16, 0);
  w16(NLMSG.ERROR, 4);
  w32(seq!, 8);
  t.doesNotThrow(() => internals.onData(header), 'the handler does not throw');
  const error = await pending.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof NetlinkError, 'the request fails with a NetlinkError');
  t.equal((error as NetlinkError).code, 'E_NETLINK_PROTOCOL');
  t.match((error as NetlinkError).message, /cannot decode the kernel's ERROR reply \(16 bytes/);
});
