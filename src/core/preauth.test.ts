import { describe, expect, it } from 'vitest';
import type { PolicyEvaluation, PolicyGrant } from './policies.js';
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
    expect(trace.map((s) => s.check)).toEqual(['user', 'status', 'policy', 'state', 'client', 'lockout', 'bypass', 'trusted_ip', 'remembered_device', 'cache', 'methods']);
    expect(trace.filter((s) => s.decided === true).map((s) => s.check)).toEqual(['methods']);
    expect(trace.find((s) => s.check === 'trusted_ip')?.said).toBe('198.51.100.7 is in none of the 3 trusted ranges');
    expect(trace.find((s) => s.check === 'cache')?.said).toBe('no success within 30 s');
    expect(trace.at(-1)?.said).toBe('2 methods registered: a second factor is needed');
  });

  describe('with a policy (step 3)', () => {
    const applies = (grant: PolicyGrant, before = 0): PolicyEvaluation => ({
      consulted: [
        ...Array.from({ length: before }, (_, i) => ({ policy: `p${i + 1}`, applies: false, said: `policy "p${i + 1}" (#${i + 1}, block): does not apply — a browser client is not among its client types (legacy)` })),
        { policy: 'P', applies: true, said: `policy "P" (#${before + 1}, ${grant}): applies` },
      ],
      matched: { id: 'id-p', name: 'P', grant },
    });
    const skips: Partial<PreauthFacts> = { trustedRange: '203.0.113.0/24', ip: '203.0.113.9', trustedRangeCount: 1, remembered: 'valid', cacheSeconds: 60, cachedSuccessAt: now - 1000 };
    it('block denies policy_block — before the state, so MFA-disabled users and legacy clients are blocked too; status still comes first', () => {
      expect(decide(base, 1, { policy: applies('block') })).toEqual({ result: 'deny', reason: 'policy_block' });
      expect(decide({ ...base, mfaState: 'disabled' }, 0, { policy: applies('block') })).toEqual({ result: 'deny', reason: 'policy_block' });
      expect(decide({ ...base, mfaState: 'enabled' }, 1, { client: 'legacy', policy: applies('block') })).toEqual({ result: 'deny', reason: 'policy_block' });
      expect(decide({ ...base, status: 'blocked', blockedForFraud: true }, 1, { policy: applies('allow_without_mfa') })).toEqual({ result: 'deny', reason: 'fraud_block' });
      // Nothing that skips the second factor lifts a policy block, not even a bypass.
      expect(decide(base, 1, { ...skips, bypassExpiresAt: now + 1000, policy: applies('block') })).toEqual({ result: 'deny', reason: 'policy_block' });
    });
    it('allow_without_mfa allows policy_allow, even for an enforced user on a legacy client', () => {
      expect(decide(base, 1, { policy: applies('allow_without_mfa') })).toEqual({ result: 'allow', reason: 'policy_allow' });
      expect(decide(base, 1, { client: 'legacy', policy: applies('allow_without_mfa') })).toEqual({ result: 'allow', reason: 'policy_allow' });
    });
    it('WA-03: require_phishing_resistant denies while no phishing-resistant method exists: TOTP, SMS and push do not satisfy it', () => {
      const decision = decidePreauth(facts(base, 3, { policy: applies('require_phishing_resistant') }));
      expect(decision).toMatchObject({ result: 'deny', reason: 'phishing_resistant_required' });
      expect(decision.trace.at(-1)).toEqual({ check: 'policy', said: expect.stringContaining('only a phishing-resistant method (a WebAuthn security key or passkey) satisfies it'), decided: true });
    });
    it('TIP-01: require_mfa is not waived by a trusted IP, a remembered device or a cached success; the trace says why', () => {
      const decision = decidePreauth(facts(base, 1, { ...skips, policy: applies('require_mfa') }));
      expect(decision).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
      const said = Object.fromEntries(decision.trace.map((s) => [s.check, s.said]));
      expect(said['trusted_ip']).toBe('203.0.113.9 is in the trusted range 203.0.113.0/24, but policy "P" requires MFA');
      expect(said['remembered_device']).toBe('a valid remember token for this user and application, but policy "P" requires MFA');
      expect(said['cache']).toMatch(/^a second factor succeeded 1 s ago \(caching: 60 s\), but policy "P" requires MFA$/);
      // Without the policy the trusted IP decides.
      expect(decide(base, 1, skips)).toEqual({ result: 'allow', reason: 'trusted_ip' });
      // With nothing registered: enroll.
      expect(decide(base, 0, { ...skips, policy: applies('require_mfa') })).toEqual({ result: 'enroll', reason: 'registration_required' });
    });
    it('require_mfa: a user with MFA disabled is treated as enforced, and an enabled user\'s legacy client needs an app password', () => {
      expect(decide({ ...base, mfaState: 'disabled' }, 1, { policy: applies('require_mfa') })).toEqual({ result: 'challenge', reason: 'mfa_required' });
      expect(decide({ ...base, mfaState: 'enabled' }, 1, { client: 'legacy', policy: applies('require_mfa') })).toEqual({ result: 'deny', reason: 'app_password_required' });
      expect(decidePreauth(facts({ ...base, mfaState: 'disabled' }, 1, { policy: applies('require_mfa') })).trace.find((s) => s.check === 'state')?.said).toBe('MFA is disabled for the user, but policy "P" requires MFA');
    });
    it('require_mfa still lets a one-time bypass through (an audited decision about one user) but not a lockout', () => {
      expect(decide(base, 1, { bypassExpiresAt: now + 1000, policy: applies('require_mfa') })).toEqual({ result: 'allow', reason: 'bypass' });
      expect(decide({ ...base, lockedUntil: now + 1 }, 1, { policy: applies('require_mfa') })).toEqual({ result: 'deny', reason: 'locked_out' });
    });
    it('each policy consulted is one trace step, in order; the one that applied decides', () => {
      const { trace } = decidePreauth(facts(base, 1, { policy: applies('block', 2) }));
      expect(trace.map((s) => s.check)).toEqual(['user', 'status', 'policy', 'policy', 'policy']);
      expect(trace[2]?.said).toMatch(/^policy "p1" \(#1, block\): does not apply — /);
      expect(trace.at(-1)).toEqual({ check: 'policy', said: 'policy "P" (#3, block): applies: the sign-in is blocked', decided: true });
      const none = decidePreauth(facts(base, 1, { policy: { consulted: applies('block', 2).consulted.slice(0, 2), matched: null } }));
      expect(none.trace.filter((s) => s.check === 'policy').map((s) => s.said).at(-1)).toBe('none of the 2 policies applies');
      expect(none).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
    });
  });
});
