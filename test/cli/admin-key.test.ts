import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/http/server.js';
import { oneLineError, openCliSession, type CliSession } from '../support/cli.js';

/**
 * `countersign admin-key create --role R [--tenant T] NAME` and the global `--reason`, as an
 * administrator runs them: the real CLI in a child process; an in-process server on the same
 * store checks that the role it stored is the role the key has, and the audit log that the
 * reason was recorded.
 */
const SLOW = 180_000;

let session: CliSession;

beforeAll(async () => {
  session = await openCliSession();
});
afterAll(async () => {
  await session.close();
});

describe('countersign admin-key (CLI)', () => {
  it(
    'creates keys with a role (printing what it always printed), lists roles, records --reason, and refuses a bad role or reason',
    async () => {
      expect((await session.cli(['tenant', 'create', 'acme'])).code).toBe(0);
      const reader = await session.cli(['admin-key', 'create', '--tenant', 'acme', '--role', 'reader', '--reason', 'INC-7: quarterly access review', 'auditor', '--json']);
      expect(reader.code).toBe(0);
      const readerKey = JSON.parse(reader.stdout) as { id: string; api_key: string };
      expect(Object.keys(readerKey).sort()).toEqual(['api_key', 'id']);
      const owner = await session.cli(['admin-key', 'create', 'owner']);
      expect(owner.code).toBe(0);
      expect(owner.stdout).toMatch(/^created administrator key [0-9a-f-]{36}\nAPI key \(shown once\): csa_[A-Za-z0-9_-]{43}\n$/);

      oneLineError(await session.cli(['admin-key', 'create', '--role', 'owner', 'x']), /^countersign: --role: must be one of reader, authentication_admin, global_admin\n$/);
      oneLineError(await session.cli(['admin-key', 'create', '--reason', 'two\nlines', 'x']), /^countersign: --reason: must not contain control characters\n$/);
      oneLineError(await session.cli(['admin-key', 'create', '--reason', 'r'.repeat(501), 'x']), /^countersign: --reason: must be at most 500 characters\n$/);

      const listed = await session.cli(['admin-key', 'list', '--json']);
      expect(listed.code).toBe(0);
      const keys = JSON.parse(listed.stdout) as { id: string; name: string; role: string; tenant: string | null }[];
      expect(keys.map((k) => [k.name, k.role]).sort()).toEqual([
        ['auditor', 'reader'],
        ['owner', 'global_admin'],
      ]);
      expect(listed.stdout).not.toContain(readerKey.api_key);
      expect((await session.cli(['admin-key', 'list'])).stdout).toMatch(/auditor {2}\S+ {2}reader {2}created/);

      const ctx = await session.context();
      const created = await ctx.services.db.selectFrom('audit_events').select(['actor', 'detail']).where('action', '=', 'admin_key.created').where('target', '=', readerKey.id).executeTakeFirstOrThrow();
      expect(created.actor).toBe('cli');
      expect(JSON.parse(created.detail)).toMatchObject({ name: 'auditor', role: 'reader', actor_reason: 'INC-7: quarterly access review' });
      // Nothing was created by the refused commands.
      expect(await ctx.services.db.selectFrom('api_keys').select('name').where('name', '=', 'x').execute()).toEqual([]);

      // The key has the role the CLI gave it.
      const app = await buildServer(ctx.services);
      try {
        const as = async (method: 'GET' | 'POST', url: string, body?: Record<string, unknown>) =>
          (await app.inject({ method, url, headers: { authorization: `Bearer ${readerKey.api_key}` }, ...(body === undefined ? {} : { payload: body }) })).statusCode;
        expect(await as('GET', '/v1/admin/users')).toBe(200);
        expect(await as('POST', '/v1/admin/users', { username: 'mallory@acme.com' })).toBe(403);
      } finally {
        await app.close();
      }
    },
    SLOW,
  );
});
