import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeStoreLocation, type TestStoreLocation } from '../support/harness.js';

/**
 * The real program, as a user runs it: `countersign serve` on a fresh store prints the first
 * administrator key once; a CLI command and the running server share the store.
 */
const run = promisify(execFile);
let location: TestStoreLocation;

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, COUNTERSIGN_LOG_LEVEL: 'warn' };
  delete env['COUNTERSIGN_DATABASE_URL'];
  if (location.databaseUrl !== undefined) env['COUNTERSIGN_DATABASE_URL'] = location.databaseUrl;
  return env;
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/countersign.js', ...args, '--data-dir', location.dataDir], { env: childEnv() });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

async function serve(): Promise<{ child: ChildProcess; output: () => string; base: string }> {
  const child = spawn(process.execPath, ['bin/countersign.js', 'serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', location.dataDir], { env: childEnv() });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start:\n${out}`)), 30_000);
    const check = (): void => {
      const match = /serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match?.[1] !== undefined && (out.includes('never again') || out.includes('API documentation'))) {
        clearTimeout(timer);
        // Let the rest of the banner arrive.
        setTimeout(() => resolve(match[1] ?? ''), 200);
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => reject(new Error(`exited ${String(code)}:\n${out}`)));
  });
  return { child, output: () => out, base };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  return exited;
}

beforeAll(async () => {
  location = await makeStoreLocation();
});
afterAll(async () => {
  await location.drop();
});

describe('countersign serve', () => {
  it('first start prints the administrator key once; later starts never again; CLI and server share the store', async () => {
    const first = await serve();
    const key = /csa_[A-Za-z0-9_-]{43}/.exec(first.output())?.[0];
    expect(key).toMatch(/^csa_/);
    expect(first.output()).toContain('created tenant "default"');
    const health = await fetch(`${first.base}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok' });
    const tenants = (await (await fetch(`${first.base}/v1/admin/tenants`, { headers: { authorization: `Bearer ${key ?? ''}` } })).json()) as { tenants: { name: string }[] };
    expect(tenants.tenants.map((t) => t.name)).toEqual(['default']);

    // The CLI writes to the store while the server runs; the server sees it at once.
    const added = await cli('user', 'add', '--tenant', 'default', 'bob@contoso.com', '--email', 'bob@contoso.com', '--state', 'enabled', '--json');
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ username: 'bob@contoso.com', email: 'bob@contoso.com', mfa_state: 'enabled' });
    const seen = await fetch(`${first.base}/v1/admin/users/bob@contoso.com?tenant=default`, { headers: { authorization: `Bearer ${key ?? ''}` } });
    expect(((await seen.json()) as { mfa_state: string }).mfa_state).toBe('enabled');
    expect(await stop(first.child)).toBe(0);

    const second = await serve();
    expect(second.output()).not.toMatch(/csa_/);
    const again = await fetch(`${second.base}/v1/admin/tenants`, { headers: { authorization: `Bearer ${key ?? ''}` } });
    expect(again.status).toBe(200);
    await stop(second.child);
  });
});

describe('the CLI contract (SPEC)', () => {
  it('tenant create, app create and user set-state print what SPEC says; errors exit 1 with one line', async () => {
    const tenant = await cli('tenant', 'create', 'contoso', '--json');
    expect(tenant.code).toBe(0);
    const created = JSON.parse(tenant.stdout) as { id: string; name: string };
    expect(Object.keys(created).sort()).toEqual(['id', 'name']);
    expect(created.name).toBe('contoso');

    const app = await cli('app', 'create', '--tenant', created.id, 'vpn', '--json');
    expect(app.code).toBe(0);
    const application = JSON.parse(app.stdout) as { id: string; api_key: string };
    expect(Object.keys(application).sort()).toEqual(['api_key', 'id']);
    expect(application.api_key).toMatch(/^csk_[A-Za-z0-9_-]{43}$/);

    expect((await cli('user', 'add', '--tenant', 'contoso', 'carol@contoso.com', '--json')).code).toBe(0);
    const state = await cli('user', 'set-state', '--tenant', 'contoso', 'carol@contoso.com', 'enforced');
    expect(state).toMatchObject({ code: 0, stdout: 'carol@contoso.com is now enforced\n' });

    const bad = await cli('user', 'set-state', '--tenant', 'contoso', 'carol@contoso.com', 'sometimes');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('countersign: state: must be one of disabled, enabled, enforced\n');
    const unknown = await cli('user', 'add', '--tenant', 'nowhere', 'x@y.z');
    expect(unknown).toMatchObject({ code: 1, stderr: 'countersign: tenant nowhere not found\n' });
    const duplicate = await cli('tenant', 'create', 'contoso');
    expect(duplicate).toMatchObject({ code: 1, stderr: 'countersign: tenant contoso already exists\n' });
  });

  it('user import reports each refused line and sets states from a CSV', async () => {
    const { writeFileSync } = await import('node:fs');
    const file = `${location.dataDir}/users.csv`;
    writeFileSync(file, 'username,display name,email,phone,state\ndave@contoso.com,Dave,dave@contoso.com,+14255550100,enabled\nbad user,,,,\neve@contoso.com,Eve,,,sometimes\n');
    const imported = await cli('user', 'import', '--tenant', 'contoso', file);
    expect(imported.code).toBe(0);
    expect(imported.stdout.split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(/^created 1, updated 0, refused 2 \(\d+\.\d s\)$/),
      'refused line 3: username: must be 1–256 characters without spaces or control characters (e.g. alice@contoso.com)',
      'refused line 4: state: must be one of disabled, enabled, enforced',
    ]);
    const shown = JSON.parse((await cli('user', 'show', '--tenant', 'contoso', 'dave@contoso.com', '--json')).stdout) as { phones: unknown[]; mfa_state: string };
    expect(shown).toMatchObject({ mfa_state: 'enabled', phones: [{ type: 'mobile', number: '+14255550100' }] });
  });
});
