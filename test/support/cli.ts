import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { createTestContext, fakeClock, makeStoreLocation, type TestContext, type TestStoreLocation } from './harness.js';

/**
 * The real `countersign` CLI in a child process, as an administrator runs it, for the CLI tests:
 * on the data directory given (an embedded store), with no COUNTERSIGN_* variable from the test
 * environment, so what is under test is the command line and nothing else.
 */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The test process's environment without its COUNTERSIGN_* variables. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('COUNTERSIGN_')) delete env[name];
  return { ...env, ...extra };
}

/** Runs `countersign ARGS --data-dir DIR`; `input` is written to its stdin (else stdin is closed at once). */
export function runCli(dataDir: string, args: readonly string[], input = '', env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['bin/countersign.js', ...args, '--data-dir', dataDir], { cwd: ROOT, env: childEnv(env), timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/**
 * Starts `countersign serve --port 0 --host 127.0.0.1 --data-dir DIR` and resolves once it has
 * printed where its API documentation is; rejects if it exits first or does not start in 60 s.
 */
export async function serveCli(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['bin/countersign.js', 'serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir], { cwd: ROOT, env: childEnv(env) });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start:\n${out}`)), 60_000);
    child.stdout.on('data', () => {
      if (out.includes('API documentation')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${String(code)}:\n${out}`)));
  });
  return child;
}

/** A failed command: exit code 1 and one line on stderr, matching `pattern` when given. */
export function oneLineError(result: CliResult, pattern?: RegExp): void {
  expect(result.code).toBe(1);
  if (pattern !== undefined) expect(result.stderr).toMatch(pattern);
  expect(result.stderr.split('\n')).toHaveLength(2);
}

/**
 * A CLI test's store: an embedded data directory the child processes share with an in-process
 * context (opened once the CLI has created the store) that checks what they did.
 */
export interface CliSession {
  readonly location: TestStoreLocation;
  cli(args: readonly string[], input?: string): Promise<CliResult>;
  /** `countersign serve` on the same store (see serveCli); the caller stops it. */
  serve(): Promise<ChildProcess>;
  /** The in-process view of the same store, its clock kept with the children's real one. */
  context(): Promise<TestContext>;
  close(): Promise<void>;
}

/** `env` is added to every child's environment (after the COUNTERSIGN_* variables are removed). */
export async function openCliSession(env: NodeJS.ProcessEnv = {}): Promise<CliSession> {
  const location = await makeStoreLocation('sqlite');
  let ctx: TestContext | undefined;
  return {
    location,
    cli: (args, input) => runCli(location.dataDir, args, input, env),
    serve: () => serveCli(location.dataDir, env),
    async context() {
      ctx ??= await createTestContext({ location, clock: fakeClock(Date.now()) });
      ctx.clock.set(Date.now());
      return ctx;
    },
    async close() {
      await ctx?.close();
      await location.drop();
    },
  };
}
