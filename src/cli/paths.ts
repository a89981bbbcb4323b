// Expands command-line scenario arguments: files as given, directories to their .yaml/.yml files (sorted).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../util/errors.ts';

export function expandScenarioPaths(args: string[]): string[] {
  const out: string[] = [];
  for (const arg of args) {
    let isDir: boolean;
    try {
      isDir = statSync(arg).isDirectory();
    } catch {
      throw new UsageError(`${arg}: no such file or directory`);
    }
    if (!isDir) {
      out.push(arg);
      continue;
    }
    const found = readdirSync(arg, { recursive: true })
      .map(String)
      .filter((f) => /\.ya?ml$/.test(f) && !f.split('/').some((part) => part.startsWith('.')))
      .filter((f) => !/(^|\/)README/i.test(f))
      .sort()
      .map((f) => join(arg, f));
    out.push(...found);
  }
  return out;
}
