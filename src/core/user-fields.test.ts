import { describe, expect, it } from 'vitest';
import { normalizeEmail, normalizePhone, normalizeUsername, parseMfaState } from './user-fields.js';

describe('user fields', () => {
  it('usernames are trimmed and lower-cased; spaces and control characters are refused', () => {
    expect(normalizeUsername(' Alice@Contoso.com ')).toBe('alice@contoso.com');
    expect(() => normalizeUsername('al ice')).toThrow('username: must be');
    expect(() => normalizeUsername('alice\r\nadmin')).toThrow('username: must be');
    expect(() => normalizeUsername('')).toThrow('username: must be');
  });
  it('phones become E.164, with the tenant country for national numbers', () => {
    expect(normalizePhone('+1 425 555 0100', 'US')).toBe('+14255550100');
    expect(normalizePhone('(425) 555-0100', 'US')).toBe('+14255550100');
    expect(normalizePhone('030 12345678', 'DE')).toBe('+493012345678');
    expect(() => normalizePhone('12', 'US')).toThrow('phone: "12" is not a valid phone number');
  });
  it('states and emails', () => {
    expect(parseMfaState('Enforced')).toBe('enforced');
    expect(() => parseMfaState('on')).toThrow('mfa_state: must be one of disabled, enabled, enforced');
    expect(normalizeEmail('')).toBeNull();
    expect(() => normalizeEmail('not-an-email')).toThrow('email: is not an email address');
  });
});
