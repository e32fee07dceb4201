import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAppPassword } from '../../src/flows/app-passwords.js';
import { findTenant } from '../../src/flows/tenants.js';
import { openCliSession, type CliSession } from '../support/cli.js';

/**
 * `countersign app-password create|list|revoke` as an administrator runs them: the real CLI in a
 * child process on an embedded data directory; an in-process context on the same store checks
 * that the password it printed signs a legacy client in.
 */
const SLOW = 120_000;

let session: CliSession;
const cli = (args: string[]) => session.cli(args);

beforeAll(async () => {
  session = await openCliSession();
});
afterAll(async () => {
  await session.close();
});

describe('countersign app-password (CLI)', () => {
  it(
    'is refused while the tenant does not allow it; creates (printed once), lists without the password, and revokes one or all',
    async () => {
      expect((await cli(['tenant', 'create', 'acme'])).code).toBe(0);
      expect((await cli(['user', 'add', '--tenant', 'acme', 'bob@acme.com', '--state', 'enforced'])).code).toBe(0);
      const off = await cli(['app-password', 'create', '--tenant', 'acme', 'bob@acme.com', 'iPhone Mail']);
      expect(off.code).toBe(1);
      expect(off.stderr).toMatch(/^countersign: app passwords are turned off for tenant acme.*app_passwords_allowed=true.*\n$/);
      expect((await cli(['settings', 'set', '--tenant', 'acme', 'app_passwords_allowed=true'])).code).toBe(0);

      const created = await cli(['app-password', 'create', '--tenant', 'acme', 'bob@acme.com', 'iPhone Mail', '--json']);
      expect(created.code).toBe(0);
      const body = JSON.parse(created.stdout) as { id: string; name: string; password: string; created_at: string };
      expect(body).toEqual({ id: expect.any(String), name: 'iPhone Mail', password: expect.stringMatching(/^[a-z]{4}( [a-z]{4}){6}$/), created_at: expect.any(String) });

      const ctx = await session.context();
      const tenant = await findTenant(ctx.services, 'acme');
      expect(await verifyAppPassword(ctx.services, { kind: 'system' }, tenant, { username: 'bob@acme.com', password: body.password })).toEqual({ result: 'approved', reason: 'approved' });

      const listed = await cli(['app-password', 'list', '--tenant', 'acme', 'bob@acme.com', '--json']);
      expect(listed.code).toBe(0);
      expect(listed.stdout).not.toContain(body.password.slice(0, 9));
      expect(JSON.parse(listed.stdout)).toEqual([{ id: body.id, name: 'iPhone Mail', created_at: body.created_at, last_used_at: expect.any(String), last_used_ip: null }]);

      const neither = await cli(['app-password', 'revoke', '--tenant', 'acme', 'bob@acme.com']);
      expect(neither.code).toBe(1);
      expect(neither.stderr).toMatch(/^countersign: id: name one app password/);
      expect((await cli(['app-password', 'revoke', '--tenant', 'acme', 'bob@acme.com', 'iPhone Mail'])).stdout).toBe('revoked app password iPhone Mail of bob@acme.com\n');
      expect(await verifyAppPassword(ctx.services, { kind: 'system' }, tenant, { username: 'bob@acme.com', password: body.password })).toEqual({ result: 'denied', reason: 'invalid_password' });
      const all = await cli(['app-password', 'revoke', '--tenant', 'acme', 'bob@acme.com', '--all', '--json']);
      expect(JSON.parse(all.stdout)).toEqual({ revoked: 0 });
    },
    SLOW,
  );
});
