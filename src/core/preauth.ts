import { NO_POLICIES, type PolicyEvaluation } from './policies.js';

/**
 * The preauth decision (SPEC: "what to do with a sign-in before any factor"), as a pure
 * function of what is known about the sign-in. Every decision carries its reason and a trace:
 * each check consulted, in order, and what it said — so an administrator can read why a sign-in
 * was allowed, challenged or denied.
 *
 * The order (README "Why preauth decided that"):
 *  1. user      — unknown → deny unknown_user
 *  2. status    — blocked by an administrator or for fraud → deny blocked | fraud_block
 *  3. policy    — the tenant's conditional access policies (core/policies.ts), each consulted in
 *                 order until the first that applies, each in the trace. Its grant:
 *                 block → deny policy_block; require_phishing_resistant → deny
 *                 phishing_resistant_required (only WebAuthn satisfies it, SECURITY.md WA-03, and
 *                 Countersign has no WebAuthn method yet); allow_without_mfa → allow policy_allow;
 *                 require_mfa → decides nothing here, but steps 4–10 below change (marked ★).
 *                 Policies come before state and client so that a block also stops users with
 *                 MFA disabled and legacy clients ("block legacy authentication"), and
 *                 allow_without_mfa waives the second factor, so the checks that exist for the
 *                 second factor (state, client, lockout) do not concern it; status still does.
 *  4. state     — MFA disabled → allow mfa_disabled (★ not when a policy requires MFA: the user
 *                 is then treated as enforced)
 *  5. client    — a legacy (non-browser) client: enabled → allow legacy_client (single factor, as
 *                 Azure lets it keep working; ★ not when a policy requires MFA); enforced → deny
 *                 app_password_required
 *  6. lockout   — locked after failed second factors → deny locked_out
 *  7. bypass    — a one-time bypass an administrator granted → allow bypass (used up). ★ It still
 *                 works under require_mfa: it is a single-use, expiring, audited decision about
 *                 one user (BYP-01), exactly for the day that user cannot do MFA; a tenant-wide
 *                 "MFA for everyone" policy would otherwise make bypasses useless. A `block`
 *                 policy is not bypassed (step 3 comes first).
 *  8. trusted IP — the client IP is in the tenant's trusted ranges → allow trusted_ip
 *  9. remembered device — a valid remember token for this user and application → allow remembered_device
 * 10. cache     — a success for this user and application (and IP) within the tenant's seconds → allow cached
 *                 ★ Steps 8–10 are standing skips, not decisions about this sign-in: a policy
 *                 that requires MFA is not waived by them (TIP-01: pre-auth checks do not
 *                 substitute for a factor); the trace says so.
 * 11. methods   — none registered → enroll registration_required; else challenge mfa_required
 */
export type PreauthResult = 'allow' | 'challenge' | 'enroll' | 'deny';

export type PreauthReason =
  | 'unknown_user'
  | 'policy_block'
  | 'policy_allow'
  | 'phishing_resistant_required'
  | 'mfa_disabled'
  | 'blocked'
  | 'fraud_block'
  | 'legacy_client'
  | 'app_password_required'
  | 'locked_out'
  | 'bypass'
  | 'trusted_ip'
  | 'remembered_device'
  | 'cached'
  | 'registration_required'
  | 'mfa_required';

export interface PreauthUser {
  readonly mfaState: 'disabled' | 'enabled' | 'enforced';
  readonly status: 'active' | 'blocked';
  readonly blockedUntil: number | null;
  readonly blockedForFraud: boolean;
  readonly lockedUntil: number | null;
}

/** Everything the decision looks at, gathered by flows/preauth.ts. */
export interface PreauthFacts {
  readonly user: PreauthUser | undefined;
  readonly client: 'browser' | 'legacy';
  readonly now: number;
  readonly activeMethodCount: number;
  /** The client IP the decision uses (the application's `ip`), if any. */
  readonly ip: string | null;
  /** An unused, unexpired one-time bypass of the user: when it ends. */
  readonly bypassExpiresAt: number | null;
  /** The tenant's trusted range the IP falls in, or null. */
  readonly trustedRange: string | null;
  readonly trustedRangeCount: number;
  /** What became of a remember token the application presented. */
  readonly remembered: 'absent' | 'valid' | 'not_valid' | 'off';
  /** MFA Server caching: the seconds a success is reused (0 = off) and the last success that qualifies. */
  readonly cacheSeconds: number;
  readonly cachedSuccessAt: number | null;
  readonly appPasswordsAllowed: boolean;
  /** The tenant's policies evaluated for this sign-in (core/policies.ts); absent = none. */
  readonly policy?: PolicyEvaluation;
}

export interface TraceStep {
  /** Which check: user, status, policy (one step per policy consulted), state, client, lockout, bypass, trusted_ip, remembered_device, cache, methods. */
  readonly check: string;
  /** What it found, in words. */
  readonly said: string;
  /** True on the check that decided. */
  readonly decided?: true;
}

export interface PreauthDecision {
  readonly result: PreauthResult;
  readonly reason: PreauthReason;
  readonly trace: readonly TraceStep[];
}

function seconds(ms: number): string {
  return `${Math.max(0, Math.ceil(ms / 1000))} s`;
}

export function decidePreauth(facts: PreauthFacts): PreauthDecision {
  const trace: TraceStep[] = [];
  const note = (check: string, said: string) => trace.push({ check, said });
  const decide = (check: string, said: string, result: PreauthResult, reason: PreauthReason): PreauthDecision => {
    trace.push({ check, said, decided: true });
    return { result, reason, trace };
  };
  const { user, now } = facts;

  if (user === undefined) return decide('user', 'no such user in this tenant', 'deny', 'unknown_user');
  note('user', 'found');

  if (user.status === 'blocked' && (user.blockedUntil === null || user.blockedUntil > now)) {
    const until = user.blockedUntil === null ? 'until an administrator unblocks' : `until ${new Date(user.blockedUntil).toISOString()}`;
    return user.blockedForFraud ? decide('status', `blocked after a fraud report, ${until}`, 'deny', 'fraud_block') : decide('status', `blocked by an administrator, ${until}`, 'deny', 'blocked');
  }
  note('status', 'active');

  const policy = facts.policy ?? NO_POLICIES;
  if (policy.consulted.length === 0) note('policy', 'no policies apply: none are set for this tenant');
  for (const step of policy.consulted) if (!step.applies) note('policy', step.said);
  const matched = policy.matched;
  const applied = policy.consulted.at(-1)?.said ?? '';
  if (matched?.grant === 'block') return decide('policy', `${applied}: the sign-in is blocked`, 'deny', 'policy_block');
  if (matched?.grant === 'require_phishing_resistant') {
    return decide('policy', `${applied}: only a phishing-resistant method (a WebAuthn security key or passkey) satisfies it, and the user has none`, 'deny', 'phishing_resistant_required');
  }
  if (matched?.grant === 'allow_without_mfa') return decide('policy', `${applied}: the sign-in needs no second factor`, 'allow', 'policy_allow');
  if (matched?.grant === 'require_mfa') note('policy', `${applied}: MFA is required; trusted IPs, remembered devices and cached successes cannot waive it`);
  else if (policy.consulted.length > 0) note('policy', `none of the ${policy.consulted.length} policies applies`);
  // A policy that requires MFA: the standing skips below do not waive the factor.
  const required = matched?.grant === 'require_mfa' ? `, but policy "${matched.name}" requires MFA` : null;

  if (user.mfaState === 'disabled' && required === null) return decide('state', 'MFA is disabled for the user', 'allow', 'mfa_disabled');
  note('state', user.mfaState === 'disabled' ? `MFA is disabled for the user${required ?? ''}` : `MFA ${user.mfaState}`);

  if (facts.client === 'legacy') {
    if (user.mfaState === 'enabled' && required === null) return decide('client', 'a legacy client; the user is enabled, not yet enforced, so the password alone still works', 'allow', 'legacy_client');
    const why = required === null ? '' : ` (policy "${matched?.name ?? ''}" requires MFA)`;
    return decide(
      'client',
      facts.appPasswordsAllowed ? `a legacy client cannot do MFA${why}: the user must sign in with an app password` : `a legacy client cannot do MFA${why}, and app passwords are turned off for this tenant`,
      'deny',
      'app_password_required',
    );
  }
  note('client', 'browser');

  if (user.lockedUntil !== null && user.lockedUntil > now) return decide('lockout', `locked out for ${seconds(user.lockedUntil - now)} after failed second factors`, 'deny', 'locked_out');
  note('lockout', 'not locked out');

  if (facts.bypassExpiresAt !== null && facts.bypassExpiresAt > now) return decide('bypass', `a one-time bypass, valid ${seconds(facts.bypassExpiresAt - now)} more, is used now`, 'allow', 'bypass');
  note('bypass', 'none');

  if (facts.trustedRange !== null) {
    const said = `${facts.ip ?? ''} is in the trusted range ${facts.trustedRange}`;
    if (required === null) return decide('trusted_ip', said, 'allow', 'trusted_ip');
    note('trusted_ip', `${said}${required}`);
  } else {
    note('trusted_ip', facts.trustedRangeCount === 0 ? 'no trusted IPs set' : facts.ip === null ? 'no client IP given' : `${facts.ip} is in none of the ${facts.trustedRangeCount} trusted ranges`);
  }

  if (facts.remembered === 'valid') {
    const said = 'a valid remember token for this user and application';
    if (required === null) return decide('remembered_device', said, 'allow', 'remembered_device');
    note('remembered_device', `${said}${required}`);
  } else {
    note('remembered_device', facts.remembered === 'off' ? 'remembering MFA is off for this tenant' : facts.remembered === 'absent' ? 'no remember token given' : 'the remember token is not valid (expired, revoked, or for another user or application)');
  }

  if (facts.cacheSeconds > 0 && facts.cachedSuccessAt !== null && now - facts.cachedSuccessAt <= facts.cacheSeconds * 1000) {
    const said = `a second factor succeeded ${seconds(now - facts.cachedSuccessAt)} ago (caching: ${facts.cacheSeconds} s)`;
    if (required === null) return decide('cache', said, 'allow', 'cached');
    note('cache', `${said}${required}`);
  } else {
    note('cache', facts.cacheSeconds === 0 ? 'caching is off' : `no success within ${facts.cacheSeconds} s`);
  }

  if (facts.activeMethodCount === 0) return decide('methods', 'no method registered: the user must register one', 'enroll', 'registration_required');
  return decide('methods', `${facts.activeMethodCount} method${facts.activeMethodCount === 1 ? '' : 's'} registered: a second factor is needed`, 'challenge', 'mfa_required');
}
