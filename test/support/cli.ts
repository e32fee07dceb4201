import { execFile } from 'node:child_process';
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
  /** The in-process view of the same store, its clock kept with the children's real one. */
  context(): Promise<TestContext>;
  close(): Promise<void>;
}

export async function openCliSession(): Promise<CliSession> {
  const location = await makeStoreLocation('sqlite');
  let ctx: TestContext | undefined;
  return {
    location,
    cli: (args, input) => runCli(location.dataDir, args, input),
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
