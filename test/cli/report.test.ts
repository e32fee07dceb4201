import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApplication } from '../../src/flows/api-keys.js';
import { preauth } from '../../src/flows/preauth.js';
import { createTenant, findTenant } from '../../src/flows/tenants.js';
import { createUser } from '../../src/flows/users.js';
import { openCliSession, type CliSession } from '../support/cli.js';
import type { TestContext } from '../support/harness.js';

/**
 * `countersign report …` and `countersign status` as an administrator runs them: the real CLI in
 * a child process on an embedded data directory; sign-ins are made in-process on the same store.
 */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const SLOW = 300_000;

let session: CliSession;
let ctx: TestContext;
const cli = (args: string[]) => session.cli(args);

beforeAll(async () => {
  session = await openCliSession();
  // The CLI runs on the real clock: the in-process sign-ins happen now too.
  ctx = await session.context();
  const created = await createTenant(ctx.services, { kind: 'cli' }, 'acme');
  const tenant = await findTenant(ctx.services, created.id);
  const app = await createApplication(ctx.services, { kind: 'cli' }, tenant, 'vpn');
  const principal = { kind: 'application', keyId: 'k', applicationId: app.id, tenantId: tenant.id } as const;
  await createUser(ctx.services, { kind: 'cli' }, tenant, { username: 'alice@acme.com', mfa_state: 'disabled' });
  await createUser(ctx.services, { kind: 'cli' }, tenant, { username: '=evil@acme.com', mfa_state: 'disabled' });
  for (const username of ['alice@acme.com', '=evil@acme.com', 'nobody@acme.com']) await preauth(ctx.services, principal, tenant, { username });
}, SLOW);
afterAll(async () => {
  await session.close();
});

describe('countersign report (CLI)', () => {
  it(
    'prints sign-ins as JSON, a table or CSV; pages with --cursor; refuses bad filters naming them',
    async () => {
      const json = await cli(['report', 'sign-ins', '--tenant', 'acme', '--json']);
      expect(json.stderr).toBe('');
      expect(json.code).toBe(0);
      const body = JSON.parse(json.stdout) as { rows: { username: string; result: string; application: string; method: string }[]; next_cursor: string | null };
      expect(body.rows.map((r) => [r.username, r.result, r.application, r.method])).toEqual([
        ['nobody@acme.com', 'denied', 'vpn', 'none'],
        ['=evil@acme.com', 'approved', 'vpn', 'none'],
        ['alice@acme.com', 'approved', 'vpn', 'none'],
      ]);
      expect(body.next_cursor).toBeNull();

      const first = JSON.parse((await cli(['report', 'sign-ins', '--tenant', 'acme', '--limit', '2', '--result', 'approved', '--json'])).stdout) as typeof body;
      expect(first.rows.map((r) => r.username)).toEqual(['=evil@acme.com', 'alice@acme.com']);
      expect(first.next_cursor).toBeNull();
      const page1 = JSON.parse((await cli(['report', 'sign-ins', '--tenant', 'acme', '--limit', '2', '--json'])).stdout) as typeof body;
      const page2 = JSON.parse((await cli(['report', 'sign-ins', '--tenant', 'acme', '--limit', '2', '--cursor', page1.next_cursor ?? '', '--json'])).stdout) as typeof body;
      expect([...page1.rows, ...page2.rows]).toEqual(body.rows);
      expect(page2.next_cursor).toBeNull();

      const csv = await cli(['report', 'sign-ins', '--tenant', 'acme', '--csv', '--username', '=EVIL@acme.com']);
      expect(csv.code).toBe(0);
      const records = parse(csv.stdout);
      expect(records[0]).toEqual(['at', 'username', 'application', 'kind', 'method', 'result', 'reason', 'ip', 'challenge_id']);
      expect(records.slice(1).map((r) => r[1])).toEqual(["'=evil@acme.com"]);

      const human = await cli(['report', 'summary', '--tenant', 'acme']);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/^day {9}method {2}result {4}count\n\d{4}-\d{2}-\d{2} {2}none {4}approved {2}2\n/);

      const wrong = await cli(['report', 'fraud', '--tenant', 'acme', '--result', 'denied']);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^countersign: result: is not a filter of the fraud report/);
      const badDate = await cli(['report', 'sign-ins', '--tenant', 'acme', '--from', 'last tuesday']);
      expect(badDate.code).toBe(1);
      expect(badDate.stderr).toMatch(/^countersign: from: must be an ISO 8601 time/);
      const unknown = await cli(['report', 'everything', '--tenant', 'acme']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^countersign: kind: must be one of sign-ins, summary, fraud/);
    },
    SLOW,
  );

  it(
    'usage with a seat count set from the CLI, and status',
    async () => {
      for (const args of [
        ['settings', 'set', '--tenant', 'acme', 'seats=1'],
        ['user', 'set-state', '--tenant', 'acme', 'alice@acme.com', 'enabled'],
        ['user', 'set-state', '--tenant', 'acme', '=evil@acme.com', 'enforced'],
      ]) {
        const done = await cli(args);
        expect(done.stderr, args.join(' ')).toBe('');
        expect(done.code).toBe(0);
      }
      const usage = JSON.parse((await cli(['report', 'usage', '--tenant', 'acme', '--json'])).stdout) as { rows: { enabled_users: number; exceeded: boolean }[]; current: Record<string, unknown> };
      expect(usage.current).toMatchObject({ enabled_users: 2, seats: 1, exceeded: true });
      expect(usage.rows[0]).toMatchObject({ enabled_users: 2, exceeded: true });
      expect(usage.rows).toHaveLength(30);
      const events = await ctx.services.db.selectFrom('audit_events').select('action').where('action', '=', 'usage.seats_exceeded').execute();
      expect(events).toHaveLength(1);

      const status = await cli(['status', '--json']);
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ version: VERSION, uptime_seconds: null, store: { dialect: 'sqlite' }, migrations: { pending: [] }, tenant: null });
      const text = await cli(['status']);
      expect(text.stdout).toMatch(new RegExp(`^countersign ${VERSION.replace(/\./g, '\\.')}\nstore: sqlite .+\nmigrations: \\d+ applied\nqueues: challenges_open \\d+`));
    },
    SLOW,
  );
});
