// log expression: log to the kernel log or to an nflog group (NFTA_LOG_GROUP u16 big-endian, PREFIX string,
// SNAPLEN/QTHRESHOLD/LEVEL u32/u16 big-endian). Only attributes that were set are sent, as nft does.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import type { RenderContext } from '../render.ts';
import type { Expr } from './expr.ts';

const A = { GROUP: 1, PREFIX: 2, SNAPLEN: 3, QTHRESHOLD: 4, LEVEL: 5, FLAGS: 6 } as const;
const LEVELS = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug', 'audit'] as const;
export type LogLevel = (typeof LEVELS)[number];

export interface LogOptions {
  prefix?: string;
  /** nflog group: packets go to userspace (NFLOG) instead of the kernel log. */
  group?: number;
  snaplen?: number;
  queueThreshold?: number;
  level?: LogLevel;
}

export class Log implements Expr {
  readonly name = 'log';
  readonly prefix: string | undefined;
  readonly group: number | undefined;
  readonly snaplen: number | undefined;
  readonly queueThreshold: number | undefined;
  readonly level: LogLevel | undefined;
  constructor(o: LogOptions = {}) {
    this.prefix = o.prefix;
    this.group = o.group;
    this.snaplen = o.snaplen;
    this.queueThreshold = o.queueThreshold;
    this.level = o.level;
    if (o.prefix !== undefined && (/["\\\n]/.test(o.prefix) || Buffer.byteLength(o.prefix) > 127)) {
      throw new NftValidationError(
        'log expression',
        `prefix ${JSON.stringify(o.prefix)}: no quotes, backslashes or newlines, at most 127 bytes`,
        'prefix',
      );
    }
    if (o.group !== undefined && o.level !== undefined)
      throw new NftValidationError('log expression', 'level and group are exclusive', 'group');
  }

  encode(w: Writer): void {
    if (this.prefix !== undefined) w.str(A.PREFIX, this.prefix);
    if (this.group !== undefined) w.u16be(A.GROUP, this.group);
    if (this.snaplen !== undefined) w.u32be(A.SNAPLEN, this.snaplen);
    if (this.queueThreshold !== undefined) w.u16be(A.QTHRESHOLD, this.queueThreshold);
    if (this.level !== undefined) w.u32be(A.LEVEL, LEVELS.indexOf(this.level));
  }

  static decode(a: Attrs): Log {
    const o: LogOptions = {};
    const prefix = a.str(A.PREFIX);
    if (prefix !== undefined) o.prefix = prefix;
    const group = a.u16be(A.GROUP);
    if (group !== undefined) o.group = group;
    // The kernel reports snaplen/qthreshold back for nflog even when unset; 0 means "not set".
    const snaplen = a.u32be(A.SNAPLEN);
    if (snaplen) o.snaplen = snaplen;
    const q = a.u16be(A.QTHRESHOLD);
    if (q) o.queueThreshold = q;
    const level = a.u32be(A.LEVEL);
    // The kernel reports the default level (warn) when none was given; keep it only if it is not the default.
    if (level !== undefined && group === undefined && level !== 4) o.level = LEVELS[level];
    return new Log(o);
  }

  render(ctx: RenderContext): void {
    const parts = ['log'];
    if (this.prefix !== undefined) parts.push(`prefix "${this.prefix}"`);
    if (this.group !== undefined) parts.push(`group ${this.group}`);
    if (this.snaplen !== undefined) parts.push(`snaplen ${this.snaplen}`);
    if (this.queueThreshold !== undefined) parts.push(`queue-threshold ${this.queueThreshold}`);
    if (this.level !== undefined) parts.push(`level ${this.level}`);
    ctx.emit(parts.join(' '));
  }
}
