import { describe, expect, it } from 'vitest';
import { decidePreauth, type PreauthUser } from './preauth.js';

const now = 1_700_000_000_000;
const base: PreauthUser = { mfaState: 'enforced', status: 'active', blockedUntil: null, blockedForFraud: false, lockedUntil: null };

describe('decidePreauth', () => {
  it('unknown user → deny unknown_user', () => {
    expect(decidePreauth(undefined, 0, now)).toEqual({ result: 'deny', reason: 'unknown_user' });
  });
  it('disabled → allow, even with methods registered', () => {
    expect(decidePreauth({ ...base, mfaState: 'disabled' }, 2, now)).toEqual({ result: 'allow', reason: 'mfa_disabled' });
  });
  it('enabled with nothing registered → enroll', () => {
    expect(decidePreauth({ ...base, mfaState: 'enabled' }, 0, now)).toEqual({ result: 'enroll', reason: 'registration_required' });
  });
  it('registered → challenge', () => {
    expect(decidePreauth({ ...base, mfaState: 'enabled' }, 1, now)).toEqual({ result: 'challenge', reason: 'mfa_required' });
    expect(decidePreauth(base, 1, now)).toEqual({ result: 'challenge', reason: 'mfa_required' });
  });
  it('locked out until later → deny locked_out; after the lockout → challenge', () => {
    expect(decidePreauth({ ...base, lockedUntil: now + 1 }, 1, now)).toEqual({ result: 'deny', reason: 'locked_out' });
    expect(decidePreauth({ ...base, lockedUntil: now }, 1, now)).toEqual({ result: 'challenge', reason: 'mfa_required' });
  });
  it('blocked → deny, even when MFA is disabled; an expired block no longer applies', () => {
    expect(decidePreauth({ ...base, mfaState: 'disabled', status: 'blocked' }, 0, now)).toEqual({ result: 'deny', reason: 'blocked' });
    expect(decidePreauth({ ...base, status: 'blocked', blockedForFraud: true, blockedUntil: now + 1 }, 1, now)).toEqual({ result: 'deny', reason: 'fraud_block' });
    expect(decidePreauth({ ...base, status: 'blocked', blockedUntil: now - 1 }, 1, now)).toEqual({ result: 'challenge', reason: 'mfa_required' });
  });
});
