// Child of sweep.test.ts: makes one box as a cluster run would (state file, netns, cgroups, run dir), prints
// its pids, then waits to be SIGKILLed. Never run alone.
import { mkdtempSync } from 'node:fs';
import { check } from '../../src/lab/exec.ts';
import { boxCgroupDirs, startBox, writeState } from './_boxes.ts';

const id = `kt${process.pid}`;
const dir = mkdtempSync(`/tmp/tgcl-${id}-`);
const ns = `tgcl-${id}-n1`;
const state = { id, pid: process.pid, dir, netns: [ns], cgroups: boxCgroupDirs(`tgcl-${id}-n1`) };
writeState(state);
await check(['ip', 'netns', 'add', ns]);
const b = await startBox({
  name: 'n1',
  netns: ns,
  root: `${dir}/n1`,
  initBinary: 'sleep infinity',
  hostname: 'n1',
  cgroupName: `tgcl-${id}-n1`,
  timeoutMs: 10000,
});
console.log(JSON.stringify({ id, init: b.initPid, unshare: b.unshare.pid }));
await new Promise(() => {});
