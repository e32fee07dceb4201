import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushAnswerMessage } from '../../src/core/push-signature.js';
import { newKeyPair, signText } from '../support/device.js';
import { makeStoreLocation, TEST_PG_URL, type TestStoreLocation } from '../support/harness.js';

/**
 * Two server processes over one PostgreSQL: a push answered through one wakes, within
 * milliseconds, an application long-polling on the other (LISTEN/NOTIFY, store/pg-notifier.ts).
 * PostgreSQL only: SQLite is one process's store.
 */
describe.skipIf(TEST_PG_URL === undefined)('several server processes over one PostgreSQL', () => {
  let location: TestStoreLocation;
  const children: ChildProcess[] = [];

  async function serve(): Promise<{ base: string; output: () => string }> {
    const env: NodeJS.ProcessEnv = { ...process.env, COUNTERSIGN_LOG_LEVEL: 'warn', COUNTERSIGN_DATABASE_URL: location.databaseUrl };
    const child = spawn(process.execPath, ['bin/countersign.js', 'serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', location.dataDir], { env });
    children.push(child);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start:\n${out}`)), 30_000);
      child.stdout.on('data', () => {
        const match = /serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (match?.[1] !== undefined && out.includes('API documentation')) {
          clearTimeout(timer);
          setTimeout(() => resolve(match[1] ?? ''), 200);
        }
      });
      child.once('exit', (code) => reject(new Error(`exited ${String(code)}:\n${out}`)));
    });
    return { base, output: () => out };
  }

  beforeAll(async () => {
    location = await makeStoreLocation('postgres');
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve(null) : c.once('exit', resolve)))));
    await location.drop();
  });

  it('a push approved through process A wakes the caller waiting on process B at once', async () => {
    const a = await serve();
    const adminKey = /(csa_[A-Za-z0-9_-]{43})/.exec(a.output())?.[1] ?? '';
    expect(adminKey).not.toBe('');
    const b = await serve();
    const call = async (base: string, key: string, method: string, path: string, body?: unknown) => {
      const response = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      return { status: response.status, body: (await response.json()) as any };
    };
    const appKey = (await call(a.base, adminKey, 'POST', '/v1/admin/applications?tenant=default', { name: 'vpn' })).body.api_key as string;
    expect((await call(a.base, adminKey, 'POST', '/v1/admin/users?tenant=default', { username: 'multi@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const link = (await call(a.base, adminKey, 'POST', '/v1/admin/users/multi@contoso.com/push/activation?tenant=default')).body.activation_url as string;
    const { privateKey, publicKey } = newKeyPair();
    const activated = await fetch(`${a.base}/v1/authenticator/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code: new URL(link).hash.replace('#activate=', ''), public_key: publicKey, name: 'phone' }),
    });
    const deviceId = ((await activated.json()) as { device_id: string }).device_id;

    for (let trial = 0; trial < 3; trial++) {
      const challenge = (await call(a.base, appKey, 'POST', '/v1/challenges', { username: 'multi@contoso.com', method: 'push' })).body as { id: string; number: number };
      const waiting = call(b.base, appKey, 'GET', `/v1/challenges/${challenge.id}?wait=20`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const timestamp = Date.now();
      const number = String(challenge.number);
      const answered = Date.now();
      const answer = await fetch(`${a.base}/v1/authenticator/challenges/${challenge.id}/answer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ device_id: deviceId, decision: 'approve', number, timestamp, signature: signText(privateKey, pushAnswerMessage(challenge.id, 'approve', number, timestamp)) }),
      });
      expect(answer.status).toBe(200);
      const woken = await waiting;
      const elapsed = Date.now() - answered;
      expect(woken.body).toMatchObject({ id: challenge.id, status: 'approved' });
      // The fallback re-read runs each second; a notification answers well before it.
      expect(elapsed).toBeLessThan(400);
    }
  }, 120_000);
});
