// Unit tests of the netlink codec (no kernel): attribute byte order and padding, nested attributes,
// message framing, batch numbering and generation id, error attribution texts.

import t from 'tap';
import { Attrs, HOST_IS_LE, Writer } from '../../src/netlink/attr.ts';
import { Batch, BatchBuilder } from '../../src/netlink/batch.ts';
import {
  messageTypeName,
  NFNL_MSG_BATCH_BEGIN,
  NFT_MSG,
  NLM_F,
  NLMSG,
  nftType,
} from '../../src/netlink/constants.ts';
import { describeErrno, errnoName, NetlinkError } from '../../src/netlink/errors.ts';
import { beginMessage, endMessage, parseError, splitMessages } from '../../src/netlink/message.ts';

t.test('attributes: explicit byte order, padding, nesting, round trip', async (t) => {
  const w = new Writer(8);
  w.u32be(1, 0x01020304);
  w.u16be(2, 0x0506);
  w.u8(3, 7);
  w.str(4, 'abc');
  w.u64be(5, 0x0102030405060708n);
  w.s32be(6, -3);
  w.nest(7, () => w.u32be(1, 9));
  const b = w.bytes();
  const hdr = (len: number, type: number) => {
    const x = Buffer.alloc(4);
    if (HOST_IS_LE) {
      x.writeUInt16LE(len, 0);
      x.writeUInt16LE(type, 2);
    } else {
      x.writeUInt16BE(len, 0);
      x.writeUInt16BE(type, 2);
    }
    return x.toString('hex');
  };
  t.equal(
    b.subarray(0, 8).toString('hex'),
    `${hdr(8, 1)}01020304`,
    'u32 value big-endian, header host order',
  );
  t.equal(b.subarray(8, 16).toString('hex'), `${hdr(6, 2)}05060000`, 'u16 padded to 4');
  t.equal(b.subarray(24, 32).toString('hex'), `${hdr(8, 4)}61626300`, 'string NUL-terminated');
  const a = Attrs.parse(b);
  t.equal(a.u32be(1), 0x01020304);
  t.equal(a.u16be(2), 0x0506);
  t.equal(a.u8(3), 7);
  t.equal(a.str(4), 'abc');
  t.equal(a.u64be(5), 0x0102030405060708n);
  t.equal(a.s32be(6), -3);
  t.equal(a.nested(7)?.u32be(1), 9, 'nested flag stripped from the type');
  t.equal(a.get(99), undefined);
  t.same(a.all(99), []);
  t.throws(
    () => w.nest(8, () => w.bytesAttr(1, Buffer.alloc(70_000))),
    RangeError,
    'attribute longer than 64 KiB refused',
  );
});

t.test('list attributes keep order whatever their index type', async (t) => {
  const w = new Writer();
  w.nest(3, () => w.u32be(1, 30));
  w.nest(1, () => w.u32be(1, 10));
  w.nest(2, () => w.u32be(1, 20));
  t.same(
    Attrs.list(w.bytes()).map((x) => Attrs.parse(x).u32be(1)),
    [30, 10, 20],
  );
});

t.test('message framing and split', async (t) => {
  const w = new Writer();
  const s = beginMessage(w, nftType(NFT_MSG.NEWTABLE), NLM_F.REQUEST | NLM_F.CREATE, 42, 1);
  w.str(1, 't');
  endMessage(w, s);
  const s2 = beginMessage(w, NFNL_MSG_BATCH_BEGIN, NLM_F.REQUEST, 43, 0, 10);
  endMessage(w, s2);
  const msgs = splitMessages(w.bytes());
  t.equal(msgs.length, 2);
  t.equal(msgs[0]?.type, 0x0a00);
  t.equal(msgs[0]?.seq, 42);
  t.equal(msgs[0]?.family, 1);
  t.equal(msgs[0]?.flags, NLM_F.REQUEST | NLM_F.CREATE);
  t.equal(msgs[1]?.payload.readUInt16BE(2), 10, 'res_id big-endian in nfgenmsg');
  t.equal(messageTypeName(0x0a00), 'NEWTABLE');
  t.equal(messageTypeName(NFNL_MSG_BATCH_BEGIN), 'BATCH_BEGIN');
  t.equal(messageTypeName(17), 'BATCH_END');
  t.equal(messageTypeName(NLMSG.ERROR), 'ERROR');
  t.equal(messageTypeName(0x0bff), 'type(3071)');
  t.equal(messageTypeName(0x0a7f), 'nft(127)');
});

t.test('parseError reads errno and the seq of the original message', async (t) => {
  const w = new Writer();
  const s = beginMessage(w, NLMSG.ERROR, 0, 7, 0);
  w.pos -= 4; // no nfgenmsg in an error message
  const body = Buffer.alloc(4 + 16);
  if (HOST_IS_LE) {
    body.writeInt32LE(-2, 0);
    body.writeUInt16LE(0x0a06, 8);
    body.writeUInt32LE(99, 12);
  } else {
    body.writeInt32BE(-2, 0);
    body.writeUInt16BE(0x0a06, 8);
    body.writeUInt32BE(99, 12);
  }
  w.raw(body);
  endMessage(w, s);
  const [m] = splitMessages(w.bytes());
  t.same(parseError(m!), { errno: 2, seq: 99, type: 0x0a06 });
});

t.test('batch: ACK on inner messages, consecutive numbering, generation id big-endian', async (t) => {
  const b = new BatchBuilder(16);
  b.begin(nftType(NFT_MSG.NEWTABLE), NLM_F.CREATE, 1, 'table inet t');
  t.ok(b.currentSize() >= 20);
  b.w.str(1, 't');
  b.end();
  b.begin(nftType(NFT_MSG.NEWCHAIN), NLM_F.CREATE, 1, 'chain inet t c');
  t.throws(() => b.begin(0, 0, 0, 'x'), /not ended/);
  b.end();
  t.equal(b.length, 2);
  const batch = b.finish();
  t.ok(batch instanceof Batch);
  t.equal(batch.number(100), 103);
  batch.setGenid(0x01020304);
  const msgs = splitMessages(batch.buf);
  t.same(
    msgs.map((m) => m.seq),
    [100, 101, 102, 103],
  );
  t.equal(msgs[1]!.flags & NLM_F.ACK, NLM_F.ACK);
  t.equal(msgs[0]!.flags & NLM_F.ACK, 0, 'no ACK asked for BATCH_BEGIN');
  t.equal(Attrs.parse(msgs[0]!.payload, 4).u32be(1), 0x01020304);
});

t.test('errors name errno, message type and object', async (t) => {
  t.equal(errnoName(2), 'ENOENT');
  t.equal(errnoName(85), 'ERESTART');
  t.equal(errnoName(100000), 'errno 100000');
  t.match(describeErrno(17), /^EEXIST: /);
  t.match(describeErrno(100000), /rejected/);
  const e = NetlinkError.fromErrno(2, { messageType: 'NEWRULE', object: 'rule in chain inet t c', seq: 5 });
  t.equal(e.code, 'E_NETLINK');
  t.equal(e.errnoName, 'ENOENT');
  t.equal(e.seq, 5);
  t.match(e.message, /^NEWRULE for rule in chain inet t c failed: ENOENT/);
  t.equal(NetlinkError.fromErrno(85).code, 'E_NETLINK_GENID');
  t.match(NetlinkError.fromErrno(17, { messageType: 'NEWSETELEM' }).message, /overlapping/);
  t.equal(new NetlinkError('E_NETLINK_IO', 'x').errno, undefined);
});
