import { describe, it, expect } from 'vitest';
import { CountersignError } from '../../core/errors.js';
import { parseAzureTokenCsv } from './parse-azure-csv.js';
import type { ImportedToken } from './token-file.js';

const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model';
/** Base32 of ASCII "12345678901234567890" (the RFC 4226 / RFC 6238 SHA-1 key). */
const KEY_B32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const KEY_ASCII = '12345678901234567890';

const ascii = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');
const view = (tokens: ImportedToken[]) => tokens.map((t) => ({ ...t, secret: ascii(t.secret) }));

function thrown(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (error) {
    if (error instanceof CountersignError) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected a CountersignError');
}

describe('parseAzureTokenCsv', () => {
  it('imports good lines as TOTP / SHA-1 / 6 digits', () => {
    const csv = [
      HEADER,
      `alice@contoso.com,1234567,${KEY_B32},30,Contoso,HardwareKey`,
      `,7654321,${KEY_B32.toLowerCase().replace(/(.{4})/g, '$1 ')},60,,`,
    ].join('\n');
    expect(parseAzureTokenCsv(csv)).toEqual({ format: 'csv', tokens: expect.any(Array), refused: [] });
    expect(view(parseAzureTokenCsv(csv).tokens)).toEqual([
      {
        position: 'line 2',
        serial: '1234567',
        username: 'alice@contoso.com',
        kind: 'totp',
        secret: KEY_ASCII,
        algorithm: 'SHA1',
        digits: 6,
        period: 30,
        counter: 0,
        manufacturer: 'Contoso',
        model: 'HardwareKey',
      },
      {
        position: 'line 3',
        serial: '7654321',
        username: null,
        kind: 'totp',
        secret: KEY_ASCII,
        algorithm: 'SHA1',
        digits: 6,
        period: 60,
        counter: 0,
        manufacturer: null,
        model: null,
      },
    ]);
  });

  it('refuses each bad line with its line number and the field at fault', () => {
    const csv = [
      HEADER, // line 1
      `a@contoso.com,100,${KEY_B32},30,Contoso,K`, // 2: good
      'b@contoso.com,101,not*base32!,30,Contoso,K', // 3
      'c@contoso.com,102,GEZDGNBVGY3TQ===,30,Contoso,K', // 4: 13 chars = 8 bytes
      `d@contoso.com,103,${KEY_B32},45,Contoso,K`, // 5
      `e@contoso.com,,${KEY_B32},30,Contoso,K`, // 6
      'f@contoso.com,104,30', // 7
      `g@contoso.com,100,${KEY_B32},60,Contoso,K`, // 8: duplicate serial
      'h@contoso.com,105,GEZDGNBVGY3TQOJQA,30,Contoso,K', // 9: 17 chars, dangling bits
      'i@contoso.com,106,GEZDGNBVGY3TQOJQGE=,30,Contoso,K', // 10: wrong padding
      `j@contoso.com,107,${'A'.repeat(136)},30,Contoso,K`, // 11
      'k@contoso.com,108,,30,Contoso,K', // 12
      `l@contoso.com,109,${KEY_B32},,Contoso,K`, // 13
      'm@contoso.com,110,GEZDGNBVGY3TQOJQ,60,Contoso,K', // 14: 16 chars = exactly 80 bits
    ].join('\n');
    const result = parseAzureTokenCsv(csv);
    expect(result.tokens.map((t) => [t.position, t.serial, t.secret.length])).toEqual([
      ['line 2', '100', 20],
      ['line 14', '110', 10],
    ]);
    expect(result.refused).toEqual([
      { position: 'line 3', reason: 'secret key is not valid Base32' },
      { position: 'line 4', reason: 'secret key is too short: 64 bits, at least 80 are required' },
      { position: 'line 5', reason: 'time interval must be 30 or 60 (found "45")' },
      { position: 'line 6', reason: 'serial number is empty' },
      { position: 'line 7', reason: 'expected 6 fields, found 3' },
      { position: 'line 8', reason: 'serial number "100" already appears on line 2' },
      { position: 'line 9', reason: 'secret key is not valid Base32' },
      { position: 'line 10', reason: 'secret key is not valid Base32' },
      { position: 'line 11', reason: 'secret key is longer than 128 characters' },
      { position: 'line 12', reason: 'secret key is empty' },
      { position: 'line 13', reason: 'time interval must be 30 or 60 (found "")' },
    ]);
  });

  it('accepts a BOM, CRLF, a header in other case with spaces, and keeps physical line numbers', () => {
    const csv =
      '\uFEFFUPN, Serial Number ,Secret Key,TIME INTERVAL,Manufacturer,Model\r\n' +
      '\r\n' + // line 2: blank
      `alice@contoso.com,1,${KEY_B32},30,Contoso,"Key\r\nMk 2"\r\n` + // lines 3–4: quoted line break
      ',,,,,\r\n' + // line 5: bare commas, skipped
      `bob@contoso.com,2,${KEY_B32.slice(0, 26)}======,60,Contoso,K\r\n`; // line 6: padded Base32
    const result = parseAzureTokenCsv(csv);
    expect(result.refused).toEqual([]);
    expect(result.tokens.map((t) => [t.position, t.username, t.period, t.model])).toEqual([
      ['line 3', 'alice@contoso.com', 30, 'Key\r\nMk 2'],
      ['line 6', 'bob@contoso.com', 60, 'K'],
    ]);
    expect(result.tokens.map((t) => t.secret.length)).toEqual([20, 16]);
    expect(result.tokens.map((t) => t.position)).toEqual([
      'line 3',
      'line 6',
    ]);
  });

  it('imports nothing and refuses nothing for a header-only file', () => {
    expect(parseAzureTokenCsv(`${HEADER}\r\n`)).toEqual({ format: 'csv', tokens: [], refused: [] });
  });

  it('rejects a file without the header row', () => {
    expect(thrown(() => parseAzureTokenCsv(`alice@contoso.com,1,${KEY_B32},30,Contoso,K`))).toEqual({
      code: 'INVALID_FILE',
      message: `the first line must be the header "${HEADER}"`,
    });
  });

  it('rejects a header with missing columns', () => {
    expect(thrown(() => parseAzureTokenCsv('upn,serial number,secret key\n'))).toEqual({
      code: 'INVALID_FILE',
      message: `the first line must be the header "${HEADER}"`,
    });
  });

  it('rejects an empty file', () => {
    expect(thrown(() => parseAzureTokenCsv(''))).toEqual({ code: 'INVALID_FILE', message: 'the token file is empty' });
    expect(thrown(() => parseAzureTokenCsv('\uFEFF \r\n\r\n'))).toEqual({ code: 'INVALID_FILE', message: 'the token file is empty' });
  });

  it('rejects CSV that cannot be parsed', () => {
    const error = thrown(() => parseAzureTokenCsv(`${HEADER}\nalice@contoso.com,"1,${KEY_B32},30,Contoso,K\n`));
    expect(error.code).toBe('INVALID_FILE');
    expect(error.message).toBe('the token file is not valid CSV: Quote Not Closed at line 2');
  });
});
