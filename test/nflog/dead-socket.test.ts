// Root test: the nflog listener tells a dead socket from a bad packet (rev18 item 11). In a throwaway
// namespace, an injected I/O error closes the listener and reports through onClosed once, releasing the
// group so it can be bound again; after ENOBUFS the socket goes on.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { scaledMs } from '../../src/lab/load.ts';
import { makeNs } from '../nft/_ns.ts';

const here = dirname(fileURLToPath(import.meta.url));

t.test('a socket error closes the listener and says so once; ENOBUFS does not', async (t) => {
  const ns = makeNs(t, 'd');
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, join(here, '_dead-child.ts'), '19'], {
    encoding: 'utf8',
    timeout: scaledMs(60_000),
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  t.equal(r.status, 0, r.stderr.slice(0, 2000));
  const out = JSON.parse(line || '{}');
  t.same(out.afterNobufs, { closed: 0, errors: 0 }, 'ENOBUFS: the socket stays');
  t.equal(out.closed.length, 1, 'onClosed once, though the error came twice');
  t.match(out.closed[0], /^E_NFLOG_IO nflog group 19: socket error: EIO/);
  t.same(out.errors, [], 'not reported as a bad packet');
  t.equal(out.rebound, 'yes', 'the dead socket was closed: the group binds again');
});
