import { randomBytes } from 'node:crypto';
import { hash } from '@node-rs/argon2';
import { describe, expect, it } from 'vitest';
import {
  APP_PASSWORD_BITS,
  appPasswordMatches,
  appPasswordNeedsRehash,
  generateAppPassword,
  hashAppPassword,
  normalizeAppPassword,
} from './app-password.js';

const pepper = Buffer.alloc(32, 7);

describe('app password secrets', () => {
  it('are 28 letters in 7 groups of 4, at least 128 bits, drawn from the given random source', () => {
    expect(APP_PASSWORD_BITS).toBeGreaterThanOrEqual(128);
    const password = generateAppPassword(randomBytes);
    expect(password).toMatch(/^[a-z]{4}( [a-z]{4}){6}$/);
    // Deterministic for a fixed source; bytes ≥ 234 are skipped (no modulo bias).
    const fixed = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 250 : i)));
    expect(generateAppPassword(fixed)).toBe(generateAppPassword(fixed));
    expect(generateAppPassword(() => Buffer.alloc(28, 0))).toBe('aaaa aaaa aaaa aaaa aaaa aaaa aaaa');
    expect(generateAppPassword(() => Buffer.alloc(28, 233))).toBe('zzzz zzzz zzzz zzzz zzzz zzzz zzzz');
  });

  it('are read with or without spaces and hyphens, in any case; anything else is no app password', () => {
    const letters = 'abcdefghijklmnopqrstuvwxyzab';
    expect(normalizeAppPassword('abcd efgh ijkl mnop qrst uvwx yzab')).toBe(letters);
    expect(normalizeAppPassword('ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZAB')).toBe(letters);
    expect(normalizeAppPassword(letters)).toBe(letters);
    expect(normalizeAppPassword(letters.slice(1))).toBeUndefined();
    expect(normalizeAppPassword(`${letters}a`)).toBeUndefined();
    expect(normalizeAppPassword('abcd efgh ijkl mnop qrst uvwx yza1')).toBeUndefined();
    expect(normalizeAppPassword('')).toBeUndefined();
  });

  it('are stored as argon2id PHC strings (m=19 MiB, t=2, p=1) keyed with the pepper', async () => {
    const password = generateAppPassword(randomBytes);
    const stored = await hashAppPassword(password, pepper);
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(stored).not.toContain(password.replace(/ /g, ''));
    const letters = normalizeAppPassword(password) ?? '';
    expect(await appPasswordMatches(stored, letters, pepper)).toBe(true);
    expect(await appPasswordMatches(stored, letters, Buffer.alloc(32, 8))).toBe(false);
    expect(await appPasswordMatches(stored, 'a'.repeat(28), pepper)).toBe(false);
    expect(await appPasswordMatches('not a hash', letters, pepper)).toBe(false);
    expect(appPasswordNeedsRehash(stored)).toBe(false);
  });

  it('stored with weaker parameters are due for a rehash', async () => {
    expect(appPasswordNeedsRehash(await hash('x', { memoryCost: 8192, timeCost: 2, parallelism: 1 }))).toBe(true);
    expect(appPasswordNeedsRehash(await hash('x', { memoryCost: 19_456, timeCost: 1, parallelism: 1 }))).toBe(true);
    expect(appPasswordNeedsRehash('$2b$10$abcdefghijklmnopqrstuv')).toBe(true);
  });
});
