// Remembers which texts were already logged, so that a problem is logged once and not at every sync,
// within a fixed bound: the oldest entries go first, so a stream of objects that come and go (20,000
// invalid policies created and deleted) cannot grow it for ever. At worst an old problem is logged again.
export class LoggedOnce {
  private readonly seen = new Set<string>();
  private readonly max: number;

  constructor(max = 4096) {
    this.max = max;
  }

  /** True the first time `text` is seen (while it is remembered). */
  first(text: string): boolean {
    if (this.seen.has(text)) return false;
    this.seen.add(text);
    if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value as string);
    return true;
  }

  /** Forgets every text not in `current` (problems of objects that are gone, or that were fixed). */
  keepOnly(current: ReadonlySet<string>): void {
    for (const text of this.seen) if (!current.has(text)) this.seen.delete(text);
  }

  get size(): number {
    return this.seen.size;
  }
}
