/**
 * The Azure MFA hardware-token CSV ("OATH tokens" upload in Entra ID):
 *
 *   upn,serial number,secret key,time interval,manufacturer,model
 *   alice@contoso.com,1234567,2234567abcdef2234567abcdef,60,Contoso,HardwareKey
 *
 * Tokens are TOTP, HMAC-SHA1, 6 digits; the secret key is Base32 (RFC 4648). An empty upn leaves
 * the token unassigned. A bad line is refused with its line number and the field at fault; only a
 * file that cannot be read at all (empty, wrong header, broken quoting) throws.
 */
import { Secret } from 'otpauth';
import { readCsv } from '../../core/csv.js';
import { CountersignError } from '../../core/errors.js';
import {
  MIN_SECRET_BYTES,
  quoteFileValue,
  type ImportedToken,
  type RefusedEntry,
  type TokenFileResult,
} from './token-file.js';

const HEADER = ['upn', 'serial number', 'secret key', 'time interval', 'manufacturer', 'model'] as const;

/** Azure's documented limit for the secret key column. */
const MAX_SECRET_CHARS = 128;
const MAX_SERIAL_CHARS = 64;

export function parseAzureTokenCsv(text: string): TokenFileResult {
  // readCsv refuses an empty or unparsable file without quoting it (a field may be a secret key),
  // numbers each record by the line it starts on, and drops lines of bare commas.
  const { header, rows } = readCsv(text, { headerFirstField: HEADER[0], fileNoun: 'token file' });
  if (header === undefined || !isHeader(header)) {
    // The line found is not echoed: without a header, it is likely a token with its secret key.
    throw new CountersignError('INVALID_FILE', `the first line must be the header "${HEADER.join(',')}"`);
  }

  const tokens: ImportedToken[] = [];
  const refused: RefusedEntry[] = [];
  const firstSeen = new Map<string, string>();
  for (const row of rows) {
    const position = `line ${row.line}`;
    const result = readRow(row.fields, position);
    if (typeof result === 'string') {
      refused.push({ position, reason: result });
      continue;
    }
    const earlier = firstSeen.get(result.serial);
    if (earlier !== undefined) {
      refused.push({ position, reason: `serial number ${quoteFileValue(result.serial)} already appears on ${earlier}` });
      continue;
    }
    firstSeen.set(result.serial, position);
    tokens.push(result);
  }
  return { format: 'csv', tokens, refused };
}

function isHeader(fields: string[]): boolean {
  return fields.length === HEADER.length && fields.every((field, i) => field.toLowerCase() === HEADER[i]);
}

/** One data row → a token, or the reason it is refused (naming the column). */
function readRow(fields: string[], position: string): ImportedToken | string {
  if (fields.length !== HEADER.length) {
    return `expected ${HEADER.length} fields, found ${fields.length}`;
  }
  const [upn = '', serial = '', secretKey = '', interval = '', manufacturer = '', model = ''] = fields;
  if (serial === '') return 'serial number is empty';
  if (serial.length > MAX_SERIAL_CHARS) return `serial number is longer than ${MAX_SERIAL_CHARS} characters`;

  const secret = decodeSecretKey(secretKey);
  if (typeof secret === 'string') return secret;

  if (interval !== '30' && interval !== '60') {
    return `time interval must be 30 or 60 (found ${quoteFileValue(interval)})`;
  }
  return {
    position,
    serial,
    username: upn === '' ? null : upn,
    kind: 'totp',
    secret,
    algorithm: 'SHA1',
    digits: 6,
    period: interval === '30' ? 30 : 60,
    counter: 0,
    manufacturer: manufacturer === '' ? null : manufacturer,
    model: model === '' ? null : model,
  };
}

/**
 * RFC 4648 §6 Base32, checked strictly before otpauth decodes it: otpauth skips nothing but
 * spaces and would silently drop a dangling partial character or misplaced padding.
 */
function decodeSecretKey(value: string): Uint8Array | string {
  const compact = value.replace(/ /g, '').toUpperCase();
  if (compact === '') return 'secret key is empty';
  if (compact.length > MAX_SECRET_CHARS) return `secret key is longer than ${MAX_SECRET_CHARS} characters`;
  const match = /^([A-Z2-7]+)(=*)$/.exec(compact);
  const data = match?.[1];
  const padding = match?.[2] ?? '';
  if (data === undefined) return 'secret key is not valid Base32';
  // A final quantum of 1, 3 or 6 characters cannot end on a byte boundary (RFC 4648 §6).
  const remainder = data.length % 8;
  if (remainder === 1 || remainder === 3 || remainder === 6) return 'secret key is not valid Base32';
  if (padding !== '' && (data.length + padding.length) % 8 !== 0) return 'secret key is not valid Base32';

  const bytes = Secret.fromBase32(data).bytes;
  if (bytes.length < MIN_SECRET_BYTES) {
    return `secret key is too short: ${bytes.length * 8} bits, at least ${MIN_SECRET_BYTES * 8} are required`;
  }
  return bytes;
}
