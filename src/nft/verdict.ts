// Verdicts (accept, drop, continue, return, jump CHAIN, goto CHAIN) as carried in NFTA_DATA_VERDICT:
// code is a signed 32-bit big-endian value, the chain a string. Encoding and text only.

import { Attrs, type Writer } from '../netlink/attr.ts';
import { NFTA_DATA, NFTA_VERDICT, VERDICT_CODE } from '../netlink/constants.ts';

export type Verdict =
  | { kind: 'accept' | 'drop' | 'continue' | 'return' }
  | { kind: 'jump' | 'goto'; chain: string };

export const accept: Verdict = { kind: 'accept' };
export const drop: Verdict = { kind: 'drop' };
export const ret: Verdict = { kind: 'return' };
export const jump = (chain: string): Verdict => ({ kind: 'jump', chain });
export const goto = (chain: string): Verdict => ({ kind: 'goto', chain });

export function formatVerdict(v: Verdict): string {
  return v.kind === 'jump' || v.kind === 'goto' ? `${v.kind} ${v.chain}` : v.kind;
}

/** Parses "accept", "drop", "return", "continue", "jump NAME", "goto NAME". */
export function parseVerdict(text: string): Verdict | undefined {
  const [k, chain, extra] = text.trim().split(/\s+/);
  if (extra !== undefined) return undefined;
  if ((k === 'jump' || k === 'goto') && chain) return { kind: k, chain };
  if (chain === undefined && (k === 'accept' || k === 'drop' || k === 'return' || k === 'continue'))
    return { kind: k };
  return undefined;
}

/** Writes attribute `type` holding NFTA_DATA_VERDICT { NFTA_VERDICT_CODE (s32 BE), NFTA_VERDICT_CHAIN }. */
export function encodeVerdictData(w: Writer, type: number, v: Verdict): void {
  w.nest(type, () => {
    w.nest(NFTA_DATA.VERDICT, () => {
      w.s32be(NFTA_VERDICT.CODE, VERDICT_CODE[v.kind]);
      if (v.kind === 'jump' || v.kind === 'goto') w.str(NFTA_VERDICT.CHAIN, v.chain);
    });
  });
}

/** Decodes the content of an NFTA_DATA-carrying attribute that holds a verdict. */
export function decodeVerdictData(data: Attrs): Verdict | undefined {
  const v = data.nested(NFTA_DATA.VERDICT);
  if (!v) return undefined;
  const code = v.s32be(NFTA_VERDICT.CODE);
  const chain = v.str(NFTA_VERDICT.CHAIN);
  for (const [kind, c] of Object.entries(VERDICT_CODE)) {
    if (c !== code) continue;
    if (kind === 'jump' || kind === 'goto') return chain ? { kind, chain } : undefined;
    if (kind === 'accept' || kind === 'drop' || kind === 'continue' || kind === 'return') return { kind };
  }
  return undefined;
}

/** Writes attribute `type` holding NFTA_DATA_VALUE with the bytes as given (caller chose the byte order). */
export function encodeValueData(w: Writer, type: number, value: Uint8Array): void {
  w.nest(type, () => w.bytesAttr(NFTA_DATA.VALUE, value));
}

export function decodeValueData(data: Attrs | undefined): Buffer | undefined {
  return data?.get(NFTA_DATA.VALUE);
}

export { Attrs };
