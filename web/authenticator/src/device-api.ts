/**
 * The device side of Countersign's authenticator API (src/http/routes/authenticator.ts), as the
 * command-line authenticator speaks it: requests signed with the device's P-256 key (WebCrypto
 * ECDSA, whose signatures are already in the r ‖ s form the server expects), over the messages
 * of src/core/push-signature.ts. The server is this page's own origin.
 */
import { deviceRequestMessage, pushAnswerMessage, type PushDecision } from '../../../src/core/push-signature.js';
import type { Account, TotpSecret } from './accounts.js';
import { clockOffsetMs, learnServerTime, serverNow, skewMessage } from './server-clock.js';

/** One push request waiting for an answer, as GET /v1/authenticator/pending lists it. */
export interface PendingRequest {
  id: string;
  type: string;
  application: string | null;
  ip: string | null;
  location?: string | null;
  event: { title: string; detail: string | null } | null;
  expires_at: string;
  number_required: boolean;
  pin_required: boolean;
}

/** A refusal from the server, with its stable code, its message for people and any Retry-After. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** How long the server asked us to wait (Retry-After on a 429 or 503), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Retry-After (seconds or an HTTP date) in ms, or undefined; at most an hour. */
export function retryAfterMs(response: Response): number | undefined {
  const header = response.headers.get('retry-after');
  if (header === null || header.trim() === '') return undefined;
  const ms = /^\d+$/.test(header.trim()) ? Number(header.trim()) * 1000 : Date.parse(header) - serverNow();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 3_600_000) : undefined;
}

/** The refusal of a response that is not ok: the server's code and message when it sent JSON. */
export async function refusal(response: Response): Promise<ApiError> {
  let code = `HTTP_${response.status}`;
  let message = `The server answered ${response.status}.`;
  try {
    const error = ((await response.json()) as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (typeof error?.code === 'string') code = error.code;
    if (typeof error?.message === 'string') message = error.message;
  } catch {
    // Not JSON (a proxy's error page): reported by status.
  }
  return new ApiError(response.status, code, message, retryAfterMs(response));
}

/** 401 or 403: the server does not accept this device's signature (removed, or its clock is off). */
export function isSignatureRefused(error: unknown): error is ApiError {
  return error instanceof ApiError && (error.status === 401 || error.status === 403);
}

/**
 * Runs a signed request; when the server refuses the signature and its answer taught us a
 * different clock offset, signs and sends it once more. A refusal that stays is explained
 * plainly when this device's clock is far off.
 */
export async function withClockRetry<T>(attempt: () => Promise<T>): Promise<T> {
  const used = clockOffsetMs();
  try {
    return await attempt();
  } catch (error) {
    // A removed authenticator stays removed, whatever the clock.
    if (!isSignatureRefused(error) || error.code === 'DEVICE_UNKNOWN') throw error;
    if (Math.abs(clockOffsetMs() - used) < 2000) throw explainRefusal(error);
    try {
      return await attempt();
    } catch (again) {
      throw isSignatureRefused(again) ? explainRefusal(again) : again;
    }
  }
}

/** What a person is told when the server refuses this authenticator (no developer wording). */
export function plainRefusal(error: ApiError): string {
  if (error.code === 'DEVICE_UNKNOWN') return 'This authenticator was removed from your account. Remove it here too; ask your administrator for a new activation link if you still need it.';
  if (error.code === 'CLOCK_SKEW') return error.message;
  if (error.status === 404) return 'The server no longer knows this account. Remove it here, and ask your administrator for a new activation link.';
  return `The server refused this authenticator's signature (${error.message}). If it keeps happening, remove the account here and activate it again.`;
}

function explainRefusal(error: ApiError): ApiError {
  const skew = skewMessage();
  return skew === null ? error : new ApiError(error.status, 'CLOCK_SKEW', `${skew} (The server said: ${error.message})`, error.retryAfterMs);
}

/** The server's address: the page lives at `<base>/authenticator/`. */
export function apiUrl(path: string): string {
  return new URL(`..${path}`, new URL('./', location.href)).href;
}

function base64(bytes: ArrayBuffer): string {
  let text = '';
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text);
}

function base64url(bytes: ArrayBuffer): string {
  return base64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A new device key pair; the private half can sign but can never be exported. */
export async function newKeyPair(): Promise<{ privateKey: CryptoKey; publicKey: string }> {
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  return { privateKey: pair.privateKey, publicKey: base64(await crypto.subtle.exportKey('spki', pair.publicKey)) };
}

async function signText(key: CryptoKey, text: string): Promise<string> {
  return base64url(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, new TextEncoder().encode(text)));
}

/** `Authorization: Device <id>.<timestamp>.<signature>` for one request. */
export async function deviceAuthorization(account: Account, method: string, path: string): Promise<string> {
  const timestamp = serverNow();
  return `Device ${account.deviceId}.${timestamp}.${await signText(account.privateKey, deviceRequestMessage(account.deviceId, method, path, timestamp))}`;
}

async function call<T>(method: string, path: string, init: { body?: unknown; authorization?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  if (init.authorization !== undefined) headers['authorization'] = init.authorization;
  let response: Response;
  try {
    response = await fetch(apiUrl(path), { method, headers, body: init.body === undefined ? null : JSON.stringify(init.body), cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'OFFLINE', 'The Countersign server cannot be reached. Check your connection and try again.');
  }
  learnServerTime(response);
  if (!response.ok) throw await refusal(response);
  const text = await response.text();
  try {
    return (text === '' ? undefined : JSON.parse(text)) as T;
  } catch {
    throw new ApiError(response.status, 'NOT_JSON', 'The server’s answer could not be read (a proxy in the way?).');
  }
}

export interface Activated {
  device_id: string;
  tenant: string;
  username: string;
  totp?: TotpSecret & { uri: string };
}

/** What an activation link is for, without using it (a used or expired one is refused with 404). */
export function previewActivation(code: string): Promise<{ tenant: string; username: string; expires_at: string; with_totp: boolean }> {
  return call('POST', '/v1/authenticator/activation', { body: { code } });
}

export function activate(input: { code: string; publicKey: string; name: string; channel: 'poll' | 'webpush'; target?: string }): Promise<Activated> {
  return call<Activated>('POST', '/v1/authenticator/activate', {
    body: { code: input.code, public_key: input.publicKey, name: input.name, channel: input.channel, ...(input.target === undefined ? {} : { target: input.target }) },
  });
}

export async function fetchPending(account: Account): Promise<PendingRequest[]> {
  const path = '/v1/authenticator/pending';
  const body = await withClockRetry(async () => call<{ requests: PendingRequest[] }>('GET', path, { authorization: await deviceAuthorization(account, 'GET', path) }));
  return body.requests;
}

/** Answers a request, signed over the server's time (a refused stale signature is re-signed once with a corrected clock). */
/** The server's word on an answer; `reason` says which was mistyped when it was denied. */
export interface AnswerResult {
  id: string;
  status: string;
  reason?: 'wrong_number' | 'wrong_pin';
}

export function answer(account: Account, requestId: string, decision: PushDecision, number: string, pin: string | undefined): Promise<AnswerResult> {
  return withClockRetry(async () => {
    const timestamp = serverNow();
    const signature = await signText(account.privateKey, pushAnswerMessage(requestId, decision, number, timestamp));
    return call<AnswerResult>('POST', `/v1/authenticator/challenges/${encodeURIComponent(requestId)}/answer`, {
      body: { device_id: account.deviceId, decision, number, timestamp, signature, ...(pin === undefined ? {} : { pin }) },
    });
  });
}

/** The server's VAPID key for Web Push, or null when it has no Web Push configured. */
export async function webPushKey(): Promise<string | null> {
  try {
    return (await call<{ public_key: string | null }>('GET', '/v1/authenticator/web-push-key')).public_key;
  } catch {
    return null;
  }
}
