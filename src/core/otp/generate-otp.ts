import { HOTP, Secret } from 'otpauth';

export type OtpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

export interface OtpParams {
  readonly algorithm: OtpAlgorithm;
  readonly digits: number;
}

/**
 * HOTP value for one counter (RFC 4226 §5.3; TOTP is HOTP over the time step, RFC 6238 §4).
 * The truncation is done by the otpauth library; the counter may exceed 2^32 (RFC 6238 App. B
 * needs a 64-bit counter for T = 20000000000).
 */
export function generateOtp(secret: Uint8Array, counter: number, params: OtpParams): string {
  return HOTP.generate({
    secret: new Secret({ buffer: secret.buffer.slice(secret.byteOffset, secret.byteOffset + secret.byteLength) as ArrayBuffer }),
    algorithm: params.algorithm,
    digits: params.digits,
    counter,
  });
}

/** The RFC 6238 time step T = floor((now − T0) / X) with T0 = 0. */
export function timeStep(nowMs: number, periodSeconds: number): number {
  return Math.floor(nowMs / 1000 / periodSeconds);
}
