/** The offline codes (TOTP, RFC 6238) of an account whose activation carried a secret, via `otpauth`. */
import { Secret, TOTP } from 'otpauth';
import type { TotpSecret } from './accounts.js';

export interface ShownCode {
  code: string;
  /** Seconds until the code changes. */
  remaining: number;
  period: number;
}

export function currentCode(secret: TotpSecret, now = Date.now()): ShownCode {
  const totp = new TOTP({ secret: Secret.fromBase32(secret.secret), algorithm: secret.algorithm, digits: secret.digits, period: secret.period });
  const remaining = secret.period - (Math.floor(now / 1000) % secret.period);
  return { code: totp.generate({ timestamp: now }), remaining, period: secret.period };
}
