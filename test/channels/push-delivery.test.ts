import { execFileSync } from 'node:child_process';
import {
  createDecipheriv,
  createECDH,
  createPublicKey,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  verify,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import https, { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createApns, type ApnsDelivery } from '../../src/channels/push/apns.js';
import { createFcm, FCM_SCOPE } from '../../src/channels/push/fcm.js';
import type { PushNotice } from '../../src/channels/push/types.js';
import { createWebPush, generateVapidKeys } from '../../src/channels/push/web-push.js';

/**
 * The three push delivery adapters against local servers that check the protocol the way the
 * real providers do: a Web Push service (HTTPS, as web-push only speaks HTTPS) that verifies the
 * VAPID JWT and decrypts the aes128gcm body with the subscription's keys (RFC 8291); Google's
 * token endpoint and FCM HTTP v1 (the service-account JWT's RS256 signature and claims, the
 * bearer token, the message's shape); APNs over HTTP/2 with TLS (the ES256 provider token, the
 * apns-* headers, one session for many requests).
 */
const NOTICE: PushNotice = { challengeId: 'ch_0123456789abcdef', tenant: 'acme' };
const NOTICE_JSON = { type: 'push', challenge_id: NOTICE.challengeId, tenant: NOTICE.tenant };

let certDir: string;
let certPem: string;
let certKeyPem: string;

beforeAll(() => {
  // A self-signed certificate for 127.0.0.1, trusted by the adapters through their `ca` option.
  certDir = mkdtempSync(join(tmpdir(), 'countersign-push-'));
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(certDir, 'k.pem'), '-out', join(certDir, 'c.pem'), '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  certPem = readFileSync(join(certDir, 'c.pem'), 'utf8');
  certKeyPem = readFileSync(join(certDir, 'k.pem'), 'utf8');
});

afterAll(() => {
  rmSync(certDir, { recursive: true, force: true });
});

async function readBody(req: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function answer(res: ServerResponse, status: number, body?: unknown): void {
  res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

async function listen(server: Server | HttpsServer | Http2SecureServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function close(server: Server | HttpsServer | Http2SecureServer): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function decodeJwt(jwt: string): { header: any; claims: any; signed: Buffer; signature: Buffer } {
  const [header, claims, signature] = jwt.split('.');
  if (header === undefined || claims === undefined || signature === undefined) throw new Error(`not a JWT: ${jwt}`);
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')),
    claims: JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')),
    signed: Buffer.from(`${header}.${claims}`),
    signature: Buffer.from(signature, 'base64url'),
  };
}

/** A raw uncompressed P-256 point (65 bytes) as a public KeyObject. */
function p256PublicKey(raw: Buffer): KeyObject {
  expect(raw.length).toBe(65);
  expect(raw[0]).toBe(4);
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') }, format: 'jwk' });
}

/**
 * RFC 8291 (Message Encryption for Web Push) over RFC 8188 (aes128gcm), receiving side: the
 * header gives the salt, record size and the sender's ephemeral public key; the user agent's
 * ECDH secret and auth secret give the IKM, from which HKDF gives the content key and nonce.
 */
function decryptAes128gcm(body: Buffer, receiver: ECDH, authSecret: Buffer): string {
  const salt = body.subarray(0, 16);
  const recordSize = body.readUInt32BE(16);
  const idLength = body.readUInt8(20);
  const senderPublic = body.subarray(21, 21 + idLength);
  expect(idLength).toBe(65);
  const records = body.subarray(21 + idLength);
  expect(records.length).toBeLessThanOrEqual(recordSize);

  const ecdhSecret = receiver.computeSecret(senderPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0', 'latin1'), receiver.getPublicKey(), senderPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, authSecret, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0', 'latin1'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0', 'latin1'), 12));

  // One record (the notice is small), so its sequence number is 0 and the nonce is used as is.
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(records.subarray(records.length - 16));
  const padded = Buffer.concat([decipher.update(records.subarray(0, records.length - 16)), decipher.final()]);
  // Strip the padding: trailing zeros, then the delimiter, 0x02 for the last record.
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end -= 1;
  expect(padded[end]).toBe(2);
  return padded.subarray(0, end).toString('utf8');
}

describe('Web Push (VAPID, aes128gcm)', () => {
  interface Received {
    path: string;
    headers: IncomingMessage['headers'];
    body: Buffer;
  }
  const received: Received[] = [];
  let server: HttpsServer;
  let origin: string;
  const vapid = generateVapidKeys();
  const receiver = createECDH('prime256v1');
  receiver.generateKeys();
  const authSecret = randomBytes(16);

  function subscription(path: string): string {
    return JSON.stringify({ endpoint: `${origin}${path}`, keys: { p256dh: receiver.getPublicKey().toString('base64url'), auth: authSecret.toString('base64url') } });
  }

  beforeAll(async () => {
    server = createHttpsServer({ key: certKeyPem, cert: certPem }, (req, res) => {
      readBody(req)
        .then((body) => {
          received.push({ path: req.url ?? '', headers: req.headers, body });
          if (req.url === '/push/gone') answer(res, 410, { code: 410, errno: 106, error: 'Gone', message: 'Request did not validate: expired subscription' });
          else if (req.url === '/push/broken') answer(res, 500, { message: `internal failure near ${vapid.privateKey}` });
          else answer(res, 201);
        })
        .catch(() => answer(res, 500));
    });
    origin = `https://127.0.0.1:${await listen(server)}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await close(server);
  });

  beforeEach(() => {
    received.length = 0;
  });

  const delivery = () => createWebPush({ ...vapid, subject: 'mailto:security@countersign.example', endpointHosts: ['127.0.0.1'] }, { ca: certPem, anyPort: true });

  it('sends a VAPID-signed, aes128gcm-encrypted notice the subscription can decrypt', async () => {
    const result = await delivery().deliver(subscription('/push/sub-1'), NOTICE);
    expect(result).toEqual({ ok: true, status: 201 });
    expect(received).toHaveLength(1);
    const [request] = received;
    if (request === undefined) throw new Error('no request');
    expect(request.path).toBe('/push/sub-1');
    expect(request.headers.ttl).toBe('60');
    expect(request.headers.urgency).toBe('high');
    expect(request.headers['content-encoding']).toBe('aes128gcm');
    expect(request.headers['content-type']).toBe('application/octet-stream');
    expect(request.headers['crypto-key']).toBeUndefined();

    // RFC 8292: Authorization: vapid t=<JWT>, k=<public key>
    const match = /^vapid t=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+), k=([A-Za-z0-9_-]+)$/.exec(request.headers.authorization ?? '');
    expect(match).not.toBeNull();
    const [, jwt = '', k = ''] = match ?? [];
    expect(k).toBe(vapid.publicKey);
    const token = decodeJwt(jwt);
    expect(token.header).toEqual({ typ: 'JWT', alg: 'ES256' });
    expect(token.claims.aud).toBe(origin);
    expect(token.claims.sub).toBe('mailto:security@countersign.example');
    const now = Math.floor(Date.now() / 1000);
    expect(token.claims.exp).toBeGreaterThan(now);
    expect(token.claims.exp).toBeLessThanOrEqual(now + 24 * 3600);
    const vapidKey = p256PublicKey(Buffer.from(vapid.publicKey, 'base64url'));
    expect(token.signature).toHaveLength(64);
    expect(verify('sha256', token.signed, { key: vapidKey, dsaEncoding: 'ieee-p1363' }, token.signature)).toBe(true);
    // A signature by another key does not verify: the check above means something.
    const other = p256PublicKey(Buffer.from(generateVapidKeys().publicKey, 'base64url'));
    expect(verify('sha256', token.signed, { key: other, dsaEncoding: 'ieee-p1363' }, token.signature)).toBe(false);

    expect(Number(request.headers['content-length'])).toBe(request.body.length);
    expect(JSON.parse(decryptAes128gcm(request.body, receiver, authSecret))).toEqual(NOTICE_JSON);
    // Nothing of the notice travels in the clear.
    expect(request.body.includes(Buffer.from(NOTICE.challengeId))).toBe(false);
  });

  it('reports a 410 as a gone subscription', async () => {
    const result = await delivery().deliver(subscription('/push/gone'), NOTICE);
    expect(result).toEqual({ ok: false, status: 410, gone: true, error: expect.stringContaining('410') });
  });

  it('reports other failures without throwing and without the service body or keys', async () => {
    const result = await delivery().deliver(subscription('/push/broken'), NOTICE);
    expect(result.ok).toBe(false);
    expect(result.status).toBe(500);
    expect(result.gone).toBeUndefined();
    expect(result.error).not.toContain(vapid.privateKey);
    expect(result.error).not.toContain('internal failure');
  });

  it('refuses a malformed subscription and an unreachable service without throwing', async () => {
    expect(await delivery().deliver('{"endpoint":"http://127.0.0.1/x","keys":{"p256dh":"a","auth":"b"}}', NOTICE)).toEqual({ ok: false, error: 'the Web Push subscription is not valid or not for an allowed push service' });
    expect(await delivery().deliver('not json', NOTICE)).toMatchObject({ ok: false });
    const closed = createServer();
    const port = await listen(closed);
    await close(closed);
    const target = JSON.stringify({ endpoint: `https://127.0.0.1:${port}/push/x`, keys: { p256dh: receiver.getPublicKey().toString('base64url'), auth: authSecret.toString('base64url') } });
    const result = await delivery().deliver(target, NOTICE);
    expect(result).toEqual({ ok: false, error: 'the push service could not be reached (ECONNREFUSED)' });
  });

  it('sends only to push services on its list: a subscription pointing anywhere else is refused, never fetched (SSRF)', async () => {
    const standard = createWebPush({ ...vapid, subject: 'mailto:security@countersign.example' }, { ca: certPem });
    expect(standard.checkTarget(subscription('/push/sub-1'))).toBe("the Web Push endpoint's host 127.0.0.1 is not a push service this server sends to (push.web_push.endpoint_hosts)");
    expect(await standard.deliver(subscription('/push/sub-1'), NOTICE)).toEqual({ ok: false, error: 'the Web Push subscription is not valid or not for an allowed push service' });
    expect(received).toEqual([]);
    const keys = { p256dh: receiver.getPublicKey().toString('base64url'), auth: authSecret.toString('base64url') };
    for (const endpoint of ['https://fcm.googleapis.com/fcm/send/abc', 'https://updates.push.services.mozilla.com/wpush/v2/abc', 'https://web.push.apple.com/QGx', 'https://db5p.notify.windows.com/w/?token=abc']) {
      expect(standard.checkTarget(JSON.stringify({ endpoint, keys }))).toBeNull();
    }
    for (const endpoint of ['https://push.apple.com.evil.example/x', 'https://evilnotify.windows.com/x', 'https://169.254.169.254/latest', 'http://fcm.googleapis.com/fcm/send/abc']) {
      expect(standard.checkTarget(JSON.stringify({ endpoint, keys }))).not.toBeNull();
    }
  });

  it('refuses endpoints the two URL parsers read differently: what passes the list is what web-push sends to', async () => {
    // web-push sends with the legacy url.parse(): `https://localhost{.push.apple.com/x` is a
    // push.apple.com host to new URL() but localhost:443 to url.parse().
    const standard = createWebPush({ ...vapid, subject: 'mailto:security@countersign.example' }, { ca: certPem });
    const keys = { p256dh: receiver.getPublicKey().toString('base64url'), auth: authSecret.toString('base64url') };
    const port = new URL(origin).port;
    const requests: unknown[] = [];
    const spy = vi.spyOn(https, 'request').mockImplementation((options: unknown) => {
      requests.push(options);
      throw new Error('no request leaves this test');
    });
    try {
      for (const endpoint of [
        'https://localhost{.push.apple.com/x',
        `https://127.0.0.1:${port}{.push.apple.com/x`,
        'https://evil.com\\.push.apple.com/x',
        'https://user@web.push.apple.com/x',
        'https://user:pw@web.push.apple.com/x',
        'https://web.push.apple.com:8443/x',
        `https://web.push.apple.com:${port}/x`,
        'https://web.push.apple.com./x',
        'https://web.push.apple.com/x y',
        'https://web.push.apple.com/x|y',
        'https://web.push.apple.com/x"<>^`',
        'https://[::1].push.apple.com/x',
        'https://xn--web.push.apple.com%2f.evil/x',
      ]) {
        const target = JSON.stringify({ endpoint, keys });
        expect(standard.checkTarget(target), endpoint).not.toBeNull();
        expect(await standard.deliver(target, NOTICE)).toEqual({ ok: false, error: 'the Web Push subscription is not valid or not for an allowed push service' });
      }
      expect(requests).toEqual([]);
      expect(received).toEqual([]);

      // An upper-case host and an explicit :443 are accepted, and sent to the normalized URL.
      for (const endpoint of ['https://WEB.Push.Apple.COM/QGx', 'https://web.push.apple.com:443/QGx']) {
        const target = JSON.stringify({ endpoint, keys });
        expect(standard.checkTarget(target)).toBeNull();
        expect(await standard.deliver(target, NOTICE)).toMatchObject({ ok: false });
      }
      expect(requests).toEqual([
        expect.objectContaining({ hostname: 'web.push.apple.com', port: null, path: '/QGx' }),
        expect.objectContaining({ hostname: 'web.push.apple.com', port: null, path: '/QGx' }),
      ]);
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses bad VAPID configuration when built, without echoing the key', () => {
    expect(() => createWebPush({ publicKey: vapid.publicKey, privateKey: 'c2VjcmV0', subject: 'mailto:a@b.example' })).toThrow(/VAPID/);
    try {
      createWebPush({ publicKey: vapid.publicKey, privateKey: 'c2VjcmV0', subject: 'mailto:a@b.example' });
    } catch (error) {
      expect(String(error)).not.toContain('c2VjcmV0');
    }
  });
});

describe('FCM HTTP v1', () => {
  const PROJECT = 'countersign-test';
  const CLIENT_EMAIL = 'push@countersign-test.iam.gserviceaccount.com';
  const ACCESS_TOKEN = 'ya29.local-access-token-7f3a';
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privatePem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const pemBody = privatePem.split('\n')[5] ?? '';

  interface Received {
    path: string;
    headers: IncomingMessage['headers'];
    body: string;
  }
  const tokenRequests: Received[] = [];
  const sends: Received[] = [];
  let server: Server;
  let base: string;

  async function fakeGoogle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readBody(req)).toString('utf8');
    const path = req.url ?? '';
    const record = { path, headers: req.headers, body };
    if (path === '/token' || path === '/token-refused') {
      tokenRequests.push(record);
      if (path === '/token-refused') {
        answer(res, 400, { error: 'invalid_grant', error_description: `Invalid JWT Signature for ${CLIENT_EMAIL}` });
        return;
      }
      expect(req.method).toBe('POST');
      expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
      const form = new URLSearchParams(body);
      expect(form.get('grant_type')).toBe('urn:ietf:params:oauth:grant-type:jwt-bearer');
      const jwt = decodeJwt(form.get('assertion') ?? '');
      expect(jwt.header).toEqual({ alg: 'RS256', typ: 'JWT' });
      expect(verify('sha256', jwt.signed, publicKey, jwt.signature)).toBe(true);
      const now = Math.floor(Date.now() / 1000);
      expect(jwt.claims).toEqual({ iss: CLIENT_EMAIL, scope: FCM_SCOPE, aud: `${base}/token`, iat: expect.any(Number), exp: expect.any(Number) });
      expect(Math.abs(jwt.claims.iat - now)).toBeLessThanOrEqual(5);
      expect(jwt.claims.exp - jwt.claims.iat).toBe(3600);
      answer(res, 200, { access_token: ACCESS_TOKEN, expires_in: 3599, token_type: 'Bearer' });
      return;
    }
    sends.push(record);
    if (req.headers.authorization !== `Bearer ${ACCESS_TOKEN}`) {
      answer(res, 401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } });
      return;
    }
    if (req.method !== 'POST' || path !== `/v1/projects/${PROJECT}/messages:send`) {
      answer(res, 404, { error: { code: 404, message: 'Not found', status: 'NOT_FOUND' } });
      return;
    }
    expect(req.headers['content-type']).toBe('application/json');
    const message = JSON.parse(body).message;
    if (message.token === 'gone-token') {
      answer(res, 404, {
        error: {
          code: 404,
          message: 'Requested entity was not found.',
          status: 'NOT_FOUND',
          details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }],
        },
      });
      return;
    }
    if (message.token === 'broken-token') {
      answer(res, 500, { error: { code: 500, message: `Internal error with key ${pemBody}`, status: 'INTERNAL' } });
      return;
    }
    answer(res, 200, { name: `projects/${PROJECT}/messages/0:${sends.length}` });
  }

  beforeAll(async () => {
    server = createServer((req, res) => {
      fakeGoogle(req, res).catch((error: unknown) => answer(res, 418, { error: { message: String(error) } }));
    });
    base = `http://127.0.0.1:${await listen(server)}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await close(server);
  });

  beforeEach(() => {
    tokenRequests.length = 0;
    sends.length = 0;
  });

  const delivery = (tokenPath = '/token') => createFcm({ projectId: PROJECT, clientEmail: CLIENT_EMAIL, privateKey: privatePem, tokenUrl: `${base}${tokenPath}`, apiUrl: base });

  it('gets one access token with a signed JWT and sends two data messages with it', async () => {
    const fcm = delivery();
    expect(fcm.channel).toBe('fcm');
    expect(await fcm.deliver('device-token-1', NOTICE)).toEqual({ ok: true, status: 200 });
    expect(await fcm.deliver('device-token-2', { challengeId: 'ch_2', tenant: 'acme' })).toEqual({ ok: true, status: 200 });
    // A 418 would mean an expectation inside the server failed.
    expect(tokenRequests).toHaveLength(1);
    expect(sends).toHaveLength(2);
    for (const send of sends) {
      expect(send.path).toBe(`/v1/projects/${PROJECT}/messages:send`);
      expect(send.headers.authorization).toBe(`Bearer ${ACCESS_TOKEN}`);
    }
    expect(JSON.parse(sends[0]?.body ?? '')).toEqual({
      message: {
        token: 'device-token-1',
        data: NOTICE_JSON,
        android: { priority: 'high', ttl: '60s' },
        apns: { headers: { 'apns-priority': '10' } },
      },
    });
    expect(JSON.parse(sends[1]?.body ?? '').message.data).toEqual({ type: 'push', challenge_id: 'ch_2', tenant: 'acme' });
  });

  it('shares one token exchange between concurrent sends', async () => {
    const fcm = delivery();
    const results = await Promise.all([fcm.deliver('t1', NOTICE), fcm.deliver('t2', NOTICE), fcm.deliver('t3', NOTICE)]);
    expect(results.every((result) => result.ok)).toBe(true);
    expect(tokenRequests).toHaveLength(1);
  });

  it('reports UNREGISTERED as gone', async () => {
    const result = await delivery().deliver('gone-token', NOTICE);
    expect(result).toEqual({ ok: false, status: 404, gone: true, error: 'FCM answered HTTP 404 (NOT_FOUND, UNREGISTERED)' });
  });

  it('reports a 500 without throwing, and no error carries key or token material', async () => {
    const fcm = delivery();
    const result = await fcm.deliver('broken-token', NOTICE);
    expect(result).toEqual({ ok: false, status: 500, error: 'FCM answered HTTP 500 (INTERNAL)' });
    const refused = await delivery('/token-refused').deliver('device-token-1', NOTICE);
    expect(refused).toEqual({ ok: false, error: 'the Google token endpoint answered HTTP 400 (invalid_grant)' });
    expect(sends.filter((send) => JSON.parse(send.body).message.token === 'device-token-1')).toHaveLength(0);
    for (const error of [result.error, refused.error]) {
      expect(error).not.toContain(pemBody);
      expect(error).not.toContain('PRIVATE KEY');
      expect(error).not.toContain(ACCESS_TOKEN);
      expect(error).not.toContain(CLIENT_EMAIL);
    }
  });

  it('reports an unreachable endpoint without throwing', async () => {
    const closed = createServer();
    const port = await listen(closed);
    await close(closed);
    const fcm = createFcm({ projectId: PROJECT, clientEmail: CLIENT_EMAIL, privateKey: privatePem, tokenUrl: `http://127.0.0.1:${port}/token`, apiUrl: base });
    expect(await fcm.deliver('device-token-1', NOTICE)).toEqual({ ok: false, error: 'the Google token endpoint could not be reached (ECONNREFUSED)' });
  });

  it('refuses a key that is not RSA when built, without echoing it', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(() => createFcm({ projectId: PROJECT, clientEmail: CLIENT_EMAIL, privateKey: ec })).toThrow(/RSA private key/);
    expect(() => createFcm({ projectId: PROJECT, clientEmail: CLIENT_EMAIL, privateKey: 'garbage-key' })).toThrow(/^(?!.*garbage-key)/);
  });
});

describe('APNs (HTTP/2, token auth)', () => {
  const TEAM_ID = 'TEAM123456';
  const KEY_ID = 'KEY7654321';
  const TOPIC = 'com.countersign.authenticator';
  const GOOD = 'a1'.repeat(32);
  const UNREGISTERED = 'b2'.repeat(32);
  const BAD_TOKEN = 'c3'.repeat(32);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const privatePem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

  interface Received {
    headers: IncomingHttpHeaders;
    body: string;
  }
  const received: Received[] = [];
  let sessions = 0;
  let server: Http2SecureServer;
  let host: string;
  let apns: ApnsDelivery;

  function reply(stream: ServerHttp2Stream, status: number, body?: unknown): void {
    stream.respond({ ':status': status, 'apns-id': '7b9a1a2e-0000-4000-8000-000000000001', ...(body === undefined ? {} : { 'content-type': 'application/json' }) });
    stream.end(body === undefined ? undefined : JSON.stringify(body));
  }

  beforeAll(async () => {
    server = createSecureServer({ key: certKeyPem, cert: certPem });
    server.on('session', () => {
      sessions += 1;
    });
    server.on('stream', (stream, headers) => {
      readBody(stream)
        .then((body) => {
          received.push({ headers, body: body.toString('utf8') });
          const path = headers[':path'] ?? '';
          const token = path.replace(/^\/3\/device\//, '');
          if (token === UNREGISTERED) reply(stream, 410, { reason: 'Unregistered', timestamp: Date.now() });
          else if (token === BAD_TOKEN) reply(stream, 400, { reason: 'BadDeviceToken' });
          else reply(stream, 200);
        })
        .catch(() => reply(stream, 500));
    });
    host = `https://127.0.0.1:${await listen(server)}`;
    apns = createApns({ teamId: TEAM_ID, keyId: KEY_ID, privateKey: privatePem, topic: TOPIC, host }, { ca: certPem });
  });

  afterAll(async () => {
    await apns.close();
    await close(server);
  });

  beforeEach(() => {
    received.length = 0;
  });

  it('sends an alert with an ES256 provider token over one HTTP/2 session', async () => {
    expect(apns.channel).toBe('apns');
    expect(await apns.deliver(GOOD, NOTICE)).toEqual({ ok: true, status: 200 });
    expect(await apns.deliver(GOOD, { challengeId: 'ch_2', tenant: 'acme' })).toEqual({ ok: true, status: 200 });
    expect(sessions).toBe(1);
    expect(received).toHaveLength(2);
    const [first, second] = received;
    if (first === undefined || second === undefined) throw new Error('missing requests');
    const headers = first.headers;
    expect(headers[':method']).toBe('POST');
    expect(headers[':path']).toBe(`/3/device/${GOOD}`);
    expect(headers[':scheme']).toBe('https');
    expect(headers['apns-topic']).toBe(TOPIC);
    expect(headers['apns-push-type']).toBe('alert');
    expect(headers['apns-priority']).toBe('10');
    const expiration = Number(headers['apns-expiration']);
    const now = Math.floor(Date.now() / 1000);
    expect(expiration).toBeGreaterThanOrEqual(now + 55);
    expect(expiration).toBeLessThanOrEqual(now + 61);

    const match = /^bearer (\S+)$/.exec(String(headers.authorization));
    const jwt = decodeJwt(match?.[1] ?? '');
    expect(jwt.header).toEqual({ alg: 'ES256', kid: KEY_ID });
    expect(jwt.claims).toEqual({ iss: TEAM_ID, iat: expect.any(Number) });
    expect(Math.abs(jwt.claims.iat - now)).toBeLessThanOrEqual(5);
    expect(jwt.signature).toHaveLength(64);
    expect(verify('sha256', jwt.signed, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jwt.signature)).toBe(true);
    // The provider token is reused, not signed again for each request.
    expect(second.headers.authorization).toBe(headers.authorization);

    expect(JSON.parse(first.body)).toEqual({
      aps: { alert: { title: 'Sign-in request', body: 'Open Countersign to approve or deny' }, sound: 'default' },
      challenge_id: NOTICE.challengeId,
      tenant: NOTICE.tenant,
    });
  });

  it('reports 410 Unregistered and 400 BadDeviceToken as gone, on the same session', async () => {
    expect(await apns.deliver(UNREGISTERED, NOTICE)).toEqual({ ok: false, status: 410, gone: true, error: 'APNs answered HTTP 410 (Unregistered)' });
    expect(await apns.deliver(BAD_TOKEN, NOTICE)).toEqual({ ok: false, status: 400, gone: true, error: 'APNs answered HTTP 400 (BadDeviceToken)' });
    expect(sessions).toBe(1);
  });

  it('refuses a token that is not hex without a request', async () => {
    expect(await apns.deliver('../../evil', NOTICE)).toEqual({ ok: false, error: 'the APNs device token is not valid' });
    expect(received).toHaveLength(0);
  });

  it('opens a new session after close(), and reports an unreachable host without throwing', async () => {
    await apns.close();
    expect(await apns.deliver(GOOD, NOTICE)).toEqual({ ok: true, status: 200 });
    expect(sessions).toBe(2);

    const closed = createServer();
    const port = await listen(closed);
    await close(closed);
    const nowhere = createApns({ teamId: TEAM_ID, keyId: KEY_ID, privateKey: privatePem, topic: TOPIC, host: `https://127.0.0.1:${port}` }, { ca: certPem });
    const result = await nowhere.deliver(GOOD, NOTICE);
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/^APNs could not be reached/);
    await nowhere.close();
  });

  it('refuses a key that is not P-256 when built', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(() => createApns({ teamId: TEAM_ID, keyId: KEY_ID, privateKey: rsa, topic: TOPIC })).toThrow(/P-256/);
  });
});
