// Test helper: where the scenario files are. The project's own examples/ always; the team's corpus
// (../shared/scenarios, beside the clone in this team's workspace and in CI) when it is there, so that a
// fresh clone with nothing beside it still runs `npm test`. Pure: reads the file system only.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..');
export const EXAMPLES = join(REPO, 'examples');
const sharedDir = resolve(REPO, '../shared/scenarios');
/** The team's scenario corpus, or undefined on a clone without ../shared. */
export const SHARED_SCENARIOS: string | undefined = existsSync(sharedDir) ? sharedDir : undefined;

/** Every .yaml file below `dir`, as paths relative to it, sorted. */
export function yamlBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
}

/** Every scenario file to run in the lab: examples/ (as `examples/...`) and the corpus when present. */
export function scenarioCorpus(): { label: string; path: string }[] {
  const own = yamlBelow(EXAMPLES).map((f) => ({ label: `examples/${f}`, path: join(EXAMPLES, f) }));
  const shared = SHARED_SCENARIOS
    ? yamlBelow(SHARED_SCENARIOS).map((f) => ({ label: f, path: join(SHARED_SCENARIOS!, f) }))
    : [];
  return [...own, ...shared];
}
