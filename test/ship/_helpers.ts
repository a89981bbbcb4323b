// Shared by the ship tests: the repo's Dockerfile read as instructions, stages and the runtime stage's image
// config (so other artefacts are compared with what it says; not a general Dockerfile parser), and du.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');

/** Dockerfile instructions, continuation lines joined, comments dropped. */
export function instructions(text: string): string[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The stages, each as its instructions (the FROM line first). */
export function stages(text: string): string[][] {
  const out: string[][] = [];
  for (const line of instructions(text)) {
    if (/^FROM\s/i.test(line)) out.push([line]);
    else out.at(-1)?.push(line);
  }
  return out;
}

/** What the final stage sets in the image config (the parts this project uses: exec forms, KEY=VALUE ENV). */
export interface RuntimeConfig {
  entrypoint: string[] | undefined;
  cmd: string[] | undefined;
  workdir: string | undefined;
  user: string | undefined;
  env: string[];
  /** COPY destinations, resolved against WORKDIR, in order. */
  copies: { sources: string[]; dest: string; from: string | undefined }[];
}

function execForm(rest: string, line: string): string[] {
  const parsed: unknown = JSON.parse(rest);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string'))
    throw new TypeError(`Dockerfile: not an exec-form array: ${line}`);
  return parsed;
}

export function runtimeConfig(text: string): RuntimeConfig {
  const cfg: RuntimeConfig = {
    entrypoint: undefined,
    cmd: undefined,
    workdir: undefined,
    user: undefined,
    env: [],
    copies: [],
  };
  const setEnv = (key: string, value: string): void => {
    cfg.env = [...cfg.env.filter((e) => !e.startsWith(`${key}=`)), `${key}=${value}`];
  };
  for (const line of stages(text).at(-1)!.slice(1)) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, op, rest] = [m[0], m[1]!.toUpperCase(), m[2]!.trim()];
    if (op === 'ENTRYPOINT') cfg.entrypoint = execForm(rest, line);
    else if (op === 'CMD') cfg.cmd = execForm(rest, line);
    else if (op === 'USER') cfg.user = rest;
    else if (op === 'WORKDIR') cfg.workdir = rest.startsWith('/') ? rest : join(cfg.workdir ?? '/', rest);
    else if (op === 'ENV') {
      const pairs = [...rest.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)];
      if (pairs.length === 0) {
        const [key, ...value] = rest.split(/\s+/);
        setEnv(key!, value.join(' '));
      } else for (const p of pairs) setEnv(p[1]!, p[2]!.replace(/^"(.*)"$/, '$1'));
    } else if (op === 'COPY') {
      const words = rest.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      const dest = paths.at(-1)!;
      cfg.copies.push({
        sources: paths.slice(0, -1),
        dest: dest.startsWith('/') ? dest : join(cfg.workdir ?? '/', dest), // join keeps a trailing slash
        from,
      });
    }
  }
  return cfg;
}

/** The bytes of the regular files below dir. */
export function duBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) total += duBytes(p);
    else if (entry.isFile()) total += statSync(p).size;
  }
  return total;
}

/**
 * The src/ directories the image leaves out: .dockerignore's `src/NAME/` lines after it lets src/ in (the
 * file scripts/build-image.sh reads too).
 */
export function imageLeavesOut(): string[] {
  const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8');
  return [...ignore.matchAll(/^(src\/[\w.-]+)\/*$/gm)].map((m) => m[1]!);
}
