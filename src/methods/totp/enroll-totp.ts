import { Secret, TOTP } from 'otpauth';
import QRCode from 'qrcode';
import { invalidInput } from '../../core/errors.js';
import type { OtpAlgorithm } from '../../core/otp/generate-otp.js';

/**
 * What an authenticator app needs to be set up (Key URI format: otpauth://totp/Issuer:account?
 * secret=…&issuer=…&algorithm=…&digits=…&period=…). The URI is built by the otpauth library,
 * the QR code by the qrcode library.
 */
export interface TotpOptions {
  algorithm: OtpAlgorithm;
  digits: 6 | 8;
  period: 30 | 60;
}

export interface TotpProvisioning {
  secret: string;
  uri: string;
  qr_png: string;
  qr_svg: string;
}

/** RFC 4226 §4 R6 and NIST 800-63B: 160-bit seeds (SECURITY.md OTP-05). */
export const TOTP_SEED_BYTES = 20;

export function parseTotpOptions(input: { algorithm?: unknown; digits?: unknown; period?: unknown }): TotpOptions {
  const algorithm = input.algorithm ?? 'SHA1';
  const digits = input.digits ?? 6;
  const period = input.period ?? 30;
  if (algorithm !== 'SHA1' && algorithm !== 'SHA256' && algorithm !== 'SHA512') throw invalidInput('algorithm', 'must be SHA1, SHA256 or SHA512');
  if (digits !== 6 && digits !== 8) throw invalidInput('digits', 'must be 6 or 8');
  if (period !== 30 && period !== 60) throw invalidInput('period', 'must be 30 or 60');
  return { algorithm, digits, period };
}

export async function provisionTotp(seed: Uint8Array, issuer: string, username: string, options: TotpOptions): Promise<TotpProvisioning> {
  const secret = new Secret({ buffer: seed.buffer.slice(seed.byteOffset, seed.byteOffset + seed.byteLength) as ArrayBuffer });
  const uri = new TOTP({ issuer, label: username, secret, algorithm: options.algorithm, digits: options.digits, period: options.period }).toString();
  const [qrPng, qrSvg] = await Promise.all([
    QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, width: 256 }),
    QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 }),
  ]);
  return { secret: secret.base32, uri, qr_png: qrPng, qr_svg: qrSvg };
}
