// The lab's JSON-lines RPC (src/lab/rpc.ts) against a real child process: replies matched by id, the
// child's side one request at a time, errors with their code, and requests settled when the child is gone.
// No root needed: the child runs in this namespace.
import t from 'tap';
import { RpcChild } from '../../src/lab/rpc.ts';

const CHILD = new URL('./fixtures/rpc-child.ts', import.meta.url).pathname;

interface Reply {
  id: number;
  ok: boolean;
  result?: { seen: number };
  error?: string;
}

const lost = (id: number, why: string): Reply => ({ id, ok: false, error: `lost: ${why}` });

t.test('replies by id, one request at a time, errors with their code', async (t) => {
  const rpc = new RpcChild<Reply>([process.execPath, CHILD, 'serve'], { lost });
  t.teardown(() => rpc.stop(1000));
  // The first takes longest: were they served at once, the later ones would see it in flight.
  const replies = await Promise.all([
    rpc.request({ delayMs: 150 }),
    rpc.request({ delayMs: 0, fail: true }),
    rpc.request({ delayMs: 10 }),
  ]);
  t.same(
    replies.map((r) => r.id),
    [1, 2, 3],
  );
  t.same(replies[0], { id: 1, ok: true, result: { seen: 1 } });
  t.same(replies[1], { id: 2, ok: false, error: 'request 2 failed as asked [E_LAB_AGENT]' });
  t.same(replies[2], { id: 3, ok: true, result: { seen: 1 } });
  await rpc.end();
  t.equal(rpc.child.exitCode, 0, 'the child ends when its stdin closes');
  t.notOk(rpc.alive);
});

t.test('a child that exits settles what is pending and what comes after', async (t) => {
  const rpc = new RpcChild<Reply>([process.execPath, CHILD, 'mute'], { lost });
  t.teardown(() => rpc.stop(1000));
  const pending = await rpc.request({ delayMs: 0 });
  t.same(pending, { id: 1, ok: false, error: 'lost: exited (3)' });
  t.equal(rpc.stderr, 'going away', 'its stderr is kept for the message');
  t.same(await rpc.request({}), { id: 2, ok: false, error: 'lost: exited (3)' }, 'no wait for a gone child');
});

t.test('a program that cannot start settles like one that exited', async (t) => {
  const rpc = new RpcChild<Reply>(['/nonexistent/tollgate-rpc-child'], { lost });
  await rpc.exited;
  t.match(await rpc.request({}), { ok: false, error: /^lost: could not start \(.*ENOENT/ });
});
