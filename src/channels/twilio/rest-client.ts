import { CountersignError } from '../../core/errors.js';
import type { TwilioConfig } from '../../config.js';

/**
 * The two calls Countersign makes to Twilio's REST API (2010-04-01): create a Message, create a
 * Call. A dozen lines of `fetch` instead of the twilio package: fewer dependencies, and full
 * control of what an error says. Errors carry Twilio's error code and message and the HTTP
 * status, never the text sent (it may hold a one-time code), the auth token, or the whole
 * phone number (Twilio's own messages quote it: "The 'To' number +1… is not a valid phone number").
 */
export interface TwilioMessageRequest {
  readonly to: string;
  /** A number (E.164) or a Messaging Service SID (MG…). */
  readonly from: string;
  readonly body: string;
  readonly statusCallback?: string | undefined;
}

export interface TwilioCallRequest {
  readonly to: string;
  readonly from: string;
  /** Where Twilio fetches the call's TwiML when the callee answers (POST). */
  readonly url: string;
  readonly statusCallback: string;
  /** How long to let the phone ring. */
  readonly timeoutSeconds: number;
}

/** What Twilio made: its SID and status, and for a message the number of segments when known. */
export interface TwilioResource {
  readonly sid: string;
  readonly status: string;
  readonly numSegments?: number;
}

export interface TwilioRestClient {
  sendMessage(message: TwilioMessageRequest): Promise<TwilioResource>;
  createCall(call: TwilioCallRequest): Promise<TwilioResource>;
}

/** A refused or failed Twilio request; its message is safe to log and to store. */
export class TwilioRequestError extends CountersignError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROVIDER_FAILED', message, options);
    this.name = 'TwilioRequestError';
  }
}

export const TWILIO_TIMEOUT_MS = 10_000;

const CALL_EVENTS = ['initiated', 'ringing', 'answered', 'completed'] as const;

export function createTwilioRestClient(config: TwilioConfig, fetchImpl: typeof fetch = fetch): TwilioRestClient {
  const base = `${config.apiUrl.replace(/\/+$/, '')}/2010-04-01/Accounts/${encodeURIComponent(config.accountSid)}`;
  const authorization = `Basic ${Buffer.from(`${config.accountSid}:${config.authToken}`, 'utf8').toString('base64')}`;

  async function post(resource: 'Messages' | 'Calls', form: URLSearchParams, secrets: { to: string; body: string }): Promise<TwilioResource> {
    let response: Response;
    try {
      response = await fetchImpl(`${base}/${resource}.json`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(TWILIO_TIMEOUT_MS),
      });
    } catch (error) {
      throw new TwilioRequestError(unreachable(error));
    }
    let payload: unknown;
    try {
      payload = JSON.parse(await response.text());
    } catch {
      payload = undefined;
    }
    if (!response.ok) throw new TwilioRequestError(describeRefusal(response.status, payload, { ...secrets, token: config.authToken }));
    const sid = field(payload, 'sid');
    if (sid === undefined) throw new TwilioRequestError(`Twilio answered HTTP ${response.status} without a ${resource === 'Messages' ? 'Message' : 'Call'} SID`);
    const segments = Number(field(payload, 'num_segments'));
    return { sid, status: field(payload, 'status') ?? 'queued', ...(Number.isInteger(segments) && segments > 0 ? { numSegments: segments } : {}) };
  }

  return {
    async sendMessage(message) {
      const form = new URLSearchParams({ To: message.to, Body: message.body });
      form.set(message.from.startsWith('MG') ? 'MessagingServiceSid' : 'From', message.from);
      if (message.statusCallback !== undefined) form.set('StatusCallback', message.statusCallback);
      return post('Messages', form, { to: message.to, body: message.body });
    },
    async createCall(call) {
      const form = new URLSearchParams({
        To: call.to,
        From: call.from,
        Url: call.url,
        Method: 'POST',
        StatusCallback: call.statusCallback,
        StatusCallbackMethod: 'POST',
        Timeout: String(call.timeoutSeconds),
      });
      for (const event of CALL_EVENTS) form.append('StatusCallbackEvent', event);
      return post('Calls', form, { to: call.to, body: '' });
    },
  };
}

/** The message of a Twilio failure when it is one of ours; a fixed phrase otherwise (a bug's message could hold anything). */
export function safeTwilioError(error: unknown): string {
  return error instanceof TwilioRequestError ? error.message : 'the Twilio request failed unexpectedly';
}

function unreachable(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `Twilio did not answer within ${TWILIO_TIMEOUT_MS / 1000} s`;
  }
  const cause = error instanceof Error ? error.cause : undefined;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined;
  return `Twilio could not be reached${code === undefined ? '' : ` (${code})`}`;
}

function describeRefusal(status: number, payload: unknown, secrets: { to: string; body: string; token: string }): string {
  const code = field(payload, 'code');
  const message = field(payload, 'message');
  let text = `Twilio answered HTTP ${status}`;
  if (code !== undefined) text += `: error ${code}`;
  if (message !== undefined) text += ` (${redact(message, secrets).slice(0, 300)})`;
  return text;
}

/** Removes the text and token, shortens the To number to its last 4 digits, and hides any other long run of digits. */
function redact(message: string, secrets: { to: string; body: string; token: string }): string {
  let out = message;
  for (const secret of [secrets.token, secrets.body]) {
    if (secret !== '') out = out.split(secret).join('[redacted]');
  }
  if (secrets.to !== '') out = out.split(secrets.to).join(maskNumber(secrets.to));
  return out.replace(/\d{5,}/g, '[digits]');
}

function maskNumber(number: string): string {
  return number.length <= 4 ? '****' : `…${number.slice(-4)}`;
}

/** A string or number field of a JSON object, as a string. */
function field(payload: unknown, name: string): string | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const value: unknown = (payload as Record<string, unknown>)[name];
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}
