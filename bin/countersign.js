#!/usr/bin/env node
// The `countersign` command. It runs the compiled JavaScript in dist/ when that is at least as
// new as every source file (`npm ci` and `npm start` build it), and otherwise the TypeScript
// sources through tsx's loader — slower to start, but never stale.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function distIsFresh() {
  const stamp = join(root, 'dist', '.built');
  return existsSync(join(root, 'dist', 'cli', 'main.js')) && existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource(join(root, 'src'));
}

let main;
if (distIsFresh()) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
