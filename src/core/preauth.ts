/**
 * The preauth decision (SPEC: "what to do with a sign-in before any factor"), as a pure
 * function of the user's state and registered methods. Every decision carries its reason.
 */
export type PreauthResult = 'allow' | 'challenge' | 'enroll' | 'deny';

export type PreauthReason =
  | 'unknown_user'
  | 'mfa_disabled'
  | 'blocked'
  | 'fraud_block'
  | 'locked_out'
  | 'registration_required'
  | 'mfa_required';

export interface PreauthUser {
  readonly mfaState: 'disabled' | 'enabled' | 'enforced';
  readonly status: 'active' | 'blocked';
  readonly blockedUntil: number | null;
  readonly blockedForFraud: boolean;
  readonly lockedUntil: number | null;
}

export interface PreauthDecision {
  readonly result: PreauthResult;
  readonly reason: PreauthReason;
}

export function decidePreauth(user: PreauthUser | undefined, activeMethodCount: number, nowMs: number): PreauthDecision {
  if (user === undefined) return { result: 'deny', reason: 'unknown_user' };
  if (user.status === 'blocked' && (user.blockedUntil === null || user.blockedUntil > nowMs)) {
    return { result: 'deny', reason: user.blockedForFraud ? 'fraud_block' : 'blocked' };
  }
  if (user.mfaState === 'disabled') return { result: 'allow', reason: 'mfa_disabled' };
  if (user.lockedUntil !== null && user.lockedUntil > nowMs) return { result: 'deny', reason: 'locked_out' };
  if (activeMethodCount === 0) return { result: 'enroll', reason: 'registration_required' };
  return { result: 'challenge', reason: 'mfa_required' };
}
