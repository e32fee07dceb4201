import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listGreetings } from '../../src/flows/greetings.js';
import { findTenant } from '../../src/flows/tenants.js';
import { oneLineError, openCliSession, type CliSession } from '../support/cli.js';
import type { TestStoreLocation } from '../support/harness.js';

/**
 * `countersign greeting …`, `countersign phone …` and `countersign telephony log` as an
 * administrator runs them: the real CLI in a child process on an embedded (SQLite) data
 * directory, with the default (outbox) telephony provider, so `outbox list` shows the text with
 * the code. An in-process context on the same store checks what the CLI cannot show. The child
 * gets --data-dir and no COUNTERSIGN_* variable from the test environment.
 */
const SLOW = 120_000;
const PHONE = '+14255550177';

let session: CliSession;
let location: TestStoreLocation;
const cli = (args: string[]) => session.cli(args);
const context = () => session.context();

beforeAll(async () => {
  session = await openCliSession();
  location = session.location;
});
afterAll(async () => {
  await session.close();
});

describe('countersign phone verify / confirm (CLI)', () => {
  it(
    'sends a code by text, refuses a wrong one with exit 1, and verifies the number with the right one',
    async () => {
      expect((await cli(['tenant', 'create', 'acme'])).code).toBe(0);
      const user = await cli(['user', 'add', '--tenant', 'acme', 'bob@acme.com', '--state', 'enforced']);
      expect(user.code).toBe(0);

      const started = await cli(['phone', 'verify', '--tenant', 'acme', 'bob@acme.com', '--type', 'mobile', PHONE, '--json']);
      expect(started.code).toBe(0);
      const view = JSON.parse(started.stdout) as { challenge_id: string; type: string; number: string; status: string; expires_at: string };
      expect(view).toEqual({ challenge_id: expect.any(String), type: 'mobile', number: PHONE, status: 'sent', expires_at: expect.any(String) });

      const outbox = await cli(['outbox', 'list', '--json']);
      expect(outbox.code).toBe(0);
      const messages = JSON.parse(outbox.stdout) as { kind: string; to: string; text: string; challenge_id: string | null }[];
      expect(messages).toHaveLength(1);
      expect(messages[0]).toMatchObject({ kind: 'sms', to: PHONE, challenge_id: view.challenge_id });
      const code = /^(\d{6}) is your acme code/.exec(messages[0]?.text ?? '')?.[1] ?? '';
      expect(code).toMatch(/^\d{6}$/);

      const wrong = await cli(['phone', 'confirm', '--tenant', 'acme', 'bob@acme.com', '--type', 'mobile', code === '000000' ? '111111' : '000000']);
      oneLineError(wrong, /^countersign: the code was not accepted \(invalid_code\)\n$/);
      expect(wrong.stdout).toMatch(/^not verified: invalid_code/);

      const confirmed = await cli(['phone', 'confirm', '--tenant', 'acme', 'bob@acme.com', '--type', 'mobile', code, '--json']);
      expect(confirmed.code).toBe(0);
      expect(JSON.parse(confirmed.stdout)).toMatchObject({ id: view.challenge_id, status: 'approved', verified: true });

      const { services } = await context();
      const phone = await services.db.selectFrom('user_phones').select(['type', 'number', 'verified_at']).executeTakeFirstOrThrow();
      expect(phone).toMatchObject({ type: 'mobile', number: PHONE });
      expect(phone.verified_at).not.toBeNull();
    },
    SLOW,
  );
});

describe('countersign greeting (CLI)', () => {
  it(
    'sets a text prompt and an audio one, refuses a missing file, lists both, and deletes one',
    async () => {
      const text = await cli(['greeting', 'set', '--tenant', 'acme', 'en-US', 'greeting', '--text', 'Acme sign-in, press pound', '--json']);
      expect(text.code).toBe(0);
      expect(JSON.parse(text.stdout)).toEqual({ language: 'en-US', kind: 'greeting', text: 'Acme sign-in, press pound', audio: false, updated_at: expect.any(String) });

      const wav = join(location.dataDir, 'thanks.wav');
      await writeFile(wav, Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WAVEfmt '), Buffer.alloc(64)]));
      const audio = await cli(['greeting', 'set', '--tenant', 'acme', 'en-US', 'success', '--file', wav, '--json']);
      expect(audio.code).toBe(0);
      expect(JSON.parse(audio.stdout)).toMatchObject({ language: 'en-US', kind: 'success', audio: true });

      const missing = join(location.dataDir, 'missing.wav');
      const refused = await cli(['greeting', 'set', '--tenant', 'acme', 'en-US', 'success', '--file', missing]);
      oneLineError(refused, /^countersign: .*missing\.wav: no such file\n$/);
      expect(refused.stdout).toBe('');

      const listed = await cli(['greeting', 'list', '--tenant', 'acme', '--json']);
      expect(listed.code).toBe(0);
      const greetings = JSON.parse(listed.stdout) as { language: string; kind: string; audio: boolean }[];
      expect(greetings.map((g) => [g.language, g.kind, g.audio])).toEqual([
        ['en-US', 'greeting', false],
        ['en-US', 'success', true],
      ]);

      const deleted = await cli(['greeting', 'delete', '--tenant', 'acme', 'en-US', 'greeting']);
      expect(deleted.code).toBe(0);
      expect(deleted.stdout).toContain('deleted the en-US greeting greeting');
      const { services } = await context();
      const left = await listGreetings(services, await findTenant(services, 'acme'));
      expect(left.map((g) => g.kind)).toEqual(['success']);
    },
    SLOW,
  );
});

describe('countersign telephony log (CLI)', () => {
  it(
    'lists the verification text with the number masked, and refuses a bad --limit, a bad --since and a greeting with no text',
    async () => {
      const log = await cli(['telephony', 'log', '--tenant', 'acme', '--json']);
      expect(log.code).toBe(0);
      const entries = JSON.parse(log.stdout) as { kind: string; purpose: string; number: string }[];
      expect(entries).toHaveLength(1);
      expect(entries[0]).toMatchObject({ kind: 'sms', purpose: 'phone_verification', number: '+1 XXX-XXX-0177' });
      expect(log.stdout).not.toContain(PHONE);
      expect(log.stdout).not.toContain('4255550177');

      // Refused before the store is opened: run side by side.
      const [limit, since, neither] = await Promise.all([
        cli(['telephony', 'log', '--tenant', 'acme', '--limit', '1001']),
        cli(['telephony', 'log', '--tenant', 'acme', '--since', 'yesterday-ish']),
        cli(['greeting', 'set', '--tenant', 'acme', 'en-US', 'denied']),
      ]);
      oneLineError(limit, /^countersign: --limit: /);
      oneLineError(since, /^countersign: --since: /);
      oneLineError(neither, /^countersign: --text: /);
    },
    SLOW,
  );
});
