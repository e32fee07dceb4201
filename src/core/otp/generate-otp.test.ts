import { describe, expect, it } from 'vitest';
import { generateOtp, timeStep, type OtpAlgorithm } from './generate-otp.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('OTP-04: RFC 4226 Appendix D (HOTP, SHA-1, 6 digits)', () => {
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  for (const [counter, code] of expected.entries()) {
    it(`counter ${counter} → ${code}`, () => {
      expect(generateOtp(ascii('12345678901234567890'), counter, { algorithm: 'SHA1', digits: 6 })).toBe(code);
    });
  }
});

describe('OTP-04: RFC 6238 Appendix B (TOTP, 8 digits, 30 s, T0 = 0)', () => {
  // The seed length differs per hash (RFC 6238 App. A reference code): 20, 32 and 64 bytes.
  const seeds: Record<OtpAlgorithm, Uint8Array> = {
    SHA1: ascii('12345678901234567890'),
    SHA256: ascii('12345678901234567890123456789012'),
    SHA512: ascii('1234567890123456789012345678901234567890123456789012345678901234'),
  };
  const table: [number, string, string, string][] = [
    [59, '94287082', '46119246', '90693936'],
    [1111111109, '07081804', '68084774', '25091201'],
    [1111111111, '14050471', '67062674', '99943326'],
    [1234567890, '89005924', '91819424', '93441116'],
    [2000000000, '69279037', '90698825', '38618901'],
    [20000000000, '65353130', '77737706', '47863826'],
  ];
  for (const [seconds, sha1, sha256, sha512] of table) {
    it(`T = ${seconds}s`, () => {
      const step = timeStep(seconds * 1000, 30);
      expect(generateOtp(seeds.SHA1, step, { algorithm: 'SHA1', digits: 8 })).toBe(sha1);
      expect(generateOtp(seeds.SHA256, step, { algorithm: 'SHA256', digits: 8 })).toBe(sha256);
      expect(generateOtp(seeds.SHA512, step, { algorithm: 'SHA512', digits: 8 })).toBe(sha512);
    });
  }
  it('T = 20000000000 needs a counter above 2^32 … and gets step 666666666 exactly', () => {
    expect(timeStep(20000000000 * 1000, 30)).toBe(666666666);
  });
});

describe('generateOtp agrees with the otpauth library', () => {
  it('on 200 random seeds, counters (beyond 2^32 too), hashes and lengths', async () => {
    const { HOTP, Secret } = await import('otpauth');
    const { randomBytes, randomInt } = await import('node:crypto');
    const algorithms: OtpAlgorithm[] = ['SHA1', 'SHA256', 'SHA512'];
    for (let i = 0; i < 200; i++) {
      const seed = randomBytes(20 + (i % 3) * 12);
      const counter = i % 2 === 0 ? randomInt(0, 2 ** 32) : randomInt(2 ** 32, 2 ** 40);
      const algorithm = algorithms[i % 3] ?? 'SHA1';
      const digits = i % 2 === 0 ? 6 : 8;
      const expected = HOTP.generate({ secret: new Secret({ buffer: seed.buffer.slice(seed.byteOffset, seed.byteOffset + seed.length) }), algorithm, digits, counter });
      expect(generateOtp(seed, counter, { algorithm, digits })).toBe(expected);
    }
  });
});
