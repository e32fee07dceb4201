#!/usr/bin/env node
// Runs a TypeScript file (e.g. the benchmark) through tsx's loader: `node bin/run-ts.js bench/run.ts`.
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

register();
const file = process.argv[2];
if (!file) {
  console.error('usage: run-ts FILE.ts [args...]');
  process.exit(1);
}
await import(pathToFileURL(resolve(file)).href);
