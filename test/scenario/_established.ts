// The established-connection scenario files (test/scenarios/established): where they are and which ones
// a run takes, shared by their model, netns-lab and API-lab tests. Lists files only.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ESTABLISHED_DIR = resolve(import.meta.dirname, '../scenarios/established');

/** The files that must pass, sorted; `wrong/` holds the ones that must fail. */
export function establishedFiles(dir = ESTABLISHED_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
}
