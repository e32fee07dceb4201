/**
 * RFC 6030 Portable Symmetric Key Container (PSKC) → HOTP/TOTP tokens.
 *
 * Supported: plain secrets (§6), AES-CBC encrypted secrets with a pre-shared key (§6.1) or a key
 * derived from a password with PBKDF2 (§6.2), each authenticated by ValueMAC (§6.1.1).
 * Not supported, and said so: asymmetric encryption (§6.3), key wrap, encrypted counters,
 * PIN policies. A problem with one KeyPackage refuses that package; a problem with the file or
 * with the caller's key throws INVALID_FILE so nothing is imported.
 */
import { createDecipheriv, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { CountersignError } from '../../core/errors.js';
import {
  MIN_SECRET_BYTES,
  quoteFileValue,
  type ImportedToken,
  type OtpAlgorithm,
  type RefusedEntry,
  type TokenFileResult,
} from './token-file.js';
import { attr, children, decodeBase64, hasElement, isNode, nonEmpty, one, parseCount, Refusal, text, type XmlNode } from './xml-nodes.js';

export interface PskcKeys {
  /** The pre-shared AES key (§6.1), e.g. 16 bytes for aes128-cbc. */
  preSharedKey?: Uint8Array;
  /** The password the PBKDF2 encryption key is derived from (§6.2). */
  password?: string;
}

// Maps, not object literals: a lookup of a name from the file such as "constructor" must miss.
const KIND_BY_URI = new Map<string, 'hotp' | 'totp'>([
  ['urn:ietf:params:xml:ns:keyprov:pskc:hotp', 'hotp'],
  ['urn:ietf:params:xml:ns:keyprov:pskc:totp', 'totp'],
]);
const CBC_BY_URI = new Map<string, { cipher: string; keyBytes: number }>([
  ['http://www.w3.org/2001/04/xmlenc#aes128-cbc', { cipher: 'aes-128-cbc', keyBytes: 16 }],
  ['http://www.w3.org/2001/04/xmlenc#aes192-cbc', { cipher: 'aes-192-cbc', keyBytes: 24 }],
  ['http://www.w3.org/2001/04/xmlenc#aes256-cbc', { cipher: 'aes-256-cbc', keyBytes: 32 }],
]);
/** MACMethod (§6.1.1) and PBKDF2 PRF (§6.2) identifiers → node:crypto digest names. */
const HMAC_BY_URI = new Map<string, string>([
  ['http://www.w3.org/2000/09/xmldsig#hmac-sha1', 'sha1'],
  ['http://www.w3.org/2001/04/xmldsig-more#hmac-sha256', 'sha256'],
  ['http://www.w3.org/2001/04/xmldsig-more#hmac-sha384', 'sha384'],
  ['http://www.w3.org/2001/04/xmldsig-more#hmac-sha512', 'sha512'],
]);
const PBKDF2_URI = 'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2';
/** Bounds the time an uploaded file can block the event loop deriving a key (pbkdf2Sync). */
const MAX_PBKDF2_ITERATIONS = 1_000_000;
const AES_BLOCK = 16;

interface FileProtection {
  keySource: 'pre-shared key' | 'password';
  encryptionKey: Buffer;
  mac: { digest: string; key: Buffer } | null;
  macChecked: number;
  macFailed: number;
}

export function parsePskc(xml: string, keys: PskcKeys = {}): TokenFileResult {
  const container = readContainer(xml);
  const packages = children(container, 'KeyPackage');
  if (packages.length === 0) invalid('the PSKC file contains no KeyPackage');
  // Ask for a key only when something is encrypted: a plain file needs none (§6).
  const protection = hasElement(packages, 'EncryptedValue') ? prepareProtection(container, keys) : null;

  const tokens: ImportedToken[] = [];
  const refused: RefusedEntry[] = [];
  const firstSeen = new Map<string, string>();
  packages.forEach((keyPackage, index) => {
    const position = `KeyPackage ${index + 1}`;
    try {
      const token = readKeyPackage(keyPackage, position, protection);
      const earlier = firstSeen.get(token.serial);
      if (earlier !== undefined) {
        throw new Refusal(`serial number ${quoteFileValue(token.serial)} already appears in ${earlier}`);
      }
      firstSeen.set(token.serial, position);
      tokens.push(token);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      refused.push({ position, reason: error.message });
    }
  });
  // One altered package is refused on its own; when not one MAC verifies, the likelier cause is
  // a wrong key, and importing nothing says so more clearly than a page of refusals.
  if (protection !== null && protection.macChecked > 0 && protection.macFailed === protection.macChecked) {
    invalid(`no ValueMAC verifies: the ${protection.keySource} is wrong or the file was altered`);
  }
  return { format: 'pskc', tokens, refused };
}

function readContainer(xml: string): XmlNode {
  const body = xml.startsWith('\uFEFF') ? xml.slice(1) : xml;
  // PSKC needs no DTD; refusing one rules out entity-expansion tricks before any parsing.
  if (/<!DOCTYPE/i.test(body)) invalid('the PSKC file contains a DOCTYPE declaration, which is not allowed');
  const valid = XMLValidator.validate(body);
  if (valid !== true) invalid(`the PSKC file is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  let doc: unknown;
  try {
    // Namespace prefixes vary between vendors (pskc:, none, ds:, xenc:, xenc11:), so they are
    // dropped and elements matched by local name.
    doc = new XMLParser({
      ignoreAttributes: false,
      removeNSPrefix: true,
      parseTagValue: false,
      parseAttributeValue: false,
      trimValues: true,
    }).parse(body);
  } catch (error) {
    invalid(`the PSKC file cannot be read: ${error instanceof Error ? error.message : 'unknown error'}`);
  }
  const container = isNode(doc) ? doc['KeyContainer'] : undefined;
  if (!isNode(container)) invalid('not a PSKC file: the root element must be KeyContainer (RFC 6030 §4)');
  const version = attr(container, 'Version');
  if (version !== '1.0') invalid(`unsupported PSKC version ${quoteFileValue(version ?? '')} (RFC 6030 §4 requires "1.0")`);
  return container;
}

/** EncryptionKey (§6.1 / §6.2) and MACMethod (§6.1.1), resolved once for the whole file. */
function prepareProtection(container: XmlNode, keys: PskcKeys): FileProtection {
  const encryptionKey = fileLevel(() => one(container, 'EncryptionKey'));
  const derived = fileLevel(() => one(encryptionKey, 'DerivedKey'));
  let protection: FileProtection;
  if (derived !== undefined) {
    if (keys.password === undefined) {
      invalid('the file is encrypted with a key derived from a password (PBKDF2, RFC 6030 §6.2): a password is required');
    }
    protection = fresh('password', derivePbkdf2Key(derived, keys.password));
  } else if (children(encryptionKey, 'X509Data').length > 0) {
    invalid('the file is encrypted with a public key (RFC 6030 §6.3), which is not supported');
  } else {
    // KeyName (§6.1) or no EncryptionKey at all: some vendors omit it for a pre-shared key.
    if (keys.preSharedKey === undefined) {
      invalid('the file is encrypted with a pre-shared key (RFC 6030 §6.1): a pre-shared key is required');
    }
    protection = fresh('pre-shared key', Buffer.from(keys.preSharedKey));
  }

  const macMethod = fileLevel(() => one(container, 'MACMethod'));
  if (macMethod === undefined) return protection;
  const uri = attr(macMethod, 'Algorithm') ?? '';
  const digest = HMAC_BY_URI.get(uri);
  if (digest === undefined) invalid(`MACMethod ${quoteFileValue(uri)} is not supported`);
  const macKeyNode = fileLevel(() => one(macMethod, 'MACKey'));
  // Without MACKey, earlier drafts of RFC 6030 used the encryption key itself for the MAC.
  let macKey = protection.encryptionKey;
  if (macKeyNode !== undefined) {
    const decrypted = fileLevel(() => decryptCbc(readCipherValue(macKeyNode), protection));
    if (decrypted === null) invalid(`the ${protection.keySource} is wrong: the MAC key does not decrypt`);
    macKey = decrypted;
  }
  protection.mac = { digest, key: macKey };
  return protection;
}

function fresh(keySource: FileProtection['keySource'], encryptionKey: Buffer): FileProtection {
  return { keySource, encryptionKey, mac: null, macChecked: 0, macFailed: 0 };
}

/** §6.2: PBKDF2 from PKCS #5 v2.0, PRF defaulting to HMAC-SHA1. */
function derivePbkdf2Key(derived: unknown, password: string): Buffer {
  return fileLevel(() => {
    const method = one(derived, 'KeyDerivationMethod');
    const uri = attr(method, 'Algorithm') ?? '';
    if (uri !== PBKDF2_URI) throw new Refusal(`KeyDerivationMethod ${quoteFileValue(uri)} is not supported (PBKDF2 only)`);
    const params = one(method, 'PBKDF2-params');
    const salt = decodeBase64(text(one(one(params, 'Salt'), 'Specified')));
    if (salt === null) throw new Refusal('PBKDF2 Salt/Specified is missing or not base64');
    const iterations = parseCount(text(one(params, 'IterationCount')));
    if (iterations === null || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
      throw new Refusal(`PBKDF2 IterationCount must be between 1 and ${MAX_PBKDF2_ITERATIONS}`);
    }
    const lengthText = text(one(params, 'KeyLength'));
    // KeyLength is optional in PKCS #5; the cipher then decides, and AES-128 is what §6.2 shows.
    const keyLength = lengthText === null ? 16 : parseCount(lengthText);
    if (keyLength !== 16 && keyLength !== 24 && keyLength !== 32) throw new Refusal('PBKDF2 KeyLength must be 16, 24 or 32');
    const prf = one(params, 'PRF');
    const prfUri = attr(prf, 'Algorithm');
    const digest = prfUri === null ? 'sha1' : HMAC_BY_URI.get(prfUri);
    if (digest === undefined) throw new Refusal(`PBKDF2 PRF ${quoteFileValue(prfUri ?? '')} is not supported`);
    return pbkdf2Sync(password, salt, iterations, keyLength, digest);
  });
}

function readKeyPackage(keyPackage: unknown, position: string, protection: FileProtection | null): ImportedToken {
  const device = one(keyPackage, 'DeviceInfo');
  const keyNodes = children(keyPackage, 'Key');
  const key = keyNodes[0];
  if (key === undefined) throw new Refusal('KeyPackage has no Key');
  if (keyNodes.length > 1) throw new Refusal('KeyPackage has more than one Key (RFC 6030 §4 allows one)');

  const algorithmUri = attr(key, 'Algorithm');
  const kind = algorithmUri === null ? undefined : KIND_BY_URI.get(algorithmUri);
  if (kind === undefined) {
    throw new Refusal(`Key Algorithm ${quoteFileValue(algorithmUri ?? '')} is not supported (HOTP and TOTP only)`);
  }

  // §4.3.1: SerialNo identifies the device; Key @Id is the next best label an admin can find.
  const serial = nonEmpty(text(one(device, 'SerialNo'))) ?? nonEmpty(attr(key, 'Id'));
  if (serial === null) throw new Refusal('no serial number (DeviceInfo/SerialNo or Key Id)');
  // §4.3.2 puts UserId in DeviceInfo, §5 also in Key; the Key's is the more specific one.
  const username = nonEmpty(text(one(key, 'UserId'))) ?? nonEmpty(text(one(device, 'UserId')));

  checkPolicy(one(key, 'Policy'));
  const params = one(key, 'AlgorithmParameters');
  const digits = readDigits(one(params, 'ResponseFormat'));
  const algorithm = readSuite(attr(params, 'Suite') ?? text(one(params, 'Suite')));

  const data = one(key, 'Data');
  const secretNode = one(data, 'Secret');
  if (secretNode === undefined) throw new Refusal('Key has no Data/Secret');
  const secret = readSecret(secretNode, protection);
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Refusal(`secret is too short: ${secret.length * 8} bits, at least ${MIN_SECRET_BYTES * 8} are required`);
  }

  // Data/Time and TimeDrift describe the token's clock state; the verifier learns drift itself.
  let counter = 0;
  let period: 30 | 60 | null = null;
  if (kind === 'hotp') {
    counter = readPlainInteger(one(data, 'Counter'), 'Counter') ?? 0;
  } else {
    const interval = readPlainInteger(one(data, 'TimeInterval'), 'TimeInterval') ?? 30;
    if (interval !== 30 && interval !== 60) throw new Refusal(`TimeInterval must be 30 or 60 (found ${interval})`);
    period = interval;
  }
  return {
    position,
    serial,
    username,
    kind,
    secret: new Uint8Array(secret),
    algorithm,
    digits,
    period,
    counter,
    manufacturer: nonEmpty(text(one(device, 'Manufacturer'))),
    model: nonEmpty(text(one(device, 'Model'))),
  };
}

/**
 * §5: "If a Policy element contains child elements ... that are not understood by the recipient
 * ... then the recipient MUST assume that key usage is not permitted." We understand KeyUsage and
 * the validity dates (not enforced here: the file has no clock); anything else refuses the key.
 */
function checkPolicy(policy: unknown): void {
  if (!isNode(policy)) return;
  for (const name of Object.keys(policy)) {
    if (name.startsWith('@_') || name === '#text' || name === 'StartDate' || name === 'ExpiryDate') continue;
    if (name !== 'KeyUsage') throw new Refusal(`Policy/${name} is not supported, so the key may not be used (RFC 6030 §5)`);
    if (!children(policy, 'KeyUsage').some((usage) => text(usage) === 'OTP')) {
      throw new Refusal('Policy/KeyUsage does not allow OTP');
    }
  }
}

/** §4.3.4 ResponseFormat: decimal OTPs of 6 or 8 digits; 6 when the file does not say. */
function readDigits(format: unknown): 6 | 8 {
  if (format === undefined) return 6;
  const encoding = attr(format, 'Encoding');
  if (encoding !== null && encoding !== 'DECIMAL') {
    throw new Refusal(`ResponseFormat Encoding ${quoteFileValue(encoding)} is not supported (DECIMAL only)`);
  }
  const length = attr(format, 'Length');
  if (length === '6') return 6;
  if (length === '8') return 8;
  throw new Refusal(`ResponseFormat Length must be 6 or 8 (found ${quoteFileValue(length ?? '')})`);
}

/** §4.3.4 Suite, e.g. "HMAC-SHA256" or "SHA256": the HMAC hash; SHA-1 (RFC 4226) by default. */
function readSuite(suite: string | null): OtpAlgorithm {
  if (suite === null || suite === '') return 'SHA1';
  const name = suite.toUpperCase().replace(/[^A-Z0-9]/g, '').replace(/^HMAC/, '');
  if (name === 'SHA1' || name === 'SHA256' || name === 'SHA512') return name;
  throw new Refusal(`Suite ${quoteFileValue(suite)} is not supported (HMAC-SHA1, HMAC-SHA256, HMAC-SHA512)`);
}

function readSecret(secretNode: unknown, protection: FileProtection | null): Buffer {
  const plain = one(secretNode, 'PlainValue');
  if (plain !== undefined) {
    const bytes = decodeBase64(text(plain));
    if (bytes === null) throw new Refusal('Secret PlainValue is not valid base64');
    return bytes;
  }
  const encrypted = one(secretNode, 'EncryptedValue');
  if (encrypted === undefined || protection === null) throw new Refusal('Secret has neither PlainValue nor EncryptedValue');
  const cipher = readCipherValue(encrypted);
  // §6.1.1: CBC has no integrity of its own, so a MAC MUST accompany it; check it before
  // decrypting so that no padding error is ever computed on unauthenticated data.
  if (protection.mac === null) throw new Refusal('Secret is encrypted but the file has no MACMethod (RFC 6030 §6.1.1)');
  const expected = decodeBase64(text(one(secretNode, 'ValueMAC')));
  if (expected === null) throw new Refusal('Secret has no valid ValueMAC (RFC 6030 §6.1.1)');
  protection.macChecked += 1;
  const actual = createHmac(protection.mac.digest, protection.mac.key).update(cipher.bytes).digest();
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    protection.macFailed += 1;
    throw new Refusal('MAC does not verify');
  }
  const secret = decryptCbc(cipher, protection);
  if (secret === null) throw new Refusal('Secret does not decrypt');
  return secret;
}

interface CipherValue {
  algorithm: { cipher: string; keyBytes: number; uri: string };
  /** IV || ciphertext, exactly what ValueMAC covers. */
  bytes: Buffer;
}

function readCipherValue(node: unknown): CipherValue {
  const uri = attr(one(node, 'EncryptionMethod'), 'Algorithm') ?? '';
  const algorithm = CBC_BY_URI.get(uri);
  if (algorithm === undefined) throw new Refusal(`EncryptionMethod ${quoteFileValue(uri)} is not supported (AES-CBC only)`);
  const bytes = decodeBase64(text(one(one(node, 'CipherData'), 'CipherValue')));
  // The IV is the first block of CipherValue (xmlenc §5.2), then at least one block of data.
  if (bytes === null || bytes.length < 2 * AES_BLOCK || bytes.length % AES_BLOCK !== 0) {
    throw new Refusal('CipherValue is not an IV followed by whole AES blocks');
  }
  return { algorithm: { ...algorithm, uri }, bytes };
}

/** AES-CBC with the IV in front; null when the padding is wrong (wrong key or altered data). */
function decryptCbc(value: CipherValue, protection: FileProtection): Buffer | null {
  const { cipher, keyBytes, uri } = value.algorithm;
  if (protection.encryptionKey.length !== keyBytes) {
    const which = protection.keySource === 'password' ? 'the key derived from the password' : 'the pre-shared key';
    invalid(`${which} is ${protection.encryptionKey.length} bytes long but ${uri.replace(/^.*#/, '')} needs ${keyBytes}`);
  }
  const decipher = createDecipheriv(cipher, protection.encryptionKey, value.bytes.subarray(0, AES_BLOCK));
  // xmlenc §5.2 padding: only the last byte (the pad length) is defined, so Node's PKCS#7
  // check, which also reads the other pad bytes, would refuse valid files.
  decipher.setAutoPadding(false);
  const padded = Buffer.concat([decipher.update(value.bytes.subarray(AES_BLOCK)), decipher.final()]);
  const pad = padded[padded.length - 1] ?? 0;
  if (pad < 1 || pad > AES_BLOCK) return null;
  return padded.subarray(0, padded.length - pad);
}

function readPlainInteger(node: unknown, field: string): number | null {
  if (node === undefined) return null;
  if (one(node, 'EncryptedValue') !== undefined) throw new Refusal(`an encrypted ${field} is not supported`);
  const value = parseCount(text(one(node, 'PlainValue')));
  if (value === null) throw new Refusal(`${field} is not a non-negative integer`);
  return value;
}

/** Runs a file-level step: what would refuse one package makes the whole file unreadable. */
function fileLevel<T>(step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (error instanceof Refusal) invalid(error.message);
    throw error;
  }
}

function invalid(message: string): never {
  throw new CountersignError('INVALID_FILE', message);
}
