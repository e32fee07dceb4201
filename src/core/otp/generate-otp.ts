import { createHmac } from 'node:crypto';

export type OtpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

export interface OtpParams {
  readonly algorithm: OtpAlgorithm;
  readonly digits: number;
}

const HMAC_NAMES: Record<OtpAlgorithm, string> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };

/**
 * HOTP value for one counter (RFC 4226 §5.3; TOTP is HOTP over the time step, RFC 6238 §4).
 * Written here rather than taken from otpauth because it is the verifier's own hot path: it
 * runs up to 2·window+1 (TOTP) or look-ahead+1 (HOTP) times per verification, and otpauth
 * builds a Secret object and copies buffers per call. The RFC 4226 and RFC 6238 test vectors
 * pin it (generate-otp.test.ts), and otpauth still builds the otpauth:// URIs.
 */
export function generateOtp(secret: Uint8Array, counter: number, params: OtpParams): string {
  // The counter is an 8-byte big-endian integer (RFC 4226 §5.2); it may exceed 2^32
  // (RFC 6238 App. B: T = 20000000000 s).
  const message = Buffer.alloc(8);
  message.writeUInt32BE(Math.floor(counter / 0x1_0000_0000), 0);
  message.writeUInt32BE(counter >>> 0, 4);
  const hmac = createHmac(HMAC_NAMES[params.algorithm], secret).update(message).digest();
  // Dynamic truncation (RFC 4226 §5.3): the low 4 bits of the last byte pick the offset.
  const offset = (hmac[hmac.length - 1] ?? 0) & 0x0f;
  const binary = (((hmac[offset] ?? 0) & 0x7f) << 24) | ((hmac[offset + 1] ?? 0) << 16) | ((hmac[offset + 2] ?? 0) << 8) | (hmac[offset + 3] ?? 0);
  return (binary % 10 ** params.digits).toString().padStart(params.digits, '0');
}

/** The RFC 6238 time step T = floor((now − T0) / X) with T0 = 0. */
export function timeStep(nowMs: number, periodSeconds: number): number {
  return Math.floor(nowMs / 1000 / periodSeconds);
}
