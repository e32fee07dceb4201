import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChallenge, getChallenge } from '../../src/flows/challenges.js';
import { findTenant } from '../../src/flows/tenants.js';
import type { TenantRow } from '../../src/store/schema.js';
import { openCliSession, type CliSession } from '../support/cli.js';

/**
 * `countersign outbox …` and `countersign user set-pin` as a user runs them: the real CLI in a
 * child process on an embedded (SQLite) data directory. Challenges are created in-process on
 * the same store (the CLI has no command for that, and this test uses no HTTP); the phone's side
 * — pressing keys on a call, replying to a text — is played with the CLI only. The child gets
 * --data-dir and no COUNTERSIGN_* variable from the test environment.
 */
const SLOW = 120_000;
const SYSTEM = { kind: 'system' } as const;
const PHONE = '+14255550123';

interface Message {
  id: string;
  kind: 'sms' | 'call';
  to: string;
  text: string;
  status: string;
  challenge_id: string | null;
}

let session: CliSession;
const cli = (args: string[], input?: string) => session.cli(args, input);
const context = () => session.context();

async function acme(): Promise<TenantRow> {
  return findTenant((await context()).services, 'acme');
}

beforeAll(async () => {
  session = await openCliSession();
});
afterAll(async () => {
  await session.close();
});

describe('countersign outbox (CLI)', () => {
  it(
    'starts with tenant acme, user alice with a phone, and an empty outbox',
    async () => {
      const tenant = await cli(['tenant', 'create', 'acme', '--json']);
      expect(tenant.code).toBe(0);
      expect(JSON.parse(tenant.stdout)).toMatchObject({ name: 'acme' });
      const user = await cli(['user', 'add', '--tenant', 'acme', 'alice@acme.com', '--phone', PHONE, '--state', 'enforced', '--json']);
      expect(user.code).toBe(0);
      expect(JSON.parse(user.stdout)).toMatchObject({ username: 'alice@acme.com', mfa_state: 'enforced', phones: [{ number: PHONE }] });
      expect(await cli(['outbox', 'list'])).toEqual({ code: 0, stdout: '(the outbox is empty)\n', stderr: '' });
      expect(await cli(['outbox', 'list', '--json'])).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
    },
    SLOW,
  );

  it(
    'a call: outbox list shows it ringing, # approves, and the challenge reads approved',
    async () => {
      const { services } = await context();
      const tenant = await acme();
      const challenge = await createChallenge(services, SYSTEM, tenant, { username: 'alice@acme.com', method: 'voice' });

      const listed = await cli(['outbox', 'list', '--json']);
      expect(listed.code).toBe(0);
      const messages = JSON.parse(listed.stdout) as Message[];
      expect(messages).toHaveLength(1);
      const call = messages[0];
      expect(call).toEqual({ id: expect.any(String), kind: 'call', to: PHONE, text: expect.any(String), status: 'ringing', challenge_id: challenge.id });
      expect(Object.keys(call ?? {})).toEqual(['id', 'kind', 'to', 'text', 'status', 'challenge_id']);
      const id = call?.id ?? '';

      // Text output: a header line, then the transcript indented.
      const text = await cli(['outbox', 'list', '--tenant', 'acme', '--limit', '1']);
      expect(text.code).toBe(0);
      expect(text.stdout.split('\n')[0]).toBe(`${id}  call  ${PHONE}  ringing  (challenge ${challenge.id})`);
      expect(text.stdout.split('\n')[1]).toMatch(/^ {4}\S/);

      const shown = await cli(['outbox', 'show', id, '--tenant', 'acme', '--json']);
      expect(shown.code).toBe(0);
      expect(JSON.parse(shown.stdout)).toEqual(call);

      const pressed = await cli(['outbox', 'press', id, '#', '--json']);
      expect(pressed.code).toBe(0);
      const after = JSON.parse(pressed.stdout) as Message;
      expect(after).toMatchObject({ id, kind: 'call', to: PHONE, status: 'completed', challenge_id: challenge.id });
      expect(Object.keys(after)).toEqual(['id', 'kind', 'to', 'text', 'status', 'challenge_id']);
      expect(after.text).toContain('[pressed #]');

      const decided = await getChallenge(services, SYSTEM, tenant, challenge.id, 0);
      expect(decided.status).toBe('approved');

      // The call has ended: pressing again is refused with one line.
      const again = await cli(['outbox', 'press', id, '#']);
      expect(again.code).toBe(1);
      expect(again.stderr).toBe(`countersign: the call ${id} has ended\n`);
    },
    SLOW,
  );

  it(
    'a two-way text: settings set sms_mode=two_way, reply Y approves',
    async () => {
      const settings = await cli(['settings', 'set', '--tenant', 'acme', 'sms_mode=two_way']);
      expect(settings.code).toBe(0);
      const { services } = await context();
      const tenant = await acme();
      const challenge = await createChallenge(services, SYSTEM, tenant, { username: 'alice@acme.com', method: 'sms' });

      const messages = JSON.parse((await cli(['outbox', 'list', '--tenant', 'acme', '--json'])).stdout) as Message[];
      expect(messages).toHaveLength(2);
      const sms = messages[0];
      expect(sms).toMatchObject({ kind: 'sms', to: PHONE, challenge_id: challenge.id });
      const id = sms?.id ?? '';

      const replied = await cli(['outbox', 'reply', id, 'Y', '--json']);
      expect(replied.code).toBe(0);
      const body = JSON.parse(replied.stdout) as { message: Message; result: string };
      expect(Object.keys(body)).toEqual(['message', 'result']);
      expect(body.result).toBe('approved');
      expect(body.message).toMatchObject({ id, kind: 'sms', to: PHONE, status: 'replied', challenge_id: challenge.id });
      expect(Object.keys(body.message)).toEqual(['id', 'kind', 'to', 'text', 'status', 'challenge_id']);
      expect((await getChallenge(services, SYSTEM, tenant, challenge.id, 0)).status).toBe('approved');

      // No open two-way challenge is left: a second reply is ignored, and the text output says so.
      const ignored = await cli(['outbox', 'reply', id, 'Y']);
      expect(ignored.code).toBe(0);
      expect(ignored.stdout.split('\n')[0]).toBe(`reply to ${id}: ignored`);
    },
    SLOW,
  );

  it(
    'errors exit 1 with one line: an unknown message, a bad --limit, a call replied to',
    async () => {
      const unknown = await cli(['outbox', 'press', '00000000-0000-0000-0000-000000000000', '#']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^countersign: .*not found\n$/);
      expect(unknown.stderr.split('\n')).toHaveLength(2);

      for (const limit of ['0', '501', '1.5', 'many']) {
        const bad = await cli(['outbox', 'list', '--limit', limit]);
        expect(bad.code).toBe(1);
        expect(bad.stdout).toBe('');
        expect(bad.stderr).toMatch(/^countersign: --limit: .*\n$/);
        expect(bad.stderr.split('\n')).toHaveLength(2);
      }

      expect(await cli(['outbox', 'list', '--tenant', 'nowhere'])).toEqual({ code: 1, stdout: '', stderr: 'countersign: tenant nowhere not found\n' });
      const call = (JSON.parse((await cli(['outbox', 'list', '--json'])).stdout) as Message[]).find((m) => m.kind === 'call');
      const wrong = await cli(['outbox', 'reply', call?.id ?? '', 'Y']);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain('is a call: press keys instead');
    },
    SLOW,
  );
});

describe('countersign user set-pin / clear-pin (CLI)', () => {
  async function pinHash(): Promise<string | null> {
    const { services } = await context();
    const row = await services.db.selectFrom('users').select('pin_hash').where('username', '=', 'alice@acme.com').executeTakeFirstOrThrow();
    return row.pin_hash;
  }

  it(
    'reads the PIN from standard input, stores only its argon2id hash, and never prints it',
    async () => {
      const set = await cli(['user', 'set-pin', '--tenant', 'acme', 'alice@acme.com', '--pin-stdin'], '2580\n');
      expect(set).toEqual({ code: 0, stdout: 'PIN set for alice@acme.com\n', stderr: '' });
      expect(await pinHash()).toMatch(/^\$argon2id\$/);

      const json = await cli(['user', 'set-pin', '--tenant', 'acme', 'alice@acme.com', '--json'], '2580');
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toEqual({ username: 'alice@acme.com', pin: 'set' });
      for (const output of [set, json]) expect(`${output.stdout}${output.stderr}`).not.toContain('2580');

      const weak = await cli(['user', 'set-pin', '--tenant', 'acme', 'alice@acme.com', '--pin-stdin'], '1234\n');
      expect(weak.code).toBe(1);
      expect(weak.stdout).toBe('');
      expect(weak.stderr).toContain('pin:');
      expect(weak.stderr.split('\n')).toHaveLength(2);
      expect(`${weak.stdout}${weak.stderr}`).not.toContain('1234');

      const empty = await cli(['user', 'set-pin', '--tenant', 'acme', 'alice@acme.com'], '\n');
      expect(empty.code).toBe(1);
      expect(empty.stderr).toMatch(/^countersign: pin: /);
      expect(await pinHash()).toMatch(/^\$argon2id\$/);

      const cleared = await cli(['user', 'clear-pin', '--tenant', 'acme', 'alice@acme.com', '--json']);
      expect(cleared.code).toBe(0);
      expect(JSON.parse(cleared.stdout)).toEqual({ username: 'alice@acme.com', pin: 'cleared' });
      expect(await pinHash()).toBeNull();
    },
    SLOW,
  );
});
