import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Twilio's request signature (the X-Twilio-Signature header), so the webhooks can refuse requests
 * that did not come from Twilio: base64 of HMAC-SHA1, keyed by the account's auth token, over the
 * full URL Twilio requested (query string included) followed by every POST parameter's name and
 * value, names sorted, with no separators. A GET, or a POST without parameters, signs the URL
 * alone. See https://www.twilio.com/docs/usage/security#validating-requests.
 */
export function twilioSignature(authToken: string, url: string, params: Readonly<Record<string, string>>): string {
  const data = Object.keys(params)
    .sort()
    .reduce((signed, name) => signed + name + (params[name] ?? ''), url);
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

/** True only when `header` is the signature of this request; false for a missing or empty header. */
export function isValidTwilioSignature(
  authToken: string,
  url: string,
  params: Readonly<Record<string, string>>,
  header: string | undefined,
): boolean {
  if (header === undefined || header === '') return false;
  const expected = Buffer.from(twilioSignature(authToken, url, params), 'utf8');
  const given = Buffer.from(header, 'utf8');
  // The length of a signature is public (28 characters); only the comparison of equal lengths must be timing-safe.
  return given.length === expected.length && timingSafeEqual(given, expected);
}
