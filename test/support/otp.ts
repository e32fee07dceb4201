import { execFileSync } from 'node:child_process';
import { Secret } from 'otpauth';
import { generateOtp, timeStep, type OtpAlgorithm } from '../../src/core/otp/generate-otp.js';

/** Codes for tests: our generator (checked against the RFC vectors) and the real oathtool. */
export function totpAt(secretBase32: string, ms: number, options: { algorithm?: OtpAlgorithm; digits?: number; period?: number } = {}): string {
  const secret = Secret.fromBase32(secretBase32).bytes;
  return generateOtp(secret, timeStep(ms, options.period ?? 30), { algorithm: options.algorithm ?? 'SHA1', digits: options.digits ?? 6 });
}

export function hotpAt(secretBase32: string, counter: number, digits = 6): string {
  return generateOtp(Secret.fromBase32(secretBase32).bytes, counter, { algorithm: 'SHA1', digits });
}

/** An independent generator: oathtool from Debian's oathtool package. */
export function oathtool(args: string[]): string {
  return execFileSync('oathtool', args, { encoding: 'utf8' }).trim();
}

export function hasOathtool(): boolean {
  try {
    execFileSync('oathtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
