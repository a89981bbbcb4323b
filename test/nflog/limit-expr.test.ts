// Unit tests of the limit expression (no kernel): nft's text for each type and unit, the default burst, and
// named validation errors. The byte goldens against nft and the kernel round trip are in test/nft.

import t from 'tap';
import { Attrs, Writer } from '../../src/netlink/attr.ts';
import { Limit, renderExprs } from '../../src/nft/index.ts';

const text = (l: Limit) => renderExprs('inet', [l]);

t.test('renders as nft prints it (burst 5 packets is implied)', async (t) => {
  t.equal(text(new Limit({ rate: 20 })), 'limit rate 20/second');
  t.equal(text(new Limit({ rate: 20, burst: 5 })), 'limit rate 20/second');
  t.equal(
    text(new Limit({ rate: 10, per: 'hour', burst: 2, over: true })),
    'limit rate over 10/hour burst 2 packets',
  );
  t.equal(
    text(new Limit({ rate: 1024, type: 'bytes', burst: 100 })),
    'limit rate 1 kbytes/second burst 100 bytes',
  );
  t.equal(
    text(new Limit({ rate: 3 * 1024 * 1024, type: 'bytes', per: 'minute' })),
    'limit rate 3 mbytes/minute',
  );
});

t.test('decode(encode(x)) keeps every field', async (t) => {
  for (const l of [
    new Limit({ rate: 20 }),
    new Limit({ rate: 7, per: 'week', burst: 0, over: true }),
    new Limit({ rate: 1500, type: 'bytes', per: 'day', burst: 9000 }),
  ]) {
    const w = new Writer(64);
    l.encode(w);
    t.same(Limit.decode(Attrs.parse(w.bytes())), l, text(l));
  }
});

t.test('bad values name the field', async (t) => {
  t.throws(() => new Limit({ rate: 0 }), { code: 'E_NFT_INVALID', field: 'rate' });
  t.throws(() => new Limit({ rate: 1.5 }), { code: 'E_NFT_INVALID', field: 'rate' });
  t.throws(() => new Limit({ rate: 1, burst: -1 }), { code: 'E_NFT_INVALID', field: 'burst' });
  t.throws(() => new Limit({ rate: 1, per: 'fortnight' as 'day' }), { code: 'E_NFT_INVALID', field: 'per' });
  const w = new Writer(64);
  w.u64be(1, 1);
  w.u64be(2, 7);
  t.throws(() => Limit.decode(Attrs.parse(w.bytes())), { code: 'E_NFT_INVALID', field: 'per' }, 'a 7 s unit');
});
