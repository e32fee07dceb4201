import { Agent } from 'node:https';
import { parse as legacyParse } from 'node:url';
import webpush from 'web-push';
import { CountersignError } from '../../core/errors.js';
import { noticeData, PUSH_TIMEOUT_MS, unreachable, type PushDelivery, type PushNotice, type PushResult } from './types.js';

/**
 * Web Push (RFC 8030) with VAPID (RFC 8292) and the aes128gcm payload encryption of RFC 8291,
 * through the `web-push` library: the authenticator running in a browser registered a
 * PushSubscription, and its push service (Mozilla's, Google's, Apple's) wakes it.
 *
 * The message lives 60 seconds (TTL) with urgency `high`: a sign-in does not wait longer. A 404
 * or 410 from the push service means the subscription is gone. Errors name the HTTP status or
 * the socket error, never the VAPID private key, the subscription's keys or the service's body.
 */
export interface WebPushConfig {
  /** VAPID public key: the uncompressed P-256 point, base64url (what browsers take as `applicationServerKey`). */
  readonly publicKey: string;
  /** VAPID private key: the 32-byte P-256 scalar, base64url. */
  readonly privateKey: string;
  /** Who to contact about this sender: a `mailto:` or `https:` URL. */
  readonly subject: string;
  /**
   * The push services a subscription may point at (host names; `*.` matches any subdomain).
   * Anything else is refused, so a device cannot make the server send requests to an address
   * of its choosing (SSRF). Default: WEB_PUSH_SERVICES.
   */
  readonly endpointHosts?: readonly string[];
}

/** The browsers' push services: Chrome/Edge (FCM), Firefox (Mozilla autopush), Safari (Apple), Windows (WNS). */
export const WEB_PUSH_SERVICES: readonly string[] = ['fcm.googleapis.com', 'updates.push.services.mozilla.com', '*.push.apple.com', '*.notify.windows.com'];

/** Whether `host` is one of `allowed` (exactly, or under a `*.` entry). */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  const name = host.toLowerCase();
  return allowed.some((entry) => {
    const pattern = entry.toLowerCase();
    return pattern.startsWith('*.') ? name.endsWith(pattern.slice(1)) && name.length > pattern.length - 1 : name === pattern;
  });
}

export interface WebPushOptions {
  /** Extra certificate authorities (PEM) to trust, for a push service with a private certificate (tests). */
  readonly ca?: string | Buffer;
  readonly timeoutMs?: number;
  /** Accept an endpoint on any port, not only 443 (tests: a local push service on a random port). */
  readonly anyPort?: boolean;
}

export const WEB_PUSH_TTL_SECONDS = 60;

interface Subscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export function createWebPush(config: WebPushConfig, options: WebPushOptions = {}): PushDelivery {
  try {
    // Validates subject and keys now, so that a bad configuration fails at start-up and not on each sign-in.
    webpush.getVapidHeaders('https://push.example', config.subject, config.publicKey, config.privateKey, 'aes128gcm');
  } catch {
    throw new CountersignError('CONFIG_INVALID', 'Web Push: the VAPID keys or subject are not valid (keys: base64url P-256; subject: mailto: or https: URL)');
  }
  const timeoutMs = options.timeoutMs ?? PUSH_TIMEOUT_MS;
  const agent = options.ca === undefined ? undefined : new Agent({ ca: options.ca, keepAlive: true });
  const vapidDetails = { subject: config.subject, publicKey: config.publicKey, privateKey: config.privateKey };
  const endpointHosts = config.endpointHosts ?? WEB_PUSH_SERVICES;
  /** The subscription to send to, its endpoint rebuilt from checked parts; or why it is refused. */
  const resolve = (target: string): { subscription: Subscription } | { error: string } => {
    const subscription = parseSubscription(target);
    if (subscription === undefined) return { error: 'must be a Web Push subscription as JSON: {"endpoint": "https://…", "keys": {"p256dh": …, "auth": …}}' };
    const endpoint = checkEndpoint(subscription.endpoint);
    if ('error' in endpoint) return endpoint;
    if (!hostAllowed(endpoint.host, endpointHosts)) return { error: `the Web Push endpoint's host ${endpoint.host} is not a push service this server sends to (push.web_push.endpoint_hosts)` };
    if (options.anyPort !== true && endpoint.port !== '' && endpoint.port !== '443') return { error: ENDPOINT_INVALID };
    return { subscription: { endpoint: endpoint.href, keys: subscription.keys } };
  };
  const checkTarget = (target: string): string | null => {
    const resolved = resolve(target);
    return 'error' in resolved ? resolved.error : null;
  };

  return {
    channel: 'webpush',
    checkTarget,
    async deliver(target: string, notice: PushNotice): Promise<PushResult> {
      const resolved = resolve(target);
      if ('error' in resolved) return { ok: false, error: 'the Web Push subscription is not valid or not for an allowed push service' };
      const { subscription } = resolved;
      try {
        const sent = await webpush.sendNotification(subscription, JSON.stringify(noticeData(notice)), {
          vapidDetails,
          TTL: WEB_PUSH_TTL_SECONDS,
          urgency: 'high',
          contentEncoding: 'aes128gcm',
          timeout: timeoutMs,
          ...(agent === undefined ? {} : { agent }),
        });
        return { ok: true, status: sent.statusCode };
      } catch (error) {
        if (error instanceof webpush.WebPushError) {
          const status = error.statusCode;
          const gone = status === 404 || status === 410;
          return { ok: false, status, error: `the push service answered HTTP ${status}${gone ? ' (subscription gone)' : ''}`, ...(gone ? { gone: true } : {}) };
        }
        if (error instanceof Error && error.message === 'Socket timeout') return { ok: false, error: `the push service did not answer within ${timeoutMs / 1000} s` };
        return { ok: false, error: unreachable('the push service', error, timeoutMs) };
      }
    },
  };
}

/** A fresh VAPID key pair (base64url), for `countersign` set-up. */
export function generateVapidKeys(): { publicKey: string; privateKey: string } {
  const keys = webpush.generateVAPIDKeys();
  return { publicKey: keys.publicKey, privateKey: keys.privateKey };
}

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;
/** The characters RFC 3986 allows in a URI (unreserved, reserved, and % for escapes): no space, none of {}|\^`"<>. */
const URI_CHARACTERS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
/** A DNS name or IPv4 address, lower case, without a trailing dot. */
const HOST_NAME = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/;
const ENDPOINT_INVALID = 'the Web Push endpoint must be a plain https:// URL on a host name, port 443, with no user name and nothing outside the URL character set';

/**
 * The endpoint as the URL it will be sent to (and its host and port), or why it is refused. The
 * allow-list is checked against WHATWG `new URL()`, but web-push sends with the legacy
 * `url.parse()`, and the two disagree on odd input (`https://localhost{.push.apple.com/` is a
 * push.apple.com host for one and localhost for the other). So only endpoints both read the same
 * way pass — a plain host name, no user info, no characters outside RFC 3986 (the caller checks
 * the port) — and what is sent is the normalized `href`, not the device's string.
 */
function checkEndpoint(endpoint: string): { href: string; host: string; port: string } | { error: string } {
  if (!URI_CHARACTERS.test(endpoint)) return { error: ENDPOINT_INVALID };
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { error: ENDPOINT_INVALID };
  }
  const host = url.hostname.toLowerCase();
  if (url.protocol !== 'https:' || !HOST_NAME.test(host) || url.username !== '' || url.password !== '') return { error: ENDPOINT_INVALID };
  const href = url.href;
  // What web-push will read, from the device's string and from the one actually sent: the same host and port.
  if (legacyParse(endpoint).hostname !== host) return { error: ENDPOINT_INVALID };
  const sent = legacyParse(href);
  if (sent.protocol !== 'https:' || sent.hostname !== host || (sent.port ?? '') !== url.port) return { error: ENDPOINT_INVALID };
  return { href, host, port: url.port };
}

/** The subscription JSON a browser gives (`PushSubscription.toJSON()`), checked: an https endpoint and both keys. */
function parseSubscription(target: string): Subscription | undefined {
  let value: unknown;
  try {
    value = JSON.parse(target);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { endpoint, keys } = value as { endpoint?: unknown; keys?: unknown };
  if (typeof endpoint !== 'string' || typeof keys !== 'object' || keys === null) return undefined;
  const { p256dh, auth } = keys as { p256dh?: unknown; auth?: unknown };
  if (typeof p256dh !== 'string' || typeof auth !== 'string' || !BASE64URL.test(p256dh) || !BASE64URL.test(auth)) return undefined;
  try {
    if (new URL(endpoint).protocol !== 'https:') return undefined;
  } catch {
    return undefined;
  }
  return { endpoint, keys: { p256dh, auth } };
}
