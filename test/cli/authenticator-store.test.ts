import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addAccount, defaultStorePath, emptyStore, findAccountForRequest, load, save, type AuthenticatorAccount } from '../../src/cli/authenticator-store.js';
import { CountersignError } from '../../src/core/errors.js';

/**
 * The key file of `countersign authenticator`: mode 0600 in a 0700 directory, refused when
 * others may read it, written through a temporary file and a rename that leaves nothing behind.
 */
const POSIX = process.platform !== 'win32';
let dir: string;

function account(overrides: Partial<AuthenticatorAccount> = {}): AuthenticatorAccount {
  return {
    server: 'http://127.0.0.1:8080',
    tenant: 'default',
    username: 'alice@example.com',
    device_id: 'dev-1',
    name: 'laptop (CLI)',
    private_key: '-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n',
    public_key: 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE',
    added_at: '2026-01-15T12:00:00.000Z',
    ...overrides,
  };
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'countersign-authenticator-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('authenticator key file', () => {
  it('defaults to ~/.config/countersign/authenticator.json', () => {
    expect(defaultStorePath()).toMatch(/[/\\]\.config[/\\]countersign[/\\]authenticator\.json$/);
  });

  it('a missing file is an empty store', () => {
    expect(load(join(dir, 'nothing.json'))).toEqual({ version: 1, accounts: [] });
  });

  it('round trip: save then load gives the same accounts', () => {
    const path = join(dir, 'auth.json');
    const file = addAccount(addAccount(emptyStore(), account()), account({ tenant: 'acme', device_id: 'dev-2' }));
    save(path, file);
    expect(load(path)).toEqual(file);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(file);
  });

  it.runIf(POSIX)('writes the file 0600 and creates its directory 0700', () => {
    const path = join(dir, 'nested', 'countersign', 'auth.json');
    save(path, addAccount(emptyStore(), account()));
    expect(mode(path)).toBe(0o600);
    expect(mode(join(dir, 'nested'))).toBe(0o700);
    expect(mode(join(dir, 'nested', 'countersign'))).toBe(0o700);
    // Rewriting a file someone loosened makes it 0600 again.
    chmodSync(path, 0o644);
    save(path, emptyStore());
    expect(mode(path)).toBe(0o600);
  });

  it.runIf(POSIX)('refuses a file that others may read, with one line saying to chmod 600', () => {
    const path = join(dir, 'auth.json');
    save(path, addAccount(emptyStore(), account()));
    for (const loose of [0o644, 0o640, 0o604, 0o660]) {
      chmodSync(path, loose);
      let error: unknown;
      try {
        load(path);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(CountersignError);
      const message = (error as CountersignError).message;
      expect(message).toContain(`chmod 600 ${path}`);
      expect(message).not.toContain('\n');
      expect(message).not.toContain('PRIVATE KEY');
    }
    chmodSync(path, 0o600);
    expect(load(path).accounts).toHaveLength(1);
  });

  it('temp file + rename: no stray file is left in the directory', () => {
    const path = join(dir, 'auth.json');
    save(path, emptyStore());
    save(path, addAccount(emptyStore(), account()));
    save(path, addAccount(load(path), account({ tenant: 'acme' })));
    expect(readdirSync(dir)).toEqual(['auth.json']);
  });

  it('a failed write leaves the old file and no stray file', () => {
    const path = join(dir, 'auth.json');
    save(path, addAccount(emptyStore(), account()));
    // A directory where the file should be renamed to: the rename fails.
    const blocked = join(dir, 'blocked');
    save(join(blocked, 'x.json'), emptyStore());
    expect(() => save(blocked, emptyStore())).toThrow(CountersignError);
    expect(readdirSync(dir).sort()).toEqual(['auth.json', 'blocked']);
    expect(load(path).accounts).toHaveLength(1);
  });

  it('refuses a file that is not an authenticator file', () => {
    const path = join(dir, 'auth.json');
    writeFileSync(path, '{"version": 2, "accounts": []}', { mode: 0o600 });
    expect(() => load(path)).toThrow(/is not a version 1 authenticator file/);
    writeFileSync(path, 'nonsense', { mode: 0o600 });
    expect(() => load(path)).toThrow(/is not JSON/);
    writeFileSync(path, '{"version": 1, "accounts": [{"server": "x"}]}', { mode: 0o600 });
    expect(() => load(path)).toThrow(/accounts\[0\]\.tenant/);
  });

  it('addAccount replaces the account of the same server, tenant and username', () => {
    const first = addAccount(emptyStore(), account());
    const again = addAccount(first, account({ device_id: 'dev-3' }));
    expect(again.accounts.map((a) => a.device_id)).toEqual(['dev-3']);
    const other = addAccount(again, account({ server: 'https://mfa.example.com' }));
    expect(other.accounts.map((a) => a.device_id)).toEqual(['dev-3', 'dev-1']);
  });

  it('findAccountForRequest matches the id across accounts, skips a failing server, and says when none has it', async () => {
    const file = addAccount(addAccount(emptyStore(), account({ tenant: 'down' })), account({ tenant: 'acme' }));
    const pending = async (a: AuthenticatorAccount): Promise<{ id: string }[]> => {
      if (a.tenant === 'down') throw new CountersignError('PROVIDER_FAILED', 'cannot reach the server');
      return [{ id: 'r1' }, { id: 'r2' }];
    };
    const found = await findAccountForRequest(file, 'r2', pending);
    expect(found.account.tenant).toBe('acme');
    expect(found.request).toEqual({ id: 'r2' });
    await expect(findAccountForRequest(file, 'r9', pending)).rejects.toThrow('cannot reach the server');
    await expect(findAccountForRequest(addAccount(emptyStore(), account()), 'r9', async () => [])).rejects.toThrow(/request r9 not found/);
    await expect(findAccountForRequest(emptyStore(), 'r1', pending)).rejects.toThrow(/no authenticator accounts/);
  });
});
