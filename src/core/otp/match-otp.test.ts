import { describe, expect, it } from 'vitest';
import { generateOtp } from './generate-otp.js';
import { findHotpResync, matchHotp, matchTotp } from './match-otp.js';

const secret = new TextEncoder().encode('12345678901234567890');
const params = { algorithm: 'SHA1', digits: 6 } as const;
const period = 30;
const nowMs = 1_700_000_000_000;
const now = Math.floor(nowMs / 1000 / period);
const codeAt = (step: number): string => generateOtp(secret, step, params);

describe('matchTotp', () => {
  it('OTP-03: t−1, t, t+1 match and t±2 do not (window 1)', () => {
    for (const offset of [-1, 0, 1]) {
      expect(matchTotp(secret, params, codeAt(now + offset), { nowMs, period, window: 1, nextCounter: 0 })).toEqual({ result: 'match', counter: now + offset });
    }
    for (const offset of [-2, 2]) {
      expect(matchTotp(secret, params, codeAt(now + offset), { nowMs, period, window: 1, nextCounter: 0 })).toEqual({ result: 'no_match' });
    }
  });
  it('OTP-03: in strict mode (window 0) only t matches', () => {
    expect(matchTotp(secret, params, codeAt(now), { nowMs, period, window: 0, nextCounter: 0 })).toEqual({ result: 'match', counter: now });
    expect(matchTotp(secret, params, codeAt(now - 1), { nowMs, period, window: 0, nextCounter: 0 })).toEqual({ result: 'no_match' });
    expect(matchTotp(secret, params, codeAt(now + 1), { nowMs, period, window: 0, nextCounter: 0 })).toEqual({ result: 'no_match' });
  });
  it('OTP-01: a step below the next unused one is a replay, not a match', () => {
    expect(matchTotp(secret, params, codeAt(now), { nowMs, period, window: 1, nextCounter: now + 1 })).toEqual({ result: 'replay', counter: now });
    expect(matchTotp(secret, params, codeAt(now - 1), { nowMs, period, window: 1, nextCounter: now })).toEqual({ result: 'replay', counter: now - 1 });
  });
  it('OTP-08: only the server time passed in decides', () => {
    const later = nowMs + 10 * period * 1000;
    expect(matchTotp(secret, params, codeAt(now), { nowMs: later, period, window: 1, nextCounter: 0 })).toEqual({ result: 'no_match' });
  });
});

describe('matchHotp', () => {
  it('OTP-07: accepts next … next+10 and refuses next+11', () => {
    expect(matchHotp(secret, params, codeAt(5), { nextCounter: 5, lookAhead: 10 })).toEqual({ result: 'match', counter: 5 });
    expect(matchHotp(secret, params, codeAt(15), { nextCounter: 5, lookAhead: 10 })).toEqual({ result: 'match', counter: 15 });
    expect(matchHotp(secret, params, codeAt(16), { nextCounter: 5, lookAhead: 10 })).toEqual({ result: 'no_match' });
  });
  it('OTP-07: a code at or below the last used counter is a replay', () => {
    expect(matchHotp(secret, params, codeAt(4), { nextCounter: 5, lookAhead: 10 })).toEqual({ result: 'replay', counter: 4 });
  });
  it('a wrong code does not match', () => {
    const wrong = codeAt(5) === '000000' ? '000001' : '000000';
    expect(matchHotp(secret, params, wrong, { nextCounter: 5, lookAhead: 10 })).toEqual({ result: 'no_match' });
  });
});

describe('findHotpResync', () => {
  it('OTP-07: two consecutive codes beyond the look-ahead resynchronise; one alone or a gap does not', () => {
    expect(findHotpResync(secret, params, codeAt(40), codeAt(41), 0, 100)).toBe(41);
    expect(findHotpResync(secret, params, codeAt(40), codeAt(42), 0, 100)).toBeUndefined();
    expect(findHotpResync(secret, params, codeAt(40), codeAt(40), 0, 100)).toBeUndefined();
  });
});
