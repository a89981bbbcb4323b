#!/usr/bin/env node
// Launcher for the tollgate CLI: the sources are TypeScript run by Node 24's built-in type stripping.
import { loadInstalledTypeScript } from './_installed.js';

const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(
    `tollgate needs Node.js 24 or newer (this is ${process.version}); run it through npm or npx.\n`,
  );
  process.exit(1);
}
loadInstalledTypeScript();
await import('../src/cli/main.ts');
