import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEnrollment } from '../../src/flows/enrollment.js';
import { oneLineError, openCliSession, type CliSession } from '../support/cli.js';

/**
 * `countersign enroll …` and `countersign phone preregister` as an administrator runs them: the
 * real CLI in a child process on an embedded data directory; an in-process context on the same
 * store checks that a printed link opens the self-service API.
 */
const SLOW = 300_000;

// Not `session`: the tests below name the enrollment session so.
let cliSession: CliSession;
const cli = (args: string[]) => cliSession.cli(args);
const context = () => cliSession.context();

beforeAll(async () => {
  cliSession = await openCliSession();
});
afterAll(async () => {
  await cliSession.close();
});

describe('countersign enroll (CLI)', () => {
  it(
    'link prints the URL once (JSON), refuses a bad --expires naming it, lists without the token, and revokes',
    async () => {
      expect((await cli(['tenant', 'create', 'acme'])).code).toBe(0);
      expect((await cli(['user', 'add', '--tenant', 'acme', 'bob@acme.com', '--state', 'enabled'])).code).toBe(0);
      oneLineError(await cli(['enroll', 'link', '--tenant', 'acme', 'bob@acme.com', '--expires', '40d']), /^countersign: --expires: must be from 60s to 30d \(30 days\), e.g. 7d, 12h or 90m; got 40d\n$/);
      oneLineError(await cli(['enroll', 'link', '--tenant', 'acme', 'bob@acme.com', '--expires', 'soon']), /^countersign: --expires: must be a duration/);
      oneLineError(await cli(['enroll', 'link', '--tenant', 'acme', 'bob@acme.com', '--methods', 'totp,fax']), /^countersign: methods: fax cannot be registered through a link/);

      const before = Date.now();
      const created = await cli(['enroll', 'link', '--tenant', 'acme', 'bob@acme.com', '--expires', '2d', '--methods', 'totp', '--json']);
      expect(created.code).toBe(0);
      const link = JSON.parse(created.stdout) as { id: string; token: string; enrollment_url: string; methods: string[]; expires_at: string };
      expect(link.methods).toEqual(['totp']);
      expect(link.enrollment_url).toMatch(/^http:\/\/localhost:8080\/authenticator\/#enroll=cse_[A-Za-z0-9_-]{43}$/);
      expect(link.enrollment_url.endsWith(link.token)).toBe(true);
      const expires = Date.parse(link.expires_at);
      expect(expires - before).toBeGreaterThanOrEqual(2 * 86_400_000 - 1000);
      expect(expires - before).toBeLessThan(2 * 86_400_000 + 60_000);

      const c = await context();
      const session = await openEnrollment(c.services, link.token);
      expect(session.user.username).toBe('bob@acme.com');
      expect(session.methods).toEqual(['totp']);

      const listed = await cli(['enroll', 'list', '--tenant', 'acme', 'bob@acme.com']);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(`${link.id}  open  totp`);
      expect(listed.stdout).not.toContain(link.token);

      const revoked = await cli(['enroll', 'revoke', '--tenant', 'acme', 'bob@acme.com', '--json']);
      expect(revoked.code).toBe(0);
      expect(JSON.parse(revoked.stdout)).toMatchObject({ id: link.id, status: 'revoked' });
      c.clock.set(Date.now());
      await expect(openEnrollment(c.services, link.token)).rejects.toThrow('revoked by an administrator');
      oneLineError(await cli(['enroll', 'revoke', '--tenant', 'acme', 'bob@acme.com']), /^countersign: an open enrollment link of user bob@acme\.com not found/);
    },
    SLOW,
  );

  it(
    'phone preregister, then the campaign: settings, the targeted users, and links for all of them with progress on stderr',
    async () => {
      expect((await cli(['user', 'add', '--tenant', 'acme', 'carol@acme.com', '--state', 'enforced'])).code).toBe(0);
      oneLineError(await cli(['phone', 'preregister', '--tenant', 'acme', 'carol@acme.com', '+14255550111', '--reason', ' ']), /^countersign: (--)?reason: /);
      const pre = await cli(['phone', 'preregister', '--tenant', 'acme', 'carol@acme.com', '+14255550111', '--reason', 'confirmed at the help desk', '--json']);
      expect(pre.code).toBe(0);
      expect(JSON.parse(pre.stdout)).toEqual({ type: 'mobile', number: '+14255550111', verified: true, replaced: false });

      const off = await cli(['enroll', 'campaign', '--tenant', 'acme']);
      expect(off.code).toBe(0);
      expect(off.stdout).toContain('campaign off: nudging to push');
      expect(off.stdout).toContain('  carol@acme.com  sms,voice');
      oneLineError(await cli(['enroll', 'campaign', '--tenant', 'acme', '--create-links']), /^countersign: the registration campaign of tenant acme is off/);
      oneLineError(await cli(['enroll', 'campaign-set', '--tenant', 'acme', '--snooze-days', '20']), /^countersign: registration_campaign\.snooze_days: must be a whole number from 0 to 14/);
      const set = await cli(['enroll', 'campaign-set', '--tenant', 'acme', '--enable', '--snooze-days', '3', '--json']);
      expect(set.code).toBe(0);
      expect(JSON.parse(set.stdout)).toEqual({ enabled: true, method: 'push', snooze_days: 3, excluded_groups: [] });

      const made = await cli(['enroll', 'campaign', '--tenant', 'acme', '--create-links', '--expires', '1d', '--json']);
      expect(made.code).toBe(0);
      expect(made.stderr).toBe('1/1 users\n');
      const result = JSON.parse(made.stdout) as { count: number; skipped: number; links: { username: string; enrollment_url: string }[] };
      expect(result).toMatchObject({ count: 1, skipped: 0, links: [{ username: 'carol@acme.com' }] });
      const c = await context();
      const session = await openEnrollment(c.services, new URL(result.links[0]?.enrollment_url ?? '').hash.replace('#enroll=', ''));
      expect(session.methods).toEqual(['push']);
      const again = await cli(['enroll', 'campaign', '--tenant', 'acme', '--create-links']);
      expect(again.stdout).toContain('created 0 enrollment links (1 user already had an open one)');
    },
    SLOW,
  );
});
