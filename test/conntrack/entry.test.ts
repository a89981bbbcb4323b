// Unit tests of the ctnetlink codec (no kernel): crafted CT_NEW dump messages (IPv4 TCP with state, IPv6
// UDP, ICMP, a zone and a mark) decoded field by field, and the DELETE request checked byte by byte.

import t from 'tap';
import {
  type CtEntry,
  decodeEntry,
  formatTuple,
  sourcesTouch,
  writeDeleteRequest,
  writeDumpRequest,
} from '../../src/conntrack/entry.ts';
import { HOST_IS_LE, Writer } from '../../src/netlink/attr.ts';
import {
  CTA,
  CTA_IP,
  CTA_PROTO,
  CTA_TUPLE,
  ctnlType,
  IPCTNL_MSG,
  NFPROTO,
  NLM_F,
} from '../../src/netlink/constants.ts';
import { beginMessage, endMessage, splitMessages } from '../../src/netlink/message.ts';
import { parseAddress } from '../../src/policy/address.ts';

const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));
const ip6 = (hex: string) => Buffer.from(hex, 'hex');

function tuple(w: Writer, type: number, ipv6: boolean, src: Buffer, dst: Buffer, proto: (w: Writer) => void) {
  w.nest(type, () => {
    w.nest(CTA_TUPLE.IP, () => {
      w.bytesAttr(ipv6 ? CTA_IP.V6_SRC : CTA_IP.V4_SRC, src);
      w.bytesAttr(ipv6 ? CTA_IP.V6_DST : CTA_IP.V4_DST, dst);
    });
    w.nest(CTA_TUPLE.PROTO, () => proto(w));
  });
}

function ctNew(family: number, fill: (w: Writer) => void) {
  const w = new Writer(512);
  const s = beginMessage(w, ctnlType(IPCTNL_MSG.CT_NEW), NLM_F.MULTI, 7, family);
  fill(w);
  endMessage(w, s);
  return splitMessages(w.bytes())[0]!;
}

const tcpPorts = (sport: number, dport: number) => (w: Writer) => {
  w.u8(CTA_PROTO.NUM, 6);
  w.u16be(CTA_PROTO.SRC_PORT, sport);
  w.u16be(CTA_PROTO.DST_PORT, dport);
};

t.test('an IPv4 TCP entry: tuples, status, zone, mark, id, TCP state, timeout', async (t) => {
  const m = ctNew(NFPROTO.IPV4, (w) => {
    tuple(w, CTA.TUPLE_ORIG, false, ip4('10.244.1.5'), ip4('10.244.2.7'), tcpPorts(40000, 80));
    tuple(w, CTA.TUPLE_REPLY, false, ip4('10.244.2.7'), ip4('10.244.1.5'), tcpPorts(80, 40000));
    w.u32be(CTA.STATUS, 0x0e);
    w.u32be(CTA.TIMEOUT, 431999);
    w.u32be(CTA.MARK, 0x42);
    w.nest(CTA.PROTOINFO, () => w.nest(1, () => w.u8(1, 3)));
    w.u32be(CTA.ID, 0xdeadbeef);
    w.u16be(CTA.ZONE, 5);
  });
  const e = decodeEntry(m);
  t.equal(e.family, 4);
  t.same(e.orig, {
    src: parseAddress('10.244.1.5'),
    dst: parseAddress('10.244.2.7'),
    protocol: 6,
    sport: 40000,
    dport: 80,
  });
  t.equal(formatTuple(e.reply), 'tcp 10.244.2.7:80 -> 10.244.1.5:40000');
  t.equal(e.status, 0x0e);
  t.equal(e.zone, 5);
  t.equal(e.mark, 0x42);
  t.equal(e.id, 0xdeadbeef);
  t.equal(e.tcpState, 'ESTABLISHED');
  t.equal(e.timeout, 431999);
});

t.test('an IPv6 UDP entry and an ICMP entry without zone or mark', async (t) => {
  const a = ip6('fd000010024400010000000000000005');
  const b = ip6('fd000010024400020000000000000007');
  const udp = ctNew(NFPROTO.IPV6, (w) => {
    const p = (s: number, d: number) => (w: Writer) => {
      w.u8(CTA_PROTO.NUM, 17);
      w.u16be(CTA_PROTO.SRC_PORT, s);
      w.u16be(CTA_PROTO.DST_PORT, d);
    };
    tuple(w, CTA.TUPLE_ORIG, true, a, b, p(5353, 53));
    tuple(w, CTA.TUPLE_REPLY, true, b, a, p(53, 5353));
  });
  const e = decodeEntry(udp);
  t.equal(e.family, 6);
  t.equal(formatTuple(e.orig), 'udp [fd00:10:244:1::5]:5353 -> [fd00:10:244:2::7]:53');
  t.equal(e.zone, 0);
  t.equal(e.mark, 0);
  t.equal(e.id, undefined);
  t.equal(e.tcpState, undefined);
  const icmp = ctNew(NFPROTO.IPV4, (w) => {
    const p = (type: number) => (w: Writer) => {
      w.u8(CTA_PROTO.NUM, 1);
      w.u16be(CTA_PROTO.ICMP_ID, 77);
      w.u8(CTA_PROTO.ICMP_TYPE, type);
      w.u8(CTA_PROTO.ICMP_CODE, 0);
    };
    tuple(w, CTA.TUPLE_ORIG, false, ip4('10.244.1.5'), ip4('203.0.113.9'), p(8));
    tuple(w, CTA.TUPLE_REPLY, false, ip4('203.0.113.9'), ip4('10.244.1.5'), p(0));
  });
  const i = decodeEntry(icmp);
  t.same([i.orig.icmpId, i.orig.icmpType, i.reply.icmpType], [77, 8, 0]);
  t.equal(formatTuple(i.orig), 'icmp 10.244.1.5 -> 203.0.113.9 id 77');
});

t.test('sourcesTouch: an entry is kept when its original or reply source is in the set', async (t) => {
  const msg = (src: string, dst: string, replySrc: string) =>
    ctNew(NFPROTO.IPV4, (w) => {
      tuple(w, CTA.TUPLE_ORIG, false, ip4(src), ip4(dst), tcpPorts(40000, 80));
      tuple(w, CTA.TUPLE_REPLY, false, ip4(replySrc), ip4(src), tcpPorts(8080, 40000));
    });
  const local = { v4: new Set([ip4('10.244.1.5').readUInt32BE(0)]), v6: new Set<bigint>() };
  t.ok(sourcesTouch(msg('10.244.1.5', '10.244.2.7', '10.244.2.7'), local), 'the client is local');
  t.ok(sourcesTouch(msg('10.244.2.7', '10.96.0.1', '10.244.1.5'), local), 'the backend after DNAT is local');
  t.notOk(
    sourcesTouch(msg('10.244.2.7', '10.244.1.5', '10.244.3.9'), local),
    'only the original destination (before DNAT) is local: not the pod the connection reaches',
  );
  t.notOk(sourcesTouch(msg('10.244.2.7', '10.244.3.9', '10.244.3.9'), local), 'no local end');
  const v6 = ip6('fd000010024400010000000000000005');
  const v6msg = ctNew(NFPROTO.IPV6, (w) => {
    tuple(w, CTA.TUPLE_ORIG, true, ip6('fd000010024400020000000000000007'), v6, tcpPorts(1, 2));
    tuple(w, CTA.TUPLE_REPLY, true, v6, ip6('fd000010024400020000000000000007'), tcpPorts(2, 1));
  });
  const six = { v4: new Set<number>(), v6: new Set([BigInt(`0x${v6.toString('hex')}`)]) };
  t.ok(sourcesTouch(v6msg, six), 'IPv6');
  t.notOk(sourcesTouch(v6msg, local), 'IPv6 against an IPv4-only set');
  const noReply = ctNew(NFPROTO.IPV4, (w) => {
    tuple(w, CTA.TUPLE_ORIG, false, ip4('10.244.2.7'), ip4('10.244.3.9'), tcpPorts(1, 2));
  });
  t.ok(sourcesTouch(noReply, local), 'cannot tell: kept, so that the decode counts it');
});

t.test('messages that are not entries, or lack a tuple, are refused with E_CONNTRACK_DECODE', async (t) => {
  const noReply = ctNew(NFPROTO.IPV4, (w) => {
    tuple(w, CTA.TUPLE_ORIG, false, ip4('10.244.1.5'), ip4('10.244.2.7'), tcpPorts(1, 2));
  });
  t.throws(() => decodeEntry(noReply), { code: 'E_CONNTRACK_DECODE', message: /reply tuple/ });
  const w = new Writer(64);
  const s = beginMessage(w, ctnlType(IPCTNL_MSG.CT_DELETE), 0, 1, NFPROTO.IPV4);
  endMessage(w, s);
  t.throws(() => decodeEntry(splitMessages(w.bytes())[0]!), { code: 'E_CONNTRACK_DECODE' });
});

const u16 = (v: number) => (HOST_IS_LE ? [v & 0xff, v >> 8] : [v >> 8, v & 0xff]);
const u32 = (v: number) =>
  HOST_IS_LE
    ? [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24]
    : [v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
const attr = (type: number, payload: number[]) => [...u16(4 + payload.length), ...u16(type), ...payload];

const entry = (over: Partial<CtEntry> = {}): CtEntry => ({
  family: 4,
  orig: {
    src: parseAddress('10.244.1.5')!,
    dst: parseAddress('10.244.2.7')!,
    protocol: 6,
    sport: 40000,
    dport: 80,
  },
  reply: {
    src: parseAddress('10.244.2.7')!,
    dst: parseAddress('10.244.1.5')!,
    protocol: 6,
    sport: 80,
    dport: 40000,
  },
  status: 0xe,
  zone: 0,
  mark: 0,
  id: 0x01020304,
  ...over,
});

t.test(
  'DELETE: the original tuple and the id, byte by byte (a DELETE without a tuple flushes)',
  async (t) => {
    const w = new Writer(64);
    writeDeleteRequest(w, 9, entry());
    const body = [
      2,
      0,
      0,
      0, // nfgenmsg: AF_INET, version 0, res_id 0
      ...u16(52),
      ...u16(0x8001), // CTA_TUPLE_ORIG, nested
      ...u16(20),
      ...u16(0x8001), // CTA_TUPLE_IP, nested
      ...attr(1, [10, 244, 1, 5]),
      ...attr(2, [10, 244, 2, 7]),
      ...u16(28),
      ...u16(0x8002), // CTA_TUPLE_PROTO, nested
      ...attr(1, [6]),
      0,
      0,
      0,
      ...attr(2, [0x9c, 0x40]),
      0,
      0,
      ...attr(3, [0, 80]),
      0,
      0,
      ...attr(12, [1, 2, 3, 4]), // CTA_ID, big-endian
    ];
    const header = [
      ...u32(16 + body.length),
      ...u16(0x0102),
      ...u16(NLM_F.REQUEST | NLM_F.ACK),
      ...u32(9),
      ...u32(0),
    ];
    t.same([...w.bytes()], [...header, ...body]);
    const zoned = new Writer(64);
    writeDeleteRequest(zoned, 1, entry({ zone: 3, id: undefined }));
    t.same([...zoned.bytes().subarray(16 + 4 + 52)], attr(18, [0, 3]).concat([0, 0]), 'CTA_ZONE, no CTA_ID');
  },
);

t.test('DELETE refuses a tuple the kernel could not key on', async (t) => {
  const e = entry();
  delete e.orig.sport;
  t.throws(() => writeDeleteRequest(new Writer(64), 1, e), {
    code: 'E_CONNTRACK_DECODE',
    message: /no ports/,
  });
  const mixed = entry({ family: 6 });
  t.throws(() => writeDeleteRequest(new Writer(64), 1, mixed), {
    code: 'E_CONNTRACK_DECODE',
    message: /families/,
  });
});

t.test('the dump request: CT_GET with NLM_F_DUMP, the family in nfgenmsg', async (t) => {
  for (const [family, nfproto] of [
    [undefined, NFPROTO.UNSPEC],
    [4, NFPROTO.IPV4],
    [6, NFPROTO.IPV6],
  ] as const) {
    const w = new Writer(32);
    writeDumpRequest(w, 3, family);
    const [m] = splitMessages(w.bytes());
    t.equal(m!.type, ctnlType(IPCTNL_MSG.CT_GET));
    t.equal(m!.flags, NLM_F.REQUEST | NLM_F.DUMP);
    t.equal(m!.family, nfproto);
  }
});
