import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { CountersignError } from '../../core/errors.js';
import { noticeData, PUSH_TIMEOUT_MS, unreachable, type PushDelivery, type PushNotice, type PushResult } from './types.js';

/**
 * Firebase Cloud Messaging, HTTP v1 API, by hand over `fetch` (no firebase-admin): the Android
 * authenticator registered an FCM token.
 *
 * Authorization is Google's OAuth 2.0 service-account flow: a JWT signed RS256 with the service
 * account's key is exchanged at the token endpoint for an access token, kept until a minute
 * before it expires (one token exchange in flight at a time). A message carries only data
 * fields, high priority, and a 60-second TTL. An `UNREGISTERED` error or a 404 means the token is
 * gone. Errors name HTTP statuses and Google's error codes, never the private key, the access
 * token, the device token or Google's free-text messages.
 */
export interface FcmConfig {
  readonly projectId: string;
  /** The service account's `client_email`. */
  readonly clientEmail: string;
  /** The service account's `private_key` (PEM, RSA). */
  readonly privateKey: string;
  readonly tokenUrl?: string;
  readonly apiUrl?: string;
}

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const TOKEN_MARGIN_MS = 60_000;

interface AccessToken {
  token: string;
  expiresAt: number;
}

export function createFcm(config: FcmConfig, fetchImpl: typeof fetch = fetch): PushDelivery {
  const tokenUrl = config.tokenUrl ?? 'https://oauth2.googleapis.com/token';
  const apiUrl = (config.apiUrl ?? 'https://fcm.googleapis.com').replace(/\/+$/, '');
  const sendUrl = `${apiUrl}/v1/projects/${encodeURIComponent(config.projectId)}/messages:send`;
  const key = rsaKey(config.privateKey);
  let cached: AccessToken | undefined;
  let pending: Promise<AccessToken | string> | undefined;

  function assertion(nowMs: number): string {
    const iat = Math.floor(nowMs / 1000);
    const header = base64url({ alg: 'RS256', typ: 'JWT' });
    const claims = base64url({ iss: config.clientEmail, scope: FCM_SCOPE, aud: tokenUrl, iat, exp: iat + 3600 });
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), key).toString('base64url');
    return `${header}.${claims}.${signature}`;
  }

  /** A fresh access token, or why there is none. */
  async function exchange(): Promise<AccessToken | string> {
    const now = Date.now();
    const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: assertion(now) });
    let response: Response;
    try {
      response = await fetchImpl(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(PUSH_TIMEOUT_MS),
      });
    } catch (error) {
      return unreachable('the Google token endpoint', error, PUSH_TIMEOUT_MS);
    }
    const payload = await readJson(response);
    if (!response.ok) {
      const code = safeCode(field(payload, 'error'));
      return `the Google token endpoint answered HTTP ${response.status}${code === undefined ? '' : ` (${code})`}`;
    }
    const token = field(payload, 'access_token');
    const expiresIn = field(payload, 'expires_in');
    if (typeof token !== 'string' || token === '') return 'the Google token endpoint answered without an access token';
    const seconds = typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 3600;
    return { token, expiresAt: now + seconds * 1000 };
  }

  async function accessToken(): Promise<AccessToken | string> {
    if (cached !== undefined && Date.now() < cached.expiresAt - TOKEN_MARGIN_MS) return cached;
    pending ??= exchange().finally(() => {
      pending = undefined;
    });
    const got = await pending;
    if (typeof got !== 'string') cached = got;
    return got;
  }

  return {
    channel: 'fcm',
    checkTarget: (target: string) => (/^[A-Za-z0-9_:.-]{1,4096}$/.test(target) ? null : 'must be the FCM registration token'),
    async deliver(target: string, notice: PushNotice): Promise<PushResult> {
      if (target === '' || target.length > 4096) return { ok: false, error: 'the FCM registration token is not valid' };
      const auth = await accessToken();
      if (typeof auth === 'string') return { ok: false, error: auth };
      const body = {
        message: {
          token: target,
          data: noticeData(notice),
          android: { priority: 'high', ttl: '60s' },
          apns: { headers: { 'apns-priority': '10' } },
        },
      };
      let response: Response;
      try {
        response = await fetchImpl(sendUrl, {
          method: 'POST',
          headers: { authorization: `Bearer ${auth.token}`, 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(PUSH_TIMEOUT_MS),
        });
      } catch (error) {
        return { ok: false, error: unreachable('FCM', error, PUSH_TIMEOUT_MS) };
      }
      const payload = await readJson(response);
      if (response.ok) return { ok: true, status: response.status };
      // A token Google no longer takes: fetch a new one next time.
      if (response.status === 401 && cached === auth) cached = undefined;
      const error = field(payload, 'error');
      const status = safeCode(field(error, 'status'));
      const errorCode = fcmErrorCode(error);
      const gone = response.status === 404 || errorCode === 'UNREGISTERED';
      const codes = [status, errorCode].filter((code): code is string => code !== undefined);
      return {
        ok: false,
        status: response.status,
        error: `FCM answered HTTP ${response.status}${codes.length === 0 ? '' : ` (${codes.join(', ')})`}`,
        ...(gone ? { gone: true } : {}),
      };
    },
  };
}

function rsaKey(pem: string): KeyObject {
  try {
    const key = createPrivateKey({ key: pem, format: 'pem' });
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
    return key;
  } catch {
    throw new CountersignError('CONFIG_INVALID', 'FCM: the service account private key is not an RSA private key in PEM form');
  }
}

/** The `errorCode` of the FcmError detail (`UNREGISTERED`, `SENDER_ID_MISMATCH`, …). */
function fcmErrorCode(error: unknown): string | undefined {
  const details = field(error, 'details');
  if (!Array.isArray(details)) return undefined;
  for (const detail of details as unknown[]) {
    const code = safeCode(field(detail, 'errorCode'));
    if (code !== undefined) return code;
  }
  return undefined;
}

/** An enum-like code (`NOT_FOUND`, `invalid_grant`), or nothing: free text from a provider is not repeated. */
function safeCode(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z][A-Za-z0-9_]{0,59}$/.test(value) ? value : undefined;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return JSON.parse(await response.text());
  } catch {
    return undefined;
  }
}

function field(value: unknown, name: string): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return (value as Record<string, unknown>)[name];
}
