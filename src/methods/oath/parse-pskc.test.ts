import { pbkdf2Sync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { HOTP, Secret } from 'otpauth';
import { describe, it, expect } from 'vitest';
import { CountersignError } from '../../core/errors.js';
import { parsePskc } from './parse-pskc.js';
import type { ImportedToken } from './token-file.js';

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const hex = (value: string): Uint8Array => new Uint8Array(Buffer.from(value, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** RFC 4226 Appendix D key, ASCII "12345678901234567890". */
const RFC4226_KEY = '3132333435363738393031323334353637383930';
const FIGURE6_PSK = hex('12345678901234567890123456789012');

function thrown(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (error) {
    if (error instanceof CountersignError) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected a CountersignError');
}

/** A plain-value container around the given KeyPackage bodies. */
function container(...packages: string[]): string {
  return `<?xml version="1.0"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
${packages.map((body) => `<KeyPackage>${body}</KeyPackage>`).join('\n')}
</KeyContainer>`;
}

const SECRET_20 = Buffer.from('12345678901234567890').toString('base64');
const SECRET_32 = Buffer.from('12345678901234567890123456789012').toString('base64');

function hotpPackage(serial: string, extra = ''): string {
  return `<DeviceInfo><SerialNo>${serial}</SerialNo></DeviceInfo>
<Key Id="k-${serial}" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">${extra}
<Data><Secret><PlainValue>${SECRET_20}</PlainValue></Secret><Counter><PlainValue>5</PlainValue></Counter></Data></Key>`;
}

describe('parsePskc — RFC 6030 figures', () => {
  it('refuses Figure 2: its secret "1234" is 32 bits, below the 80-bit floor', () => {
    const result = parsePskc(fixture('rfc6030-figure2.pskcxml'));
    expect(result).toEqual({
      format: 'pskc',
      tokens: [],
      refused: [{ position: 'KeyPackage 1', reason: 'secret is too short: 32 bits, at least 80 are required' }],
    });
  });

  it('imports Figure 3 (supplementary data): serial, manufacturer, 8 digits, counter 0, Key UserId', () => {
    const result = parsePskc(fixture('rfc6030-figure3.pskcxml'));
    expect(result.refused).toEqual([]);
    expect(result.tokens).toHaveLength(1);
    const [token] = result.tokens as [ImportedToken];
    expect({ ...token, secret: toHex(token.secret) }).toEqual({
      position: 'KeyPackage 1',
      serial: '987654321',
      username: 'UID=jsmith,DC=example-bank,DC=net',
      kind: 'hotp',
      secret: RFC4226_KEY,
      algorithm: 'SHA1',
      digits: 8,
      period: null,
      counter: 0,
      manufacturer: 'Manufacturer',
      model: null,
    });
    // The imported key is the RFC 4226 Appendix D key: counter 0 gives 755224 (6 digits).
    const hotp = new HOTP({ secret: new Secret({ buffer: token.secret.slice().buffer }), digits: 6 });
    expect(hotp.generate({ counter: 0 })).toBe('755224');
  });

  it('takes UserId from DeviceInfo when the Key has none (RFC 6030 §4.3.2)', () => {
    const xml = fixture('rfc6030-figure3.pskcxml').replace(/<UserId>UID=jsmith[^<]*<\/UserId>/, '');
    expect(parsePskc(xml).tokens.map((t) => t.username)).toEqual(['DC=example-bank,DC=net']);
  });

  it('decrypts Figure 6 (AES-128-CBC, pre-shared key, HMAC-SHA1 ValueMAC) to the RFC 4226 key', () => {
    const result = parsePskc(fixture('rfc6030-figure6.pskcxml'), { preSharedKey: FIGURE6_PSK });
    expect(result.refused).toEqual([]);
    const [token] = result.tokens as [ImportedToken];
    expect({ ...token, secret: toHex(token.secret) }).toEqual({
      position: 'KeyPackage 1',
      serial: '987654321',
      username: null,
      kind: 'hotp',
      secret: RFC4226_KEY,
      algorithm: 'SHA1',
      digits: 8,
      period: null,
      counter: 0,
      manufacturer: 'Manufacturer',
      model: null,
    });
  });

  it('decrypts Figure 7 (PBKDF2 from "qwerty") to the RFC 4226 key', () => {
    const result = parsePskc(fixture('rfc6030-figure7.pskcxml'), { password: 'qwerty' });
    expect(result.refused).toEqual([]);
    const [token] = result.tokens as [ImportedToken];
    expect({ ...token, secret: toHex(token.secret) }).toEqual({
      position: 'KeyPackage 1',
      serial: '987654321',
      username: null,
      kind: 'hotp',
      secret: RFC4226_KEY,
      algorithm: 'SHA1',
      digits: 8,
      period: null,
      counter: 0,
      manufacturer: 'TokenVendorAcme',
      model: null,
    });
  });

  it('Figure 7: the PBKDF2 key is 651e63cd57008476af1ff6422cd02e41, as RFC 6030 §6.2 states', () => {
    const derived = pbkdf2Sync('qwerty', Buffer.from('Ej7/PEpyEpw=', 'base64'), 1000, 16, 'sha1');
    expect(derived.toString('hex')).toBe('651e63cd57008476af1ff6422cd02e41');
    // The same file with the derived key handed over as a pre-shared key decrypts identically.
    const asPsk = fixture('rfc6030-figure7.pskcxml').replace(
      /<pskc:EncryptionKey>[\s\S]*<\/pskc:EncryptionKey>/,
      '<pskc:EncryptionKey><ds:KeyName xmlns:ds="http://www.w3.org/2000/09/xmldsig#">k</ds:KeyName></pskc:EncryptionKey>',
    );
    const result = parsePskc(asPsk, { preSharedKey: hex('651e63cd57008476af1ff6422cd02e41') });
    expect(result.tokens.map((t) => toHex(t.secret))).toEqual([RFC4226_KEY]);
  });
});

describe('parsePskc — keys and MACs', () => {
  const figure6 = fixture('rfc6030-figure6.pskcxml');
  const GOOD_CIPHER = 'AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv';
  // One ciphertext character changed ("c" → "d"): still base64 of the same length.
  const TAMPERED_CIPHER = 'AAECAwQFBgcICQoLDA0OD+dIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv';

  it('refuses the one KeyPackage whose CipherValue was altered and imports the others', () => {
    const packageXml = /<KeyPackage>[\s\S]*<\/KeyPackage>/.exec(figure6)?.[0] ?? '';
    const second = packageXml.replace('987654321', '987654322').replace(GOOD_CIPHER, TAMPERED_CIPHER);
    const result = parsePskc(figure6.replace(packageXml, `${packageXml}\n${second}`), { preSharedKey: FIGURE6_PSK });
    expect(result.tokens.map((t) => [t.position, t.serial, toHex(t.secret)])).toEqual([['KeyPackage 1', '987654321', RFC4226_KEY]]);
    expect(result.refused).toEqual([{ position: 'KeyPackage 2', reason: 'MAC does not verify' }]);
  });

  it('imports nothing when not one MAC verifies', () => {
    const error = thrown(() => parsePskc(figure6.replace(GOOD_CIPHER, TAMPERED_CIPHER), { preSharedKey: FIGURE6_PSK }));
    expect(error).toEqual({ code: 'INVALID_FILE', message: 'no ValueMAC verifies: the pre-shared key is wrong or the file was altered' });
  });

  it('refuses an encrypted secret without ValueMAC (RFC 6030 §6.1.1)', () => {
    const result = parsePskc(figure6.replace(/<ValueMAC>[^<]*<\/ValueMAC>/, ''), { preSharedKey: FIGURE6_PSK });
    expect(result.refused).toEqual([{ position: 'KeyPackage 1', reason: 'Secret has no valid ValueMAC (RFC 6030 §6.1.1)' }]);
    expect(result.tokens).toEqual([]);
  });

  it('refuses an encrypted secret when the file has no MACMethod (RFC 6030 §6.1.1)', () => {
    const result = parsePskc(figure6.replace(/<MACMethod[\s\S]*<\/MACMethod>/, ''), { preSharedKey: FIGURE6_PSK });
    expect(result.refused).toEqual([
      { position: 'KeyPackage 1', reason: 'Secret is encrypted but the file has no MACMethod (RFC 6030 §6.1.1)' },
    ]);
    expect(result.tokens).toEqual([]);
  });

  it('asks for a pre-shared key when none is given', () => {
    expect(thrown(() => parsePskc(figure6))).toEqual({
      code: 'INVALID_FILE',
      message: 'the file is encrypted with a pre-shared key (RFC 6030 §6.1): a pre-shared key is required',
    });
  });

  it('rejects a wrong pre-shared key: the MAC key does not decrypt', () => {
    expect(thrown(() => parsePskc(figure6, { preSharedKey: hex('00112233445566778899aabbccddeeff') }))).toEqual({
      code: 'INVALID_FILE',
      message: 'the pre-shared key is wrong: the MAC key does not decrypt',
    });
  });

  it('rejects a pre-shared key of the wrong length', () => {
    expect(thrown(() => parsePskc(figure6, { preSharedKey: hex('1234567890123456') }))).toEqual({
      code: 'INVALID_FILE',
      message: 'the pre-shared key is 8 bytes long but aes128-cbc needs 16',
    });
  });

  it('asks for a password when the key is derived (RFC 6030 §6.2)', () => {
    expect(thrown(() => parsePskc(fixture('rfc6030-figure7.pskcxml'), { preSharedKey: FIGURE6_PSK }))).toEqual({
      code: 'INVALID_FILE',
      message: 'the file is encrypted with a key derived from a password (PBKDF2, RFC 6030 §6.2): a password is required',
    });
  });

  it('rejects a wrong password', () => {
    expect(thrown(() => parsePskc(fixture('rfc6030-figure7.pskcxml'), { password: 'qwertz' }))).toEqual({
      code: 'INVALID_FILE',
      message: 'the password is wrong: the MAC key does not decrypt',
    });
  });

  it('needs no key for a file with plain values only', () => {
    expect(parsePskc(fixture('rfc6030-figure3.pskcxml'), { preSharedKey: FIGURE6_PSK }).tokens).toHaveLength(1);
  });
});

describe('parsePskc — key packages', () => {
  it('reads a TOTP key: TimeInterval, Suite, Model, UserId in Key', () => {
    const xml = container(`<DeviceInfo><Manufacturer>oath.UB</Manufacturer><SerialNo>T-1</SerialNo><Model>Token 2</Model></DeviceInfo>
<Key Id="x" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
<AlgorithmParameters Suite="HMAC-SHA256"><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>
<Data><Secret><PlainValue>${SECRET_32}</PlainValue></Secret><Counter><PlainValue>9</PlainValue></Counter>
<Time><PlainValue>0</PlainValue></Time><TimeInterval><PlainValue>60</PlainValue></TimeInterval></Data>
<UserId>alice@contoso.com</UserId></Key>`);
    const [token] = parsePskc(xml).tokens as [ImportedToken];
    expect({ ...token, secret: Buffer.from(token.secret).toString() }).toEqual({
      position: 'KeyPackage 1',
      serial: 'T-1',
      username: 'alice@contoso.com',
      kind: 'totp',
      secret: '12345678901234567890123456789012',
      algorithm: 'SHA256',
      digits: 6,
      period: 60,
      counter: 0,
      manufacturer: 'oath.UB',
      model: 'Token 2',
    });
  });

  it('defaults a TOTP key to 30 seconds, 6 digits and SHA-1; reads Suite as an element too', () => {
    const xml = container(`<Key Id="K9" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
<AlgorithmParameters><Suite>SHA512</Suite></AlgorithmParameters>
<Data><Secret><PlainValue>${SECRET_20}</PlainValue></Secret></Data></Key>`);
    const [token] = parsePskc(xml).tokens as [ImportedToken];
    expect([token.serial, token.period, token.digits, token.algorithm, token.counter]).toEqual(['K9', 30, 6, 'SHA512', 0]);
  });

  it('refuses bad packages one by one, with their position and reason', () => {
    const xml = container(
      hotpPackage('A1'),
      hotpPackage('A2', '<AlgorithmParameters><ResponseFormat Length="10" Encoding="DECIMAL"/></AlgorithmParameters>'),
      hotpPackage('A1'),
      hotpPackage('A4').replace(':hotp', ':ocra'),
      hotpPackage('A5', '<Policy><PINPolicy MinLength="4"/><KeyUsage>OTP</KeyUsage></Policy>'),
      hotpPackage('A6', '<AlgorithmParameters Suite="HMAC-MD5"/>'),
      hotpPackage('A7').replace(SECRET_20, 'not base64!'),
      '<DeviceInfo><SerialNo>A8</SerialNo></DeviceInfo>',
      hotpPackage('A9', '<AlgorithmParameters><ResponseFormat Length="8" Encoding="HEXADECIMAL"/></AlgorithmParameters>'),
      hotpPackage('A10', '<Policy><KeyUsage>Encrypt</KeyUsage></Policy>'),
      hotpPackage('A11').replace('urn:ietf:params:xml:ns:keyprov:pskc:hotp', 'constructor'),
    );
    const result = parsePskc(xml);
    expect(result.tokens.map((t) => [t.position, t.serial, t.counter, t.digits])).toEqual([['KeyPackage 1', 'A1', 5, 6]]);
    expect(result.refused).toEqual([
      { position: 'KeyPackage 2', reason: 'ResponseFormat Length must be 6 or 8 (found "10")' },
      { position: 'KeyPackage 3', reason: 'serial number "A1" already appears in KeyPackage 1' },
      {
        position: 'KeyPackage 4',
        reason: 'Key Algorithm "urn:ietf:params:xml:ns:keyprov:pskc:ocra" is not supported (HOTP and TOTP only)',
      },
      { position: 'KeyPackage 5', reason: 'Policy/PINPolicy is not supported, so the key may not be used (RFC 6030 §5)' },
      { position: 'KeyPackage 6', reason: 'Suite "HMAC-MD5" is not supported (HMAC-SHA1, HMAC-SHA256, HMAC-SHA512)' },
      { position: 'KeyPackage 7', reason: 'Secret PlainValue is not valid base64' },
      { position: 'KeyPackage 8', reason: 'KeyPackage has no Key' },
      { position: 'KeyPackage 9', reason: 'ResponseFormat Encoding "HEXADECIMAL" is not supported (DECIMAL only)' },
      { position: 'KeyPackage 10', reason: 'Policy/KeyUsage does not allow OTP' },
      { position: 'KeyPackage 11', reason: 'Key Algorithm "constructor" is not supported (HOTP and TOTP only)' },
    ]);
  });
});

describe('parsePskc — unreadable files', () => {
  it('rejects malformed XML', () => {
    const error = thrown(() => parsePskc('<KeyContainer Version="1.0">\n<KeyPackage>\n</KeyContainer>'));
    expect(error.code).toBe('INVALID_FILE');
    expect(error.message).toMatch(/^the PSKC file is not well-formed XML: .+ \(line 3\)$/);
  });

  it('rejects a document that is not a KeyContainer', () => {
    expect(thrown(() => parsePskc('<?xml version="1.0"?><Tokens><Token/></Tokens>'))).toEqual({
      code: 'INVALID_FILE',
      message: 'not a PSKC file: the root element must be KeyContainer (RFC 6030 §4)',
    });
  });

  it('rejects another version', () => {
    expect(thrown(() => parsePskc(container(hotpPackage('A1')).replace('Version="1.0"', 'Version="2.0"')))).toEqual({
      code: 'INVALID_FILE',
      message: 'unsupported PSKC version "2.0" (RFC 6030 §4 requires "1.0")',
    });
  });

  it('rejects a DOCTYPE (no entity expansion)', () => {
    const xml = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><KeyContainer Version="1.0"/>';
    expect(thrown(() => parsePskc(xml))).toEqual({
      code: 'INVALID_FILE',
      message: 'the PSKC file contains a DOCTYPE declaration, which is not allowed',
    });
  });

  it('rejects a container without KeyPackage', () => {
    expect(thrown(() => parsePskc('<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"/>'))).toEqual({
      code: 'INVALID_FILE',
      message: 'the PSKC file contains no KeyPackage',
    });
  });
});
