import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { HttpSmsConfig } from '../../src/config.js';
import type { OutgoingSms } from '../../src/channels/types.js';
import { createHttpSms } from '../../src/channels/sms/http-gateway.js';

/**
 * The generic HTTP SMS channel against a local server that plays an SMS gateway. The server
 * records each request exactly as it arrived; the tests decode it the way a gateway would.
 * Paths choose the answer: /json answers a JSON id, /plain answers text, /broken answers 500.
 */
interface Recorded {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

const recorded: Recorded[] = [];
let server: Server;
let baseUrl: string;
let closedUrl: string;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function fakeGateway(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = req.url ?? '';
  recorded.push({ method: req.method ?? '', path, headers: req.headers, body: await readBody(req) });
  if (path.startsWith('/json')) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ message_id: 'gw-42', accepted: true }));
  } else if (path.startsWith('/numeric')) {
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 7001 }));
  } else if (path.startsWith('/plain')) {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('OK');
  } else {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('internal error while sending');
  }
}

async function listen(s: Server): Promise<string> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    fakeGateway(req, res).catch((error: unknown) => {
      res.writeHead(599);
      res.end(String(error));
    });
  });
  baseUrl = await listen(server);
  const gone = createServer();
  closedUrl = await listen(gone);
  await new Promise<void>((resolve) => gone.close(() => resolve()));
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  recorded.length = 0;
});

const JSON_TEMPLATE = '{"to":"{{to}}","from":"{{from}}","text":"{{text}}","ref":"{{reference}}"}';
const TRICKY_TEXT = 'He said "hi" & left\nCode: 493027 \\ {{to}} ünï 🔐 a+b=c';

function config(overrides: Partial<HttpSmsConfig> = {}): HttpSmsConfig {
  return {
    url: `${baseUrl}/json/send?key=k`,
    method: 'POST',
    headers: {},
    body: JSON_TEMPLATE,
    contentType: 'application/json',
    from: 'Countersign',
    inboundToken: undefined,
    ...overrides,
  };
}

function sms(overrides: Partial<OutgoingSms> = {}): OutgoingSms {
  return { reference: 'tl-9', tenantId: 't1', to: '+14155550123', from: undefined, text: TRICKY_TEXT, challengeId: null, ...overrides };
}

describe('HTTP SMS gateway', () => {
  it('fills a JSON template so that quotes and newlines arrive as valid JSON with the exact text', async () => {
    const channel = createHttpSms(config());
    expect(channel.provider).toBe('http');
    const dispatch = await channel.send(sms());
    expect(dispatch).toEqual({ providerId: 'gw-42', status: 'sent', units: 1 });
    expect(recorded).toHaveLength(1);
    const [request] = recorded;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/json/send?key=k');
    expect(request?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(request?.body ?? '')).toEqual({ to: '+14155550123', from: 'Countersign', text: TRICKY_TEXT, ref: 'tl-9' });
  });

  it("prefers the tenant's sender, and takes a numeric id", async () => {
    const dispatch = await createHttpSms(config({ url: `${baseUrl}/numeric` })).send(sms({ from: '+15005550006' }));
    expect(dispatch.providerId).toBe('7001');
    expect(JSON.parse(recorded[0]?.body ?? '').from).toBe('+15005550006');
  });

  it('fills a form template with percent-encoded values, with PUT', async () => {
    const dispatch = await createHttpSms(
      config({ url: `${baseUrl}/plain`, method: 'PUT', contentType: 'application/x-www-form-urlencoded', body: 'to={{to}}&sender={{from}}&message={{text}}&ref={{reference}}' }),
    ).send(sms());
    expect(dispatch).toEqual({ providerId: 'tl-9', status: 'sent', units: 1 });
    const [request] = recorded;
    expect(request?.method).toBe('PUT');
    expect(request?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(request?.body))).toEqual({ to: '+14155550123', sender: 'Countersign', message: TRICKY_TEXT, ref: 'tl-9' });
  });

  it('sends other content types as written, with an empty sender when none is configured', async () => {
    await createHttpSms(config({ url: `${baseUrl}/plain`, contentType: 'text/plain; charset=utf-8', body: '{{to}}|{{from}}|{{ text }}', from: undefined })).send(sms({ text: 'a & b "c"' }));
    expect(recorded[0]?.body).toBe('+14155550123||a & b "c"');
    expect(recorded[0]?.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it('sends the configured headers, and its content type over one given among them', async () => {
    await createHttpSms(config({ headers: { Authorization: 'Bearer gw-secret-1', 'X-Tenant': 'contoso', 'Content-Type': 'text/html' } })).send(sms());
    const headers = recorded[0]?.headers;
    expect(headers?.authorization).toBe('Bearer gw-secret-1');
    expect(headers?.['x-tenant']).toBe('contoso');
    expect(headers?.['content-type']).toBe('application/json');
  });

  it('turns a 500 into a failed dispatch that does not repeat what was sent', async () => {
    const dispatch = await createHttpSms(config({ url: `${baseUrl}/broken?key=url-secret`, headers: { Authorization: 'Bearer gw-secret-1' } })).send(sms());
    expect(recorded).toHaveLength(1);
    expect(dispatch).toEqual({ providerId: '', status: 'failed', units: 0, error: 'gateway answered HTTP 500' });
  });

  it('reports an unreachable gateway as failed, without its URL', async () => {
    const dispatch = await createHttpSms(config({ url: `${closedUrl}/json?key=url-secret` })).send(sms());
    expect(dispatch.status).toBe('failed');
    expect(dispatch.error).toMatch(/^gateway could not be reached/);
    expect(dispatch.error).not.toContain('url-secret');
    expect(dispatch.error).not.toContain('493027');
  });

  it('gives every request a deadline, and says so when it passes', async () => {
    const signals: (AbortSignal | null | undefined)[] = [];
    const slowFetch: typeof fetch = async (_input, init) => {
      signals.push(init?.signal);
      throw new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    };
    const dispatch = await createHttpSms(config(), slowFetch).send(sms());
    expect(signals[0]).toBeInstanceOf(AbortSignal);
    expect(dispatch.error).toBe('gateway did not answer within 10 s');
  });
});
