import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Secret } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findTenant } from '../src/flows/tenants.js';
import { verifyCode } from '../src/flows/verify-code.js';
import { openCliSession, ROOT, type CliSession } from './support/cli.js';
import { createTestContext, fakeClock } from './support/harness.js';
import { oathtool } from './support/otp.js';

/**
 * `countersign token …` as a user runs it: the real CLI in a child process on an embedded
 * (SQLite) data directory, then the same store opened in-process to check that an imported
 * token verifies a code oathtool makes at the real current time. The CLI is what is under test,
 * so this file stays on SQLite even when COUNTERSIGN_TEST_DATABASE_URL is set: the child gets
 * --data-dir and no COUNTERSIGN_* variable from the test environment.
 */
const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model';
const SLOW = 120_000;

let session: CliSession;
let dataDir: string;
let filesDir: string;
const cli = (args: string[]) => session.cli(args);
const aliceSecret = new Secret({ size: 20 }).base32;
const inventorySecret = new Secret({ size: 20 }).base32;

beforeAll(async () => {
  session = await openCliSession();
  dataDir = session.location.dataDir;
  filesDir = mkdtempSync(join(tmpdir(), 'countersign-cli-files-'));
});
afterAll(async () => {
  await session.close();
  rmSync(filesDir, { recursive: true, force: true });
});

describe('countersign token (CLI)', () => {
  it(
    'starts from an empty data dir: no tenant yet, then tenant acme and user alice',
    async () => {
      expect(await cli(['tenant', 'list', '--json'])).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
      const tenant = await cli(['tenant', 'create', 'acme', '--json']);
      expect(tenant.code).toBe(0);
      expect(JSON.parse(tenant.stdout)).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), name: 'acme' });
      const user = await cli(['user', 'add', '--tenant', 'acme', 'alice@acme.com', '--state', 'enforced', '--json']);
      expect(user.code).toBe(0);
      expect(JSON.parse(user.stdout)).toMatchObject({ username: 'alice@acme.com', mfa_state: 'enforced' });
      expect((await cli(['user', 'add', '--tenant', 'acme', 'carol@acme.com', '--state', 'enabled'])).code).toBe(0);
    },
    SLOW,
  );

  it(
    'token import prints every imported and every refused line, then a summary',
    async () => {
      const file = join(filesDir, 'tokens.csv');
      writeFileSync(
        file,
        [
          HEADER,
          `alice@acme.com,CLI-ALICE,${aliceSecret},30,Feitian,c200`,
          `,CLI-SPARE,${inventorySecret},60,Feitian,c100`,
          `alice@acme.com,CLI-BAD32,ABCDEFGH1JKLMNOP,30,Feitian,c200`,
          `alice@acme.com,CLI-90,${new Secret({ size: 20 }).base32},90,Feitian,c200`,
          `bob@acme.com,CLI-BOB,${new Secret({ size: 20 }).base32},30,Feitian,c200`,
          '',
        ].join('\n'),
      );
      const result = await cli(['token', 'import', '--tenant', 'acme', file]);
      expect(result).toEqual({
        code: 0,
        stderr: '',
        stdout: [
          'imported line 2: serial CLI-ALICE → alice@acme.com',
          'imported line 3: serial CLI-SPARE → inventory (unassigned)',
          'refused line 4: secret key is not valid Base32',
          'refused line 5: time interval must be 30 or 60 (found "90")',
          'refused line 6: user bob@acme.com is not in tenant acme',
          'CSV: 2 imported, 3 refused',
          '',
        ].join('\n'),
      });
      // No secret key of the file, good or bad, is echoed.
      for (const secret of [aliceSecret, inventorySecret, 'ABCDEFGH1JKLMNOP']) expect(result.stdout).not.toContain(secret);

      // The same file again: every line refused, exit 1 with a one-line error.
      const again = await cli(['token', 'import', '--tenant', 'acme', file]);
      expect(again.code).toBe(1);
      expect(again.stdout.split('\n')).toEqual([
        'refused line 4: secret key is not valid Base32',
        'refused line 5: time interval must be 30 or 60 (found "90")',
        'refused line 2: serial number CLI-ALICE is already in this tenant',
        'refused line 3: serial number CLI-SPARE is already in this tenant',
        'refused line 6: user bob@acme.com is not in tenant acme',
        'CSV: 0 imported, 5 refused',
        '',
      ]);
      expect(again.stderr).toBe('countersign: no token was imported (5 refused)\n');
    },
    SLOW,
  );

  it(
    'token list --json shows both tokens; token assign moves the spare one to a user',
    async () => {
      const listed = await cli(['token', 'list', '--tenant', 'acme', '--json']);
      expect(listed.code).toBe(0);
      const tokens = JSON.parse(listed.stdout) as Record<string, unknown>[];
      expect(tokens).toEqual([
        { id: expect.any(String), serial: 'CLI-ALICE', username: 'alice@acme.com', otp_kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30, manufacturer: 'Feitian', model: 'c200', created_at: expect.any(String) },
        { id: expect.any(String), serial: 'CLI-SPARE', username: null, otp_kind: 'totp', algorithm: 'SHA1', digits: 6, period: 60, manufacturer: 'Feitian', model: 'c100', created_at: expect.any(String) },
      ]);
      expect(listed.stdout).not.toContain(aliceSecret);

      const unassigned = await cli(['token', 'list', '--tenant', 'acme', '--unassigned']);
      expect(unassigned).toEqual({ code: 0, stdout: 'CLI-SPARE  totp  (unassigned)  Feitian c100\n', stderr: '' });

      expect(await cli(['token', 'assign', '--tenant', 'acme', 'CLI-SPARE', 'carol@acme.com'])).toEqual({ code: 0, stdout: 'token CLI-SPARE assigned to carol@acme.com\n', stderr: '' });
      expect(await cli(['token', 'assign', '--tenant', 'acme', 'CLI-SPARE', 'alice@acme.com'])).toEqual({
        code: 1,
        stdout: '',
        stderr: 'countersign: token CLI-SPARE is already assigned; unassign it first\n',
      });
      expect(await cli(['token', 'list', '--tenant', 'acme', '--unassigned'])).toEqual({ code: 0, stdout: '(no tokens)\n', stderr: '' });
    },
    SLOW,
  );

  it(
    'exit 1 with one line on stderr: a missing file, an unknown tenant, an encrypted PSKC without its key',
    async () => {
      const missing = join(filesDir, 'no-such-file.csv');
      expect(await cli(['token', 'import', '--tenant', 'acme', missing])).toEqual({ code: 1, stdout: '', stderr: `countersign: ${missing}: cannot be read (ENOENT)\n` });
      expect(await cli(['token', 'import', '--tenant', 'default', missing])).toEqual({ code: 1, stdout: '', stderr: 'countersign: tenant default not found\n' });

      const figure6 = join(filesDir, 'figure6.pskcxml');
      writeFileSync(figure6, readFileSync(join(ROOT, 'src/methods/oath/fixtures/rfc6030-figure6.pskcxml')));
      expect(await cli(['token', 'import', '--tenant', 'acme', figure6])).toEqual({
        code: 1,
        stdout: '',
        stderr: 'countersign: the file is encrypted with a pre-shared key (RFC 6030 §6.1): a pre-shared key is required: give it with --psk-file FILE (or --psk HEX)\n',
      });
      expect(await cli(['token', 'import', '--tenant', 'acme', figure6, '--psk', '12345678901234567890123456789012'])).toEqual({
        code: 0,
        stdout: 'imported KeyPackage 1: serial 987654321 → inventory (unassigned)\nPSKC: 1 imported, 0 refused\n',
        stderr: '',
      });
    },
    SLOW,
  );

  it(
    'end to end: tokens imported and assigned by the CLI verify codes oathtool makes now',
    async () => {
      const context = await createTestContext({ location: { dataDir, databaseUrl: undefined, drop: async () => {} }, clock: fakeClock(Date.now()) });
      try {
        expect(context.config.databaseUrl).toBeUndefined();
        const tenant = await findTenant(context.services, 'acme');
        const check = (username: string, code: string) => verifyCode(context.services, { kind: 'system' }, tenant, { username, code });

        // oathtool's own clock (no --now): the real current time, which the context's clock also holds.
        const aliceCode = oathtool(['--totp', '-b', aliceSecret]);
        context.clock.set(Date.now());
        const approved = await check('alice@acme.com', aliceCode);
        expect([approved.result, approved.reason]).toEqual(['approved', 'approved']);
        const replayed = await check('alice@acme.com', aliceCode);
        expect([replayed.result, replayed.reason]).toEqual(['denied', 'invalid_code']);

        const carolCode = oathtool(['--totp', '-s', '60s', '-b', inventorySecret]);
        context.clock.set(Date.now());
        const carol = await check('carol@acme.com', carolCode);
        expect([carol.result, carol.reason]).toEqual(['approved', 'approved']);
        // Tokens belong to their own user only.
        const crossed = await check('alice@acme.com', oathtool(['--totp', '-s', '60s', '-b', inventorySecret, '--now', new Date(Date.now() + 60_000).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC')]));
        expect(crossed.result).toBe('denied');
      } finally {
        await context.close();
      }
    },
    SLOW,
  );
});
