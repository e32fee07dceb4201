import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from 'node:http2';
import { CountersignError } from '../../core/errors.js';
import { PUSH_TIMEOUT_MS, unreachable, type PushDelivery, type PushNotice, type PushResult } from './types.js';

/**
 * Apple Push Notification service over HTTP/2 with token-based authentication: the iOS
 * authenticator registered a device token.
 *
 * The provider token is a JWT signed ES256 with the team's .p8 key (signature in JOSE form),
 * reused for 50 minutes (Apple refuses a token older than an hour and one renewed more than
 * every 20 minutes). One HTTP/2 session per host carries every request, as Apple asks; `close()`
 * ends it. The alert is generic ("Sign-in request") and the payload carries only the challenge
 * id and tenant; it expires after 60 seconds. A 410 or `BadDeviceToken` means the token is gone.
 * Errors name the status and Apple's `reason`, never the key, the JWT or the device token.
 */
export interface ApnsConfig {
  readonly teamId: string;
  readonly keyId: string;
  /** The .p8 key (PEM, EC P-256). */
  readonly privateKey: string;
  /** The app's bundle id. */
  readonly topic: string;
  /** `https://api.push.apple.com`, or `https://api.sandbox.push.apple.com` for development builds. */
  readonly host?: string;
}

export interface ApnsOptions {
  /** Extra certificate authorities (PEM) to trust, for a server with a private certificate (tests). */
  readonly ca?: string | Buffer;
  readonly timeoutMs?: number;
}

export interface ApnsDelivery extends PushDelivery {
  readonly channel: 'apns';
  /** Ends the HTTP/2 session (a later delivery opens a new one). */
  close(): Promise<void>;
}

const TOKEN_REUSE_MS = 50 * 60_000;
const DEVICE_TOKEN = /^[0-9A-Fa-f]{32,200}$/;
const GONE_REASONS = new Set(['BadDeviceToken', 'Unregistered', 'ExpiredToken']);

interface Answer {
  status: number;
  body: string;
}

export function createApns(config: ApnsConfig, options: ApnsOptions = {}): ApnsDelivery {
  const host = (config.host ?? 'https://api.push.apple.com').replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? PUSH_TIMEOUT_MS;
  const key = ecKey(config.privateKey);
  let jwt: { value: string; issuedAt: number } | undefined;
  let session: ClientHttp2Session | undefined;

  function providerToken(): string {
    const now = Date.now();
    if (jwt !== undefined && now - jwt.issuedAt < TOKEN_REUSE_MS) return jwt.value;
    const header = base64url({ alg: 'ES256', kid: config.keyId });
    const claims = base64url({ iss: config.teamId, iat: Math.floor(now / 1000) });
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    jwt = { value: `${header}.${claims}.${signature}`, issuedAt: now };
    return jwt.value;
  }

  function currentSession(): ClientHttp2Session {
    if (session !== undefined && !session.closed && !session.destroyed) return session;
    const opened = connect(host, options.ca === undefined ? {} : { ca: options.ca });
    // Errors reach the request that was using the session; this only keeps them from being unhandled.
    opened.on('error', () => undefined);
    opened.on('goaway', () => {
      if (session === opened) session = undefined;
    });
    opened.on('close', () => {
      if (session === opened) session = undefined;
    });
    session = opened;
    return opened;
  }

  function request(path: string, headers: Record<string, string>, body: string): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      let stream;
      try {
        stream = currentSession().request({ ':method': 'POST', ':path': path, ...headers });
      } catch (error) {
        reject(error instanceof Error ? error : new Error('the HTTP/2 request could not be made'));
        return;
      }
      let status = 0;
      const chunks: Buffer[] = [];
      stream.setTimeout(timeoutMs, () => {
        const timeout = new Error('timed out');
        timeout.name = 'TimeoutError';
        stream.close();
        reject(timeout);
      });
      stream.on('response', (responseHeaders: IncomingHttpHeaders & IncomingHttpStatusHeader) => {
        status = responseHeaders[':status'] ?? 0;
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8') }));
      stream.on('error', reject);
      // Reset or cut off before its end: settles nothing if `end` came first.
      stream.on('close', () => reject(new Error('the HTTP/2 stream closed without an answer')));
      stream.end(body);
    });
  }

  return {
    channel: 'apns',
    checkTarget: (target: string) => (DEVICE_TOKEN.test(target) ? null : 'must be the APNs device token (hex)'),
    async deliver(target: string, notice: PushNotice): Promise<PushResult> {
      if (!DEVICE_TOKEN.test(target)) return { ok: false, error: 'the APNs device token is not valid' };
      const body = JSON.stringify({
        aps: { alert: { title: 'Sign-in request', body: 'Open Countersign to approve or deny' }, sound: 'default' },
        challenge_id: notice.challengeId,
        tenant: notice.tenant,
      });
      const token = providerToken();
      let answer: Answer;
      try {
        answer = await request(
          `/3/device/${target}`,
          {
            authorization: `bearer ${token}`,
            'apns-topic': config.topic,
            'apns-push-type': 'alert',
            'apns-priority': '10',
            'apns-expiration': String(Math.floor(Date.now() / 1000) + 60),
            'content-type': 'application/json',
          },
          body,
        );
      } catch (error) {
        return { ok: false, error: unreachable('APNs', error, timeoutMs) };
      }
      if (answer.status === 200) return { ok: true, status: 200 };
      const reason = apnsReason(answer.body);
      // Apple refused the provider token: sign a new one next time.
      if (answer.status === 403 && (reason === 'ExpiredProviderToken' || reason === 'InvalidProviderToken') && jwt?.value === token) jwt = undefined;
      const gone = answer.status === 410 || (reason !== undefined && GONE_REASONS.has(reason));
      return {
        ok: false,
        status: answer.status,
        error: `APNs answered HTTP ${answer.status}${reason === undefined ? '' : ` (${reason})`}`,
        ...(gone ? { gone: true } : {}),
      };
    },
    async close(): Promise<void> {
      const open = session;
      session = undefined;
      if (open === undefined || open.closed || open.destroyed) return;
      await new Promise<void>((resolve) => open.close(() => resolve()));
    },
  };
}

function ecKey(pem: string): KeyObject {
  try {
    const key = createPrivateKey({ key: pem, format: 'pem' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not P-256');
    return key;
  } catch {
    throw new CountersignError('CONFIG_INVALID', 'APNs: the private key is not a P-256 key in PEM form (.p8)');
  }
}

/** Apple's `reason` (`BadDeviceToken`, `Unregistered`, …) when it is one: a word, nothing else. */
function apnsReason(body: string): string | undefined {
  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof payload !== 'object' || payload === null) return undefined;
  const reason = (payload as Record<string, unknown>).reason;
  return typeof reason === 'string' && /^[A-Za-z]{1,60}$/.test(reason) ? reason : undefined;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}
