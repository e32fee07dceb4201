import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TwilioConfig } from '../../src/config.js';
import type { CallStep, OutgoingCall, OutgoingSms } from '../../src/channels/types.js';
import { createTwilioRestClient } from '../../src/channels/twilio/rest-client.js';
import { isValidTwilioSignature, twilioSignature } from '../../src/channels/twilio/signature.js';
import { createTwilioSms } from '../../src/channels/twilio/sms.js';
import { emptyMessagingResponse, renderCallStep } from '../../src/channels/twilio/twiml.js';
import { createTwilioVoice } from '../../src/channels/twilio/voice.js';

/**
 * The Twilio channel against a local HTTP server that plays Twilio's REST API: it checks what a
 * real Twilio checks (path, Basic auth, form encoding), records every request, and answers the
 * way Twilio does (201 with the resource; 400/401 with `{code, message, status}`).
 */
const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
const AUTH_TOKEN = 'tok-3f9c2e7a1b5d4c6e8f0a2b4c6d8e0f1a';
const BAD_NUMBER = '+15005550001';
const MESSAGING_SERVICE = 'MG0123456789abcdef0123456789abcdef';

interface Recorded {
  method: string;
  path: string;
  authorization: string | undefined;
  contentType: string | undefined;
  form: URLSearchParams;
}

const recorded: Recorded[] = [];
let server: Server;
let apiUrl: string;
let closedUrl: string;

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function fakeTwilio(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const form = new URLSearchParams(await readBody(req));
  const path = req.url ?? '';
  recorded.push({ method: req.method ?? '', path, authorization: req.headers.authorization, contentType: req.headers['content-type'], form });
  const expectedAuth = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`;
  if (req.headers.authorization !== expectedAuth) {
    answer(res, 401, { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
    return;
  }
  if (req.method !== 'POST' || !(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    answer(res, 405, { code: 20004, message: 'Method not allowed', status: 405 });
    return;
  }
  if (form.get('To') === BAD_NUMBER) {
    answer(res, 400, {
      code: 21211,
      message: `The 'To' number ${BAD_NUMBER} is not a valid phone number.`,
      more_info: 'https://www.twilio.com/docs/errors/21211',
      status: 400,
    });
    return;
  }
  if (path === `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`) {
    const segments = Math.ceil((form.get('Body') ?? '').length / 160);
    answer(res, 201, { sid: `SM${recorded.length.toString().padStart(32, '0')}`, status: form.has('MessagingServiceSid') ? 'accepted' : 'queued', num_segments: String(segments) });
    return;
  }
  if (path === `/2010-04-01/Accounts/${ACCOUNT_SID}/Calls.json`) {
    answer(res, 201, { sid: `CA${recorded.length.toString().padStart(32, '0')}`, status: 'queued' });
    return;
  }
  answer(res, 404, { code: 20404, message: 'The requested resource was not found', status: 404 });
}

async function listen(s: Server): Promise<string> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    fakeTwilio(req, res).catch((error: unknown) => {
      res.writeHead(500);
      res.end(String(error));
    });
  });
  apiUrl = await listen(server);
  // A port that was open a moment ago and is closed now: connecting to it is refused.
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

function config(overrides: Partial<TwilioConfig> = {}): TwilioConfig {
  return { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, from: '+15005550006', apiUrl, ...overrides };
}

function sms(overrides: Partial<OutgoingSms> = {}): OutgoingSms {
  return { reference: 'tl-1/a b', tenantId: 't1', to: '+14155550123', from: undefined, text: 'Your Countersign code is 493027', challengeId: null, ...overrides };
}

const OPENING: CallStep = { prompts: [{ kind: 'greeting', text: 'Hello', language: 'en-US' }], gather: { timeoutSeconds: 10, maxDigits: 1 }, hangup: false };

function call(overrides: Partial<OutgoingCall> = {}): OutgoingCall {
  return { reference: 'tl-2', tenantId: 't1', to: '+14155550199', from: undefined, challengeId: 'ch-1', opening: OPENING, ...overrides };
}

describe('Twilio SMS', () => {
  it('posts a message with From, Body and StatusCallback, authenticated with the account SID and token', async () => {
    const channel = createTwilioSms(config(), 'https://mfa.example.com');
    expect(channel.provider).toBe('twilio');
    const dispatch = await channel.send(sms());
    expect(dispatch).toEqual({ providerId: 'SM00000000000000000000000000000001', status: 'queued', units: 1 });
    expect(recorded).toHaveLength(1);
    const [request] = recorded;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe(`/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`);
    expect(request?.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`);
    expect(request?.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    expect(Object.fromEntries(request?.form ?? [])).toEqual({
      To: '+14155550123',
      From: '+15005550006',
      Body: 'Your Countersign code is 493027',
      StatusCallback: 'https://mfa.example.com/v1/telephony/twilio/status?ref=tl-1%2Fa%20b',
    });
  });

  it("uses the tenant's sender over the configured one, and counts segments", async () => {
    const dispatch = await createTwilioSms(config(), 'https://mfa.example.com').send(sms({ from: '+15005550009', text: 'x'.repeat(200) }));
    expect(dispatch.units).toBe(2);
    expect(recorded[0]?.form.get('From')).toBe('+15005550009');
  });

  it('sends a Messaging Service SID as MessagingServiceSid, not From', async () => {
    const dispatch = await createTwilioSms(config({ from: MESSAGING_SERVICE }), 'https://mfa.example.com').send(sms());
    expect(dispatch.status).toBe('queued');
    const form = recorded[0]?.form;
    expect(form?.get('MessagingServiceSid')).toBe(MESSAGING_SERVICE);
    expect(form?.has('From')).toBe(false);
  });

  it('leaves StatusCallback out when there is no public URL', async () => {
    const dispatch = await createTwilioSms(config(), undefined).send(sms());
    expect(dispatch.status).toBe('queued');
    expect(recorded[0]?.form.has('StatusCallback')).toBe(false);
    expect(recorded[0]?.form.get('Body')).toBe('Your Countersign code is 493027');
  });

  it("turns Twilio's refusal into a failed dispatch that names the code but not the text, the token or the whole number", async () => {
    const dispatch = await createTwilioSms(config(), 'https://mfa.example.com').send(sms({ to: BAD_NUMBER }));
    expect(recorded).toHaveLength(1);
    expect(dispatch.status).toBe('failed');
    expect(dispatch.providerId).toBe('');
    expect(dispatch.units).toBe(0);
    expect(dispatch.error).toContain('400');
    expect(dispatch.error).toContain('21211');
    expect(dispatch.error).toContain('is not a valid phone number');
    expect(dispatch.error).not.toContain('493027');
    expect(dispatch.error).not.toContain('Your Countersign code');
    expect(dispatch.error).not.toContain(AUTH_TOKEN);
    expect(dispatch.error).not.toContain(BAD_NUMBER);
    expect(dispatch.error).not.toContain(BAD_NUMBER.slice(1));
  });

  it('reports a wrong auth token as a 401 failure without echoing the token', async () => {
    const dispatch = await createTwilioSms(config({ authToken: 'wrong-token-value' }), undefined).send(sms());
    expect(dispatch.status).toBe('failed');
    expect(dispatch.error).toContain('401');
    expect(dispatch.error).toContain('20003');
    expect(dispatch.error).not.toContain('wrong-token-value');
  });

  it('reports an unreachable Twilio as failed', async () => {
    const dispatch = await createTwilioSms(config({ apiUrl: closedUrl }), undefined).send(sms());
    expect(dispatch.status).toBe('failed');
    expect(dispatch.error).toMatch(/^Twilio could not be reached/);
    expect(dispatch.error).not.toContain('493027');
    expect(dispatch.error).not.toContain(AUTH_TOKEN);
  });

  it('gives every request a deadline, and says so when it passes', async () => {
    const signals: (AbortSignal | null | undefined)[] = [];
    const slowFetch: typeof fetch = async (_input, init) => {
      signals.push(init?.signal);
      throw new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    };
    const dispatch = await createTwilioSms(config(), undefined, slowFetch).send(sms());
    expect(signals[0]).toBeInstanceOf(AbortSignal);
    expect(dispatch).toEqual({ providerId: '', status: 'failed', units: 0, error: 'Twilio did not answer within 10 s' });
  });
});

describe('Twilio voice', () => {
  it('creates a call that fetches its script and reports its progress by POST', async () => {
    const channel = createTwilioVoice(config(), 'https://mfa.example.com/');
    expect(channel.provider).toBe('twilio');
    const dispatch = await channel.call(call({ from: '+15005550010' }));
    expect(dispatch).toEqual({ providerId: 'CA00000000000000000000000000000001', status: 'queued', units: 1 });
    const [request] = recorded;
    expect(request?.path).toBe(`/2010-04-01/Accounts/${ACCOUNT_SID}/Calls.json`);
    expect(request?.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`);
    const form = request?.form;
    expect(form?.get('To')).toBe('+14155550199');
    expect(form?.get('From')).toBe('+15005550010');
    expect(form?.get('Url')).toBe('https://mfa.example.com/v1/telephony/twilio/voice?ref=tl-2');
    expect(form?.get('Method')).toBe('POST');
    expect(form?.get('StatusCallback')).toBe('https://mfa.example.com/v1/telephony/twilio/status?ref=tl-2');
    expect(form?.get('StatusCallbackMethod')).toBe('POST');
    expect(form?.getAll('StatusCallbackEvent')).toEqual(['initiated', 'ringing', 'answered', 'completed']);
    expect(form?.get('Timeout')).toBe('30');
  });

  it('falls back to the configured number', async () => {
    await createTwilioVoice(config(), 'https://mfa.example.com').call(call());
    expect(recorded[0]?.form.get('From')).toBe('+15005550006');
  });

  it('refuses to call without a public URL, before asking Twilio', async () => {
    const dispatch = await createTwilioVoice(config(), undefined).call(call());
    expect(dispatch).toEqual({ providerId: '', status: 'failed', units: 0, error: 'public_url is not configured: Twilio cannot reach the call script' });
    expect(recorded).toHaveLength(0);
  });

  it('turns a refused call into a failed dispatch without the whole number', async () => {
    const dispatch = await createTwilioVoice(config(), 'https://mfa.example.com').call(call({ to: BAD_NUMBER }));
    expect(dispatch.status).toBe('failed');
    expect(dispatch.error).toContain('21211');
    expect(dispatch.error).not.toContain(BAD_NUMBER);
    expect(dispatch.error).not.toContain(AUTH_TOKEN);
  });

  it('reports an unreachable Twilio as failed', async () => {
    const dispatch = await createTwilioVoice(config({ apiUrl: closedUrl }), 'https://mfa.example.com').call(call());
    expect(dispatch.status).toBe('failed');
    expect(dispatch.error).toMatch(/^Twilio could not be reached/);
  });
});

describe('Twilio REST client', () => {
  it('returns the SID, status and segment count Twilio answered', async () => {
    const client = createTwilioRestClient(config({ apiUrl: `${apiUrl}/` }));
    expect(await client.sendMessage({ to: '+14155550123', from: '+15005550006', body: 'hi' })).toEqual({
      sid: 'SM00000000000000000000000000000001',
      status: 'queued',
      numSegments: 1,
    });
  });

  it('throws an error that holds the status and Twilio code but not the token, body or number', async () => {
    const client = createTwilioRestClient(config());
    const failure = client.sendMessage({ to: BAD_NUMBER, from: '+15005550006', body: 'code 123456' });
    await expect(failure).rejects.toThrow(/HTTP 400: error 21211/);
    const message = await failure.catch((error: unknown) => (error as Error).message);
    expect(message).not.toContain('123456');
    expect(message).not.toContain(BAD_NUMBER);
    expect(message).not.toContain(AUTH_TOKEN);
  });
});

describe('Twilio request signature', () => {
  // The worked example of twilio-php's "Validate Incoming Requests" guide (docs/usage/validation.rst):
  // auth token 12345, this URL and these POST parameters, X-Twilio-Signature RSOYDt4T1cUTdK1PDd93/VVr8B8=.
  const token = '12345';
  const url = 'https://mycompany.com/myapp.php?foo=1&bar=2';
  const params = { CallSid: 'CA1234567890ABCDE', Caller: '+14158675309', Digits: '1234', From: '+14158675309', To: '+18005551212' };
  const published = 'RSOYDt4T1cUTdK1PDd93/VVr8B8=';

  it('matches the published example', () => {
    expect(twilioSignature(token, url, params)).toBe(published);
    expect(isValidTwilioSignature(token, url, params, published)).toBe(true);
  });

  it('does not depend on the order the parameters arrive in', () => {
    const reversed = Object.fromEntries(Object.entries(params).reverse());
    expect(twilioSignature(token, url, reversed)).toBe(published);
  });

  it('signs the URL alone when there are no parameters', () => {
    const independent = createHmac('sha1', Buffer.from(token)).update(Buffer.from(url)).digest().toString('base64');
    expect(twilioSignature(token, url, {})).toBe(independent);
  });

  it('refuses a changed parameter, an added parameter, a changed URL, another token, and a missing header', () => {
    expect(isValidTwilioSignature(token, url, { ...params, Digits: '1235' }, published)).toBe(false);
    expect(isValidTwilioSignature(token, url, { ...params, Extra: '' }, published)).toBe(false);
    expect(isValidTwilioSignature(token, 'https://mycompany.com/myapp.php?foo=1&bar=3', params, published)).toBe(false);
    expect(isValidTwilioSignature(token, 'http://mycompany.com/myapp.php?foo=1&bar=2', params, published)).toBe(false);
    expect(isValidTwilioSignature('54321', url, params, published)).toBe(false);
    expect(isValidTwilioSignature(token, url, params, undefined)).toBe(false);
    expect(isValidTwilioSignature(token, url, params, '')).toBe(false);
    expect(isValidTwilioSignature(token, url, params, published.slice(0, -1))).toBe(false);
  });
});

describe('TwiML', () => {
  interface Node {
    name: string;
    attrs: Record<string, string>;
    text: string;
    children: Node[];
  }

  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', preserveOrder: true, trimValues: false });

  /** fast-xml-parser's ordered output as a plain tree, without the XML declaration. */
  function toTree(items: any[]): Node[] {
    const nodes: Node[] = [];
    for (const item of items) {
      const name = Object.keys(item).find((key) => key !== ':@');
      if (name === undefined || name === '#text' || name === '?xml') continue;
      const content: any[] = item[name];
      nodes.push({
        name,
        attrs: item[':@'] ?? {},
        text: content.filter((c) => '#text' in c).map((c) => String(c['#text'])).join(''),
        children: toTree(content),
      });
    }
    return nodes;
  }

  function parse(xml: string): Node {
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
    expect(XMLValidator.validate(xml)).toBe(true);
    const roots = toTree(parser.parse(xml));
    expect(roots).toHaveLength(1);
    const [root] = roots;
    expect(root?.name).toBe('Response');
    return root as Node;
  }

  const urls = { gather: 'https://mfa.example.com/v1/telephony/twilio/gather?ref=tl-1&step=2', timeout: 'https://mfa.example.com/v1/telephony/twilio/voice?ref=tl-1&timeout=1' };

  it('renders a gather step: prompts inside Gather, then the timeout Redirect', () => {
    const step: CallStep = {
      prompts: [
        { kind: 'greeting', text: 'Hello from Contoso.', language: 'en-US' },
        { kind: 'pin_greeting', text: 'Enter your PIN', language: 'en-US', audioUrl: 'https://cdn.example.com/pin.mp3' },
        { kind: 'fraud_prompt', text: 'Bonjour', language: 'fr-FR' },
      ],
      gather: { timeoutSeconds: 12, maxDigits: 8 },
      hangup: false,
    };
    const root = parse(renderCallStep(step, urls));
    expect(root.children.map((c) => c.name)).toEqual(['Gather', 'Redirect']);
    const [gather, redirect] = root.children;
    expect(gather?.attrs).toEqual({ input: 'dtmf', finishOnKey: '#', actionOnEmptyResult: 'true', timeout: '12', numDigits: '8', action: urls.gather, method: 'POST' });
    expect(gather?.children.map((c) => [c.name, c.attrs, c.text])).toEqual([
      ['Say', { language: 'en-US' }, 'Hello from Contoso.'],
      ['Play', {}, 'https://cdn.example.com/pin.mp3'],
      ['Say', { language: 'fr-FR' }, 'Bonjour'],
    ]);
    expect(redirect?.attrs).toEqual({ method: 'POST' });
    expect(redirect?.text).toBe(urls.timeout);
  });

  it('renders a closing step: prompts, then Hangup', () => {
    const step: CallStep = { prompts: [{ kind: 'success', text: 'You are signed in. Goodbye.', language: 'en-GB' }], hangup: true };
    const xml = renderCallStep(step, urls);
    const root = parse(xml);
    expect(root.children.map((c) => c.name)).toEqual(['Say', 'Hangup']);
    expect(root.children[0]?.text).toBe('You are signed in. Goodbye.');
    expect(xml).toContain('<Hangup/>');
    expect(xml).not.toContain('<Gather');
  });

  it('leaves Hangup out when the step does not hang up', () => {
    const root = parse(renderCallStep({ prompts: [{ kind: 'retry', text: 'Again', language: 'en-US', audioUrl: 'https://cdn.example.com/a.wav' }], hangup: false }, urls));
    expect(root.children.map((c) => [c.name, c.text])).toEqual([['Play', 'https://cdn.example.com/a.wav']]);
  });

  it('escapes text, languages and URLs so that nothing can add markup', () => {
    const hostile = `Say <Hangup/> & "quote" 'apos' </Say><Dial>+1900</Dial>`;
    const audio = 'https://cdn.example.com/a.mp3?x=1&y=<2>&z="3"';
    const step: CallStep = {
      prompts: [
        { kind: 'greeting', text: hostile, language: `en"><Dial>` },
        { kind: 'code', text: 'unused', language: 'en-US', audioUrl: audio },
      ],
      gather: { timeoutSeconds: 5, maxDigits: 1 },
      hangup: false,
    };
    const xml = renderCallStep(step, { gather: 'https://x.example/g?a=1&b="2"', timeout: "https://x.example/t?q='1'&r=<2>" });
    expect(xml).not.toContain('<Dial>');
    expect(xml).not.toContain('<Hangup/>');
    expect(xml).toContain('&lt;Hangup/&gt; &amp; &quot;quote&quot; &apos;apos&apos;');
    const root = parse(xml);
    const [gather, redirect] = root.children;
    expect(gather?.attrs['action']).toBe('https://x.example/g?a=1&b="2"');
    expect(gather?.children.map((c) => c.name)).toEqual(['Say', 'Play']);
    expect(gather?.children[0]?.text).toBe(hostile);
    expect(gather?.children[0]?.attrs).toEqual({ language: `en"><Dial>` });
    expect(gather?.children[1]?.text).toBe(audio);
    expect(redirect?.text).toBe("https://x.example/t?q='1'&r=<2>");
  });

  it('answers an incoming text with an empty Response', () => {
    const xml = emptyMessagingResponse();
    expect(xml).toBe('<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
    expect(parse(xml).children).toEqual([]);
  });
});
