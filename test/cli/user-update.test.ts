import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneLineError, openCliSession, type CliSession } from '../support/cli.js';

/** `countersign user update`: the CLI beside PATCH /v1/admin/users/{user} (groups for conditional access, contact details). */
const SLOW = 180_000;
let session: CliSession;

beforeAll(async () => {
  session = await openCliSession();
});
afterAll(async () => {
  await session.close();
});

describe('countersign user update (CLI)', () => {
  it(
    'replaces the groups (or clears them), changes contact details, and refuses a call that names nothing',
    async () => {
      expect((await session.cli(['tenant', 'create', 'acme'])).code).toBe(0);
      expect((await session.cli(['user', 'add', '--tenant', 'acme', 'bob@acme.com', '--group', 'Staff'])).code).toBe(0);
      const grouped = await session.cli(['user', 'update', '--tenant', 'acme', 'bob@acme.com', '--group', 'break-glass', 'Staff', '--email', 'bob@acme.com', '--json']);
      expect(grouped.code).toBe(0);
      expect(JSON.parse(grouped.stdout)).toMatchObject({ username: 'bob@acme.com', email: 'bob@acme.com', groups: ['Staff', 'break-glass'] });
      const cleared = await session.cli(['user', 'update', '--tenant', 'acme', 'bob@acme.com', '--no-groups', '--json']);
      expect(JSON.parse(cleared.stdout)).toMatchObject({ groups: [], email: 'bob@acme.com' });
      oneLineError(await session.cli(['user', 'update', '--tenant', 'acme', 'bob@acme.com']), /^countersign: options: name what to change/);
      oneLineError(await session.cli(['user', 'update', '--tenant', 'acme', 'bob@acme.com', '--email', 'not an address']), /^countersign: email: /);
      // Nothing was lost by the refused change.
      const shown = await session.cli(['user', 'show', '--tenant', 'acme', 'bob@acme.com', '--json']);
      expect(JSON.parse(shown.stdout)).toMatchObject({ email: 'bob@acme.com', groups: [] });
    },
    SLOW,
  );
});
