import { describe, expect, it } from 'vitest';
import { decidePreauth, type PreauthFacts, type PreauthUser } from './preauth.js';

const now = 1_700_000_000_000;
const base: PreauthUser = { mfaState: 'enforced', status: 'active', blockedUntil: null, blockedForFraud: false, lockedUntil: null };
const facts = (user: PreauthUser | undefined, activeMethodCount: number, more: Partial<PreauthFacts> = {}): PreauthFacts => ({
  user,
  client: 'browser',
  now,
  activeMethodCount,
  ip: null,
  bypassExpiresAt: null,
  trustedRange: null,
  trustedRangeCount: 0,
  remembered: 'off',
  cacheSeconds: 0,
  cachedSuccessAt: null,
  appPasswordsAllowed: false,
  ...more,
});
const decide = (...args: Parameters<typeof facts>) => {
  const { result, reason } = decidePreauth(facts(...args));
  return { result, reason };
};

describe('decidePreauth', () => {
  it('unknown user → deny unknown_user', () => {
    expect(decide(undefined, 0)).toEqual({ result: 'deny', reason: 'unknown_user' });
  });
  it('disabled → allow, even with methods registered', () => {
    expect(decide({ ...base, mfaState: 'disabled' }, 2)).toEqual({ result: 'allow', reason: 'mfa_disabled' });
  });
  it('enabled with nothing registered → enroll', () => {
    expect(decide({ ...base, mfaState: 'enabled' }, 0)).toEqual({ result: 'enroll', reason: 'registration_required' });
  });
  it('registered → challenge', () => {
    expect(decide({ ...base, mfaState: 'enabled' }, 1)).toEqual({ result: 'challenge', reason: 'mfa_required' });
    expect(decide(base, 1)).toEqual({ result: 'challenge', reason: 'mfa_required' });
  });
  it('locked out until later → deny locked_out; after the lockout → challenge', () => {
    expect(decide({ ...base, lockedUntil: now + 1 }, 1)).toEqual({ result: 'deny', reason: 'locked_out' });
    expect(decide({ ...base, lockedUntil: now }, 1)).toEqual({ result: 'challenge', reason: 'mfa_required' });
  });
  it('blocked → deny, even when MFA is disabled; an expired block no longer applies', () => {
    expect(decide({ ...base, mfaState: 'disabled', status: 'blocked' }, 0)).toEqual({ result: 'deny', reason: 'blocked' });
    expect(decide({ ...base, status: 'blocked', blockedForFraud: true, blockedUntil: now + 1 }, 1)).toEqual({ result: 'deny', reason: 'fraud_block' });
    expect(decide({ ...base, status: 'blocked', blockedUntil: now - 1 }, 1)).toEqual({ result: 'challenge', reason: 'mfa_required' });
  });
  it('legacy clients: an enabled user keeps the password alone; an enforced one needs an app password', () => {
    expect(decide({ ...base, mfaState: 'enabled' }, 1, { client: 'legacy' })).toEqual({ result: 'allow', reason: 'legacy_client' });
    expect(decide(base, 1, { client: 'legacy' })).toEqual({ result: 'deny', reason: 'app_password_required' });
    expect(decidePreauth(facts(base, 1, { client: 'legacy' })).trace.at(-1)?.said).toMatch(/app passwords are turned off/);
    expect(decidePreauth(facts(base, 1, { client: 'legacy', appPasswordsAllowed: true })).trace.at(-1)?.said).toMatch(/must sign in with an app password/);
  });
  it('a bypass, a trusted IP, a remembered device and a cached success each allow, in that order, after status and lockout', () => {
    const all: Partial<PreauthFacts> = { bypassExpiresAt: now + 1000, trustedRange: '203.0.113.0/24', ip: '203.0.113.9', trustedRangeCount: 1, remembered: 'valid', cacheSeconds: 60, cachedSuccessAt: now - 1000 };
    expect(decide(base, 1, all)).toEqual({ result: 'allow', reason: 'bypass' });
    expect(decide(base, 1, { ...all, bypassExpiresAt: null })).toEqual({ result: 'allow', reason: 'trusted_ip' });
    expect(decide(base, 1, { ...all, bypassExpiresAt: null, trustedRange: null })).toEqual({ result: 'allow', reason: 'remembered_device' });
    expect(decide(base, 1, { ...all, bypassExpiresAt: null, trustedRange: null, remembered: 'not_valid' })).toEqual({ result: 'allow', reason: 'cached' });
    expect(decide(base, 1, { ...all, bypassExpiresAt: null, trustedRange: null, remembered: 'not_valid', cachedSuccessAt: now - 61_000 })).toEqual({ result: 'challenge', reason: 'mfa_required' });
    // None of them lifts a block or a lockout.
    expect(decide({ ...base, status: 'blocked' }, 1, all)).toEqual({ result: 'deny', reason: 'blocked' });
    expect(decide({ ...base, lockedUntil: now + 1 }, 1, all)).toEqual({ result: 'deny', reason: 'locked_out' });
    // An expired bypass is not one.
    expect(decide(base, 1, { bypassExpiresAt: now })).toEqual({ result: 'challenge', reason: 'mfa_required' });
  });
  it('the trace lists every check in order, marks the one that decided, and says why', () => {
    const { trace } = decidePreauth(facts(base, 2, { ip: '198.51.100.7', trustedRangeCount: 3, remembered: 'absent', cacheSeconds: 30 }));
    expect(trace.map((s) => s.check)).toEqual(['user', 'status', 'state', 'client', 'lockout', 'bypass', 'trusted_ip', 'remembered_device', 'cache', 'methods']);
    expect(trace.filter((s) => s.decided === true).map((s) => s.check)).toEqual(['methods']);
    expect(trace.find((s) => s.check === 'trusted_ip')?.said).toBe('198.51.100.7 is in none of the 3 trusted ranges');
    expect(trace.find((s) => s.check === 'cache')?.said).toBe('no success within 30 s');
    expect(trace.at(-1)?.said).toBe('2 methods registered: a second factor is needed');
  });
});
