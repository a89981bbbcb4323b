// Lets the CLI run from an npm install. Node strips TypeScript types itself, but refuses to for files under
// node_modules (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING), which is where `npm install` puts this package.
// Only then does this register a load hook that strips the package's own .ts files (never a dependency's);
// in a git checkout it does nothing. Must not change how anything else loads.
import { readFileSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const root = new URL('..', import.meta.url).href;

export function loadInstalledTypeScript() {
  if (!root.includes('/node_modules/')) return;
  // Both APIs print one ExperimentalWarning per process; the user asked for tollgate, not for that notice.
  const emitWarning = process.emitWarning;
  process.emitWarning = (warning, ...rest) => {
    const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
    if (type === 'ExperimentalWarning') return;
    emitWarning.call(process, warning, ...rest);
  };
  try {
    module.registerHooks({
      load(url, context, nextLoad) {
        const own = url.startsWith(root) && !url.slice(root.length).includes('node_modules/');
        if (!own || !url.endsWith('.ts')) return nextLoad(url, context);
        const source = readFileSync(fileURLToPath(url), 'utf8');
        return { format: 'module', source: module.stripTypeScriptTypes(source), shortCircuit: true };
      },
    });
    module.stripTypeScriptTypes('');
  } finally {
    process.emitWarning = emitWarning;
  }
}
