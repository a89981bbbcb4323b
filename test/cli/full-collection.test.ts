// The agent command's start-up hook runs one full garbage collection (src/cli/agent.ts: the heap limit
// V8 set during the list would otherwise let the heap reach ~250 MB at 100,000 pods before the first
// collection after the sync). It must really collect, without --expose-gc on the command line.
import { setImmediate as turn } from 'node:timers/promises';
import t from 'tap';
import { fullCollection } from '../../src/cli/agent.ts';

t.test('fullCollection frees an unreachable object, without --expose-gc', async (t) => {
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'no gc() in this process');
  let garbage: object | undefined = { payload: new Array(1000).fill('x') };
  const ref = new WeakRef(garbage);
  garbage = undefined;
  await turn(); // a WeakRef's target is kept until the end of the job that made it
  fullCollection();
  await turn();
  t.equal(ref.deref(), undefined, 'collected');
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'and still no gc() in the agent context');
});
