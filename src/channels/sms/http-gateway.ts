import type { HttpSmsConfig } from '../../config.js';
import type { Dispatch, OutgoingSms, SmsChannel } from '../types.js';

/**
 * Texts through any SMS gateway that takes an HTTP request: the configured body template with
 * {{to}}, {{from}}, {{text}} and {{reference}} filled in, each value encoded for the content type
 * (JSON string escapes for JSON, percent-encoding for a form, as is otherwise), so a text with
 * quotes, ampersands or newlines cannot change the request's shape. The placeholders are filled
 * in one pass: a text that itself contains "{{to}}" is sent as written. Failures name the HTTP
 * status only — never the body we sent (it holds the code) nor the URL (gateways put keys in it).
 */
export const GATEWAY_TIMEOUT_MS = 10_000;

const PLACEHOLDER = /\{\{\s*(to|from|text|reference)\s*\}\}/g;

export function createHttpSms(config: HttpSmsConfig, fetchImpl: typeof fetch = fetch): SmsChannel {
  const encode = encoderFor(config.contentType);
  return {
    provider: 'http',
    async send(sms: OutgoingSms): Promise<Dispatch> {
      const values: Record<string, string> = { to: sms.to, from: sms.from ?? config.from ?? '', text: sms.text, reference: sms.reference };
      const body = config.body.replace(PLACEHOLDER, (_match, name: string) => encode(values[name] ?? ''));
      const headers = new Headers(config.headers);
      headers.set('content-type', config.contentType);
      let response: Response;
      try {
        response = await fetchImpl(config.url, { method: config.method, headers, body, signal: AbortSignal.timeout(GATEWAY_TIMEOUT_MS) });
      } catch (error) {
        return failed(unreachable(error));
      }
      const answer = await response.text().catch(() => '');
      if (!response.ok) return failed(`gateway answered HTTP ${response.status}`);
      return { providerId: idIn(answer) ?? sms.reference, status: 'sent', units: 1 };
    },
  };
}

function encoderFor(contentType: string): (value: string) => string {
  const mediaType = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  if (mediaType.includes('json')) return (value) => JSON.stringify(value).slice(1, -1);
  if (mediaType === 'application/x-www-form-urlencoded') return encodeURIComponent;
  return (value) => value;
}

/** The gateway's id for the message, when it answered a JSON object with one. */
function idIn(answer: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  for (const name of ['id', 'message_id', 'messageId']) {
    const value: unknown = (parsed as Record<string, unknown>)[name];
    if (typeof value === 'string' && value !== '') return value;
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  }
  return undefined;
}

function unreachable(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `gateway did not answer within ${GATEWAY_TIMEOUT_MS / 1000} s`;
  }
  const cause = error instanceof Error ? error.cause : undefined;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined;
  return `gateway could not be reached${code === undefined ? '' : ` (${code})`}`;
}

function failed(error: string): Dispatch {
  return { providerId: '', status: 'failed', units: 0, error };
}
