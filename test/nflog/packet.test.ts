// Unit tests of the nflog packet decoder (no kernel): crafted NFULNL_MSG_PACKET messages with IPv4/IPv6
// payloads, extension headers, fragments, a too-short copy, and messages that are not reports.

import t from 'tap';
import { Writer } from '../../src/netlink/attr.ts';
import { NFPROTO, NFULA, NFULNL_MSG, ulogType } from '../../src/netlink/constants.ts';
import { beginMessage, endMessage, splitMessages } from '../../src/netlink/message.ts';
import { decodeHeaders, decodePacket } from '../../src/nflog/packet.ts';

function message(family: number, group: number, fill: (w: Writer) => void) {
  const w = new Writer(256);
  const s = beginMessage(w, ulogType(NFULNL_MSG.PACKET), 0, 0, family, group);
  fill(w);
  endMessage(w, s);
  return splitMessages(w.bytes())[0]!;
}

function ipv4(proto: number, l4: number[], opts: { frag?: number } = {}): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h.writeUInt16BE(opts.frag ?? 0, 6);
  h[9] = proto;
  Buffer.from([10, 244, 1, 5]).copy(h, 12);
  Buffer.from([10, 244, 2, 7]).copy(h, 16);
  return Buffer.concat([h, Buffer.from(l4)]);
}

function ipv6(next: number, rest: number[]): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(rest.length, 4);
  h[6] = next;
  Buffer.from('fd00001002440001000000000000000a', 'hex').copy(h, 8);
  Buffer.from('fd000010024400020000000000000001', 'hex').copy(h, 24);
  return Buffer.concat([h, Buffer.from(rest)]);
}

const ports = (s: number, d: number) => [s >> 8, s & 0xff, d >> 8, d & 0xff];

t.test('a report message: group, prefix, interfaces, time, sequence, headers', async (t) => {
  const tcp = [...ports(40001, 9), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff];
  const ts = Buffer.alloc(16);
  ts.writeBigUInt64BE(1_700_000_000n, 0);
  ts.writeBigUInt64BE(250_000n, 8);
  const m = message(NFPROTO.IPV4, 18, (w) => {
    w.bytesAttr(NFULA.PACKET_HDR, Buffer.from([0x08, 0x00, 1, 0]));
    w.u32be(NFULA.MARK, 7);
    w.bytesAttr(NFULA.TIMESTAMP, ts);
    w.u32be(NFULA.IFINDEX_INDEV, 3);
    w.bytesAttr(NFULA.PAYLOAD, ipv4(6, tcp));
    w.str(NFULA.PREFIX, 'tg:deny');
    w.u32be(NFULA.SEQ, 41);
  });
  const p = decodePacket(m);
  t.same(p, {
    group: 18,
    family: NFPROTO.IPV4,
    hwProtocol: 0x0800,
    hook: 1,
    prefix: 'tg:deny',
    mark: 7,
    indev: 3,
    seq: 41,
    kernelTimeMs: 1_700_000_000_250,
    payloadBytes: 36,
    headers: {
      ipVersion: 4,
      src: '10.244.1.5',
      dst: '10.244.2.7',
      protocol: 6,
      protocolName: 'tcp',
      length: 36,
      sport: 40001,
      dport: 9,
      tcpFlags: 0x02,
    },
  });
});

t.test('IPv4: UDP, SCTP, ICMP, a later fragment, a cut transport header', async (t) => {
  t.match(decodeHeaders(ipv4(17, [...ports(53, 5353), 0, 8, 0, 0])), {
    protocolName: 'udp',
    sport: 53,
    dport: 5353,
  });
  t.match(decodeHeaders(ipv4(132, [...ports(1, 2), 0, 0, 0, 0])), { protocol: 132, sport: 1, dport: 2 });
  t.match(decodeHeaders(ipv4(1, [8, 0, 0, 0])), { protocolName: 'icmp', icmpType: 8, icmpCode: 0 });
  const frag = decodeHeaders(ipv4(6, [...ports(1, 2)], { frag: 0x2005 }));
  t.equal(frag?.laterFragment, true);
  t.equal(frag?.sport, undefined, 'no ports in a later fragment');
  const cut = decodeHeaders(ipv4(6, [0x9c]));
  t.equal(cut?.truncated, true);
  t.equal(cut?.dport, undefined);
  t.equal(decodeHeaders(Buffer.from([0x45, 0])), undefined, 'shorter than an IPv4 header');
});

t.test('IPv6: through hop-by-hop and fragment headers to the ports', async (t) => {
  const hop = [44, 0, 1, 4, 0, 0, 0, 0]; // next: fragment, length 0 (8 bytes), a PadN option
  const frag = [6, 0, 0, 0, 0, 0, 0, 9]; // next: tcp, offset 0 (first fragment)
  const h = decodeHeaders(
    ipv6(0, [...hop, ...frag, ...ports(40000, 11), 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02]),
  );
  t.match(h, {
    ipVersion: 6,
    src: 'fd00:10:244:1::a',
    dst: 'fd00:10:244:2::1',
    protocolName: 'tcp',
    sport: 40000,
    dport: 11,
    tcpFlags: 2,
  });
  t.equal(decodeHeaders(ipv6(44, [17, 0, 0, 0x08, 0, 0, 0, 1]))?.laterFragment, true, 'offset 1: later');
  t.equal(decodeHeaders(ipv6(0, [17, 4]))?.truncated, true, 'the extension header runs past the copy');
  t.match(decodeHeaders(ipv6(58, [135, 0, 0, 0])), { protocolName: 'icmpv6', icmpType: 135 });
});

t.test('what is not a report is a typed error; a non-IP payload gives no headers', async (t) => {
  const w = new Writer(64);
  const s = beginMessage(w, ulogType(NFULNL_MSG.CONFIG), 0, 0, 0, 1);
  endMessage(w, s);
  t.throws(() => decodePacket(splitMessages(w.bytes())[0]!), { code: 'E_NFLOG_DECODE' });
  const arp = decodePacket(
    message(NFPROTO.ARP, 1, (x) => x.bytesAttr(NFULA.PAYLOAD, Buffer.from([0, 1, 8, 0]))),
  );
  t.equal(arp.headers, undefined);
  t.equal(arp.payloadBytes, 4);
});
