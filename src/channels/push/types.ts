/**
 * Push delivery: telling a user's authenticator "you have a push request". A notice carries only
 * the challenge id and the tenant, never user data (who signs in, from where, the number to
 * match): the device fetches those over its signed API (flows/push.ts). A notice that does not
 * arrive must never block a sign-in, so adapters answer with a result and do not throw for a
 * provider's refusal or silence; they throw only when built with an unusable configuration.
 */

/** What a notification says: which challenge, of which tenant. */
export interface PushNotice {
  challengeId: string;
  tenant: string;
}

/** What became of one delivery. */
export interface PushResult {
  ok: boolean;
  /** The provider's HTTP status, when it answered. */
  status?: number;
  /** Why it failed, in words safe to log (no keys, tokens or provider bodies). */
  error?: string;
  /** The provider says the registration no longer exists: the caller can forget the device's target. */
  gone?: boolean;
}

export interface PushDelivery {
  readonly channel: 'webpush' | 'fcm' | 'apns';
  /**
   * `target` is the device's registration: for `webpush` a PushSubscription as JSON
   * (`{endpoint, keys: {p256dh, auth}}`), for `fcm` the registration token, for `apns` the
   * device token (hex).
   */
  deliver(target: string, notice: PushNotice): Promise<PushResult>;
  /** Why a device's registration cannot be used (said to the device at activation), or null when it can. */
  checkTarget(target: string): string | null;
}

/** The notice as the data fields every channel sends. */
export function noticeData(notice: PushNotice): { type: 'push'; challenge_id: string; tenant: string } {
  return { type: 'push', challenge_id: notice.challengeId, tenant: notice.tenant };
}

/** Why a request never got an answer, without the request's details: a timeout or the socket error's code. */
export function unreachable(provider: string, error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `${provider} did not answer within ${timeoutMs / 1000} s`;
  }
  const code = errorCode(error) ?? errorCode(error instanceof Error ? error.cause : undefined);
  return `${provider} could not be reached${code === undefined ? '' : ` (${code})`}`;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const code = error.code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code) ? code : undefined;
}

export const PUSH_TIMEOUT_MS = 10_000;
