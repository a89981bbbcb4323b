// A lab refuses to start when the machine's own namespace routes one of its ranges (this machine itself
// sits on 192.0.2.0/24, which is why the lab's nodes use 198.51.100.0/24). Pure cases, then the real check.
import t from 'tap';
import { assertLabRangesFree, LAB_RANGES, overlappingRoutes } from '../../src/lab/overlap.ts';

t.test('routes that overlap a lab range are found, default routes and others are not', async (t) => {
  const routes = [
    { dst: 'default', dev: 'eth0' },
    { dst: '192.0.2.0/24', dev: 'eth0' },
    { dst: '127.0.0.1', dev: 'lo', table: 'local' },
    { dst: 'fd00::/64', dev: 'eth0' },
    { dst: 'fe80::/64', dev: 'eth0' },
  ];
  t.same(overlappingRoutes(routes), [], 'a machine on 192.0.2.0/24 and fd00::/64 overlaps nothing');
  const vpn = { dst: '10.0.0.0/8', dev: 'tun0' };
  const host = { dst: '198.51.100.7', dev: 'eth1', table: 'local' };
  const v6 = { dst: '2001:db8:1::/48', dev: 'eth1' };
  t.same(
    overlappingRoutes([...routes, vpn, host, v6]).map((h) => `${h.route.dst} ${h.range}`),
    ['10.0.0.0/8 10.244.0.0/16', '198.51.100.7 198.51.100.0/24', '2001:db8:1::/48 2001:db8::/32'],
  );
  t.same(
    overlappingRoutes([{ dst: '192.0.2.0/24' }], ['192.0.2.0/24']).length,
    1,
    'the range 192.0.2/24 would be refused',
  );
  t.ok(LAB_RANGES.includes('198.51.100.0/24'));
});

t.test(
  'this machine routes none of the lab ranges',
  { skip: process.getuid?.() !== 0 && 'needs ip' },
  async (t) => {
    await t.resolves(assertLabRangesFree());
  },
);
