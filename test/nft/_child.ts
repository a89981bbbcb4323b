// Test helper run INSIDE a throwaway network namespace (ip netns exec): applies corpus cases through our
// netlink code, reads back, and runs failure scenarios. Prints one JSON line; never run it in the root ns.

import { spawnSync } from 'node:child_process';
import { Writer } from '../../src/netlink/attr.ts';
import {
  Chain,
  commitWithRetry,
  LimitObject,
  listRuleset,
  m,
  NamedSet,
  type NetlinkError,
  NfnlSocket,
  type NftObject,
  Rule,
  Table,
  Transaction,
} from '../../src/nft/index.ts';
import { CORPUS } from './_corpus.ts';

function errInfo(e: unknown) {
  const n = e as NetlinkError;
  return {
    code: n.code,
    message: n.message,
    errnoName: n.errnoName,
    messageType: n.messageType,
    object: n.object,
  };
}

function exprBytes(r: Rule): string {
  const w = new Writer();
  r.encode(w);
  return w.bytes().toString('hex');
}

/** Differences between what we sent and what the kernel lists back, as readable strings. */
async function roundTrip(sock: NfnlSocket, objects: NftObject[]): Promise<string[]> {
  const back = await listRuleset(sock);
  const diffs: string[] = [];
  for (const o of objects) {
    if (o instanceof Table) {
      if (!back.tables.some((t) => t.family === o.family && t.name === o.name))
        diffs.push(`missing ${o.describe()}`);
    } else if (o instanceof Chain) {
      const c = back.chains.find((x) => x.family === o.family && x.table === o.table && x.name === o.name);
      if (!c || c.toString() !== o.toString()) diffs.push(`chain: sent ${o.toString()} got ${c?.toString()}`);
    } else if (o instanceof NamedSet) {
      const s = back.sets.find((x) => x.family === o.family && x.table === o.table && x.name === o.name);
      const els = (x: NamedSet) => x.elements.map((e) => x.formatElement(e)).sort();
      if (!s) diffs.push(`missing ${o.describe()}`);
      else if (s.body() !== o.body() || s.kind !== o.kind)
        diffs.push(`set: sent ${o.body()} got ${s.body()}`);
      else if (JSON.stringify(els(s)) !== JSON.stringify(els(o))) {
        diffs.push(`elements of ${o.describe()}: sent ${els(o).join(', ')} got ${els(s).join(', ')}`);
      }
    } else if (o instanceof LimitObject) {
      const x = back.objects?.find((y) => y.family === o.family && y.table === o.table && y.name === o.name);
      if (x?.toString() !== o.toString()) diffs.push(`limit: sent ${o.toString()} got ${x?.toString()}`);
    }
  }
  const sentRules = objects.filter((o): o is Rule => o instanceof Rule);
  const chains = new Set(sentRules.map((r) => `${r.family} ${r.table} ${r.chain}`));
  for (const key of chains) {
    const sent = sentRules.filter((r) => `${r.family} ${r.table} ${r.chain}` === key);
    const got = back.rules.filter((r) => `${r.family} ${r.table} ${r.chain}` === key);
    if (sent.length !== got.length) diffs.push(`${key}: sent ${sent.length} rules, got ${got.length}`);
    sent.forEach((r, i) => {
      const g = got[i];
      if (!g || g.text !== r.text || exprBytes(g) !== exprBytes(r))
        diffs.push(`rule ${key}#${i}: sent "${r.text}" got "${g?.text}"`);
      if (g && g.handle === undefined) diffs.push(`rule ${key}#${i}: no handle read back`);
    });
  }
  return diffs;
}

function nft(...args: string[]) {
  return spawnSync('nft', args, { encoding: 'utf8' });
}

/** The ruleset as text, without the element expiry countdown (it changes every millisecond). */
function ruleset(): string {
  return nft('list', 'ruleset').stdout.replace(/ expires \S+/g, '');
}

const [mode = '', arg = ''] = process.argv.slice(2);
const sock = new NfnlSocket();
const out: Record<string, unknown> = {};
try {
  if (mode === 'apply') {
    const c = CORPUS[arg]?.();
    if (!c) throw new Error(`no corpus case ${arg}`);
    if (c.tx.error) throw c.tx.error;
    out.text = c.tx.toString();
    out.commit = await c.tx.run(sock);
    out.diffs = await roundTrip(sock, c.objects);
  } else if (mode === 'fail-missing-chain' || mode === 'fail-element') {
    const c = CORPUS.inet!();
    await c.tx.run(sock);
    const before = ruleset();
    const gen = await sock.getGeneration();
    const tx = new Transaction();
    const set = c.objects.find((o): o is NamedSet => o instanceof NamedSet && o.name === 's4')!;
    tx.add(new Chain({ family: 'inet', table: 'tollgate', name: 'fresh' }));
    tx.addElements(set, ['203.0.113.0/24']);
    if (mode === 'fail-missing-chain') {
      tx.add(
        new Rule({ family: 'inet', table: 'tollgate', chain: 'in', exprs: [m.verdict('jump nowhere')] }),
      );
    } else {
      // 10.1.0.0/16 lies inside the existing 10.0.0.0/8 interval: the kernel refuses the overlap.
      tx.addElements(set, ['10.1.0.0/16']);
    }
    // A later message that fails too: only the first error must be reported.
    tx.add(new Rule({ family: 'inet', table: 'tollgate', chain: 'missing', exprs: [m.verdict('accept')] }));
    try {
      await tx.run(sock);
      out.error = null;
    } catch (e) {
      out.error = errInfo(e);
    }
    out.unchanged = ruleset() === before;
    out.genUnchanged = (await sock.getGeneration()) === gen;
  } else if (mode === 'stale-genid') {
    const c = CORPUS.ip!();
    await c.tx.run(sock);
    const gen = await sock.getGeneration();
    const tx = new Transaction().add(new Chain({ family: 'ip', table: 't4', name: 'late' }));
    // Another process changes the ruleset between building and committing.
    nft('add', 'table', 'ip', 'bump1');
    try {
      await tx.run(sock, { genid: gen });
      out.staleError = null;
    } catch (e) {
      out.staleError = errInfo(e);
    }
    out.lateAfterStale = nft('list', 'chain', 'ip', 't4', 'late').status === 0;
    const r = await commitWithRetry(sock, (_genid, attempt) => {
      if (attempt === 1) nft('add', 'table', 'ip', 'bump2');
      return new Transaction().add(new Chain({ family: 'ip', table: 't4', name: 'late' }));
    });
    out.retry = r;
    out.lateAfterRetry = nft('list', 'chain', 'ip', 't4', 'late').status === 0;
  } else if (mode === 'large') {
    const n = Number(arg);
    const tx = new Transaction();
    tx.add(new Table({ family: 'inet', name: 'big' }));
    const els: string[] = [];
    for (let i = 0; i < n; i++)
      els.push(`10.${(i >> 8) & 255}.${i & 255}.0/25`.replace(/^10\./, `${10 + (i >> 16)}.`));
    const set = new NamedSet({
      family: 'inet',
      table: 'big',
      name: 'iv',
      key: 'ipv4_addr',
      flags: ['interval'],
      elements: els,
    });
    tx.add(set);
    const t0 = performance.now();
    out.commit = await tx.run(sock);
    out.ms = Math.round(performance.now() - t0);
    const back = await listRuleset(sock, { family: 'inet', table: 'big' });
    out.readBack = back.sets[0]?.elements.length;
    out.sameFirstLast =
      back.sets[0] !== undefined &&
      JSON.stringify([...back.sets[0].elements.map((e) => back.sets[0]!.formatElement(e))].sort()) ===
        JSON.stringify([...set.elements.map((e) => set.formatElement(e))].sort());
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  out.ok = true;
} catch (e) {
  out.ok = false;
  out.fatal = errInfo(e);
  out.stack = (e as Error).stack;
}
sock.close();
process.stdout.write(`${JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
