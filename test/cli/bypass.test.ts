import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preauth } from '../../src/flows/preauth.js';
import { checkRememberToken, issueRememberToken } from '../../src/flows/remembered-devices.js';
import { findTenant } from '../../src/flows/tenants.js';
import { findUser } from '../../src/flows/users.js';
import { openCliSession, type CliSession } from '../support/cli.js';
import type { TestContext } from '../support/harness.js';

/**
 * `countersign bypass grant|list|revoke`, `countersign user bypass`, and `countersign user
 * unlock|unblock|blocked|forget-devices` as an administrator runs them: the real CLI in a child
 * process on an embedded data directory; an in-process context on the same store plays the
 * sign-ins that use what the CLI changed.
 */
// Generous: without a fresh dist/ each command starts through tsx's loader, seconds apiece on a busy machine.
const SLOW = 300_000;

let session: CliSession;
let ctx: TestContext;
const cli = (args: string[]) => session.cli(args);

async function json(args: string[]): Promise<any> {
  const result = await cli([...args, '--json']);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout);
}

beforeAll(async () => {
  session = await openCliSession();
  expect((await cli(['tenant', 'create', 'acme'])).code).toBe(0);
  for (const username of ['bob@acme.com', 'carol@acme.com', 'dave@acme.com']) expect((await cli(['user', 'add', '--tenant', 'acme', username, '--state', 'enforced'])).code).toBe(0);
  ctx = await session.context();
}, SLOW);
afterAll(async () => {
  await session.close();
});

describe('countersign bypass (CLI)', () => {
  it(
    'grants with a reason (printed as JSON), refuses bad input naming the field, lists with filters, and revokes once',
    async () => {
      const granted = await json(['bypass', 'grant', '--tenant', 'acme', 'bob@acme.com', '--reason', 'lost phone, ticket 4711', '--seconds', '600']);
      expect(granted).toEqual({
        id: expect.any(String),
        username: 'bob@acme.com',
        reason: 'lost phone, ticket 4711',
        granted_by: 'cli',
        status: 'active',
        created_at: expect.any(String),
        expires_at: expect.any(String),
        used_at: null,
        used_by: null,
      });
      expect(Date.parse(granted.expires_at) - Date.parse(granted.created_at)).toBe(600_000);

      const noReason = await cli(['bypass', 'grant', '--tenant', 'acme', 'bob@acme.com']);
      expect(noReason.code).toBe(1);
      expect(noReason.stderr).toContain("required option '--reason <text>' not specified");
      for (const seconds of ['1801', 'abc']) {
        const refused = await cli(['bypass', 'grant', '--tenant', 'acme', 'bob@acme.com', '--reason', 'x', '--seconds', seconds]);
        expect(refused, seconds).toEqual({ code: 1, stdout: '', stderr: 'countersign: seconds: must be a whole number from 1 to 1800\n' });
      }
      expect((await cli(['bypass', 'grant', '--tenant', 'acme', 'nobody@acme.com', '--reason', 'x'])).stderr).toMatch(/^countersign: .*nobody@acme\.com.*\n$/);

      expect(await json(['bypass', 'list', '--tenant', 'acme'])).toEqual([granted]);
      expect(await json(['bypass', 'list', '--tenant', 'acme', '--status', 'used'])).toEqual([]);
      expect(await cli(['bypass', 'list', '--tenant', 'acme', '--status', 'open'])).toEqual({ code: 1, stdout: '', stderr: 'countersign: status: must be active, used, expired or revoked\n' });
      const human = await cli(['bypass', 'list', '--tenant', 'acme']);
      expect(human.stdout).toBe(`${granted.id}  bob@acme.com  active  expires ${granted.expires_at}  granted by cli: lost phone, ticket 4711\n`);

      expect(await cli(['bypass', 'revoke', '--tenant', 'acme', granted.id])).toEqual({ code: 0, stdout: `revoked bypass ${granted.id}\n`, stderr: '' });
      expect(await cli(['bypass', 'revoke', '--tenant', 'acme', granted.id])).toEqual({ code: 1, stdout: '', stderr: 'countersign: the bypass is already revoked\n' });
      expect((await json(['bypass', 'list', '--tenant', 'acme', '--status', 'revoked'])).map((b: { id: string }) => b.id)).toEqual([granted.id]);
      const tenant = await findTenant(ctx.services, 'acme');
      expect((await preauth(ctx.services, { kind: 'system' }, tenant, { username: 'bob@acme.com' })).reason).toBe('registration_required');
    },
    SLOW,
  );

  it(
    '`user bypass` (the issue’s spelling) grants one that the next sign-in uses up',
    async () => {
      const granted = await json(['user', 'bypass', '--tenant', 'acme', 'carol@acme.com', '--reason', 'new phone']);
      expect(granted).toMatchObject({ username: 'carol@acme.com', status: 'active', reason: 'new phone' });
      expect(Date.parse(granted.expires_at) - Date.parse(granted.created_at)).toBe(300_000);
      const tenant = await findTenant(ctx.services, 'acme');
      expect(await preauth(ctx.services, { kind: 'system' }, tenant, { username: 'carol@acme.com' })).toMatchObject({ result: 'allow', reason: 'bypass' });
      expect((await preauth(ctx.services, { kind: 'system' }, tenant, { username: 'carol@acme.com' })).reason).toBe('registration_required');
      expect(await json(['bypass', 'list', '--tenant', 'acme', '--username', 'carol@acme.com', '--status', 'used'])).toEqual([{ ...granted, status: 'used', used_at: expect.any(String) }]);
    },
    SLOW,
  );
});

describe('countersign user unlock|unblock|blocked|forget-devices (CLI)', () => {
  it(
    'lists blocks and lockouts, lifts each once (a second time fails), and forgets remembered devices',
    async () => {
      expect(await json(['user', 'blocked', '--tenant', 'acme'])).toEqual([]);
      expect((await cli(['user', 'block', '--tenant', 'acme', 'carol@acme.com'])).code).toBe(0);
      const tenant = await findTenant(ctx.services, 'acme');
      const dave = await findUser(ctx.services.db, tenant.id, 'dave@acme.com');
      const lockedUntil = Date.now() + 15 * 60_000;
      await ctx.services.db.updateTable('users').set({ locked_until: lockedUntil, failed_count: 0 }).where('id', '=', dave.id).execute();

      const listed = await json(['user', 'blocked', '--tenant', 'acme']);
      expect(listed).toEqual([
        { user_id: expect.any(String), username: 'carol@acme.com', kind: 'blocked', reason: 'admin', since: expect.any(String), until: null },
        { user_id: dave.id, username: 'dave@acme.com', kind: 'locked_out', reason: 'failed_attempts', since: null, until: new Date(lockedUntil).toISOString() },
      ]);
      expect((await cli(['user', 'blocked', '--tenant', 'acme'])).stdout).toMatch(/^carol@acme\.com {2}blocked {2}reason=admin {2}since \S+ {2}until unblocked by an administrator\ndave@acme\.com {2}locked_out {2}reason=failed_attempts {2}since unknown {2}until \S+\n$/);

      expect(await json(['user', 'unblock', '--tenant', 'acme', 'carol@acme.com'])).toMatchObject({ username: 'carol@acme.com', status: 'active', blocked_reason: null });
      expect(await cli(['user', 'unblock', '--tenant', 'acme', 'carol@acme.com'])).toEqual({ code: 1, stdout: '', stderr: 'countersign: user carol@acme.com is not blocked: there is nothing to unblock\n' });
      expect(await json(['user', 'unlock', '--tenant', 'acme', 'dave@acme.com'])).toMatchObject({ username: 'dave@acme.com', status: 'active', locked_until: null, failed_count: 0 });
      expect(await cli(['user', 'unlock', '--tenant', 'acme', 'dave@acme.com'])).toEqual({
        code: 1,
        stdout: '',
        stderr: 'countersign: user dave@acme.com is not locked out and has no failed attempts counted: there is nothing to unlock\n',
      });
      expect(await json(['user', 'blocked', '--tenant', 'acme'])).toEqual([]);
      const audited = await ctx.services.db.selectFrom('audit_events').select(['action', 'actor']).where('action', 'in', ['user.unblocked', 'user.unlocked']).orderBy('seq').execute();
      expect(audited).toEqual([
        { action: 'user.unblocked', actor: 'cli' },
        { action: 'user.unlocked', actor: 'cli' },
      ]);

      // Remembered devices: a token issued for an application, forgotten by the CLI, refused at once.
      expect((await cli(['settings', 'set', '--tenant', 'acme', 'remember_mfa_days=30'])).code).toBe(0);
      const app = await json(['app', 'create', '--tenant', 'acme', 'vpn']);
      const remembering = await findTenant(ctx.services, 'acme');
      const now = ctx.clock.ms();
      const token = await issueRememberToken(ctx.services, remembering, dave.id, app.id, now);
      expect(await checkRememberToken(ctx.services, remembering, dave.id, app.id, token, now)).toBe('valid');
      expect(await json(['user', 'forget-devices', '--tenant', 'acme', 'dave@acme.com'])).toEqual({ revoked: 1 });
      expect(await checkRememberToken(ctx.services, remembering, dave.id, app.id, token, now)).toBe('not_valid');
      expect(await cli(['user', 'forget-devices', '--tenant', 'acme', 'dave@acme.com'])).toEqual({ code: 0, stdout: 'revoked 0 remembered devices of dave@acme.com\n', stderr: '' });
    },
    SLOW,
  );
});
