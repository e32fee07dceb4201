import { timingSafeEqual } from 'node:crypto';
import { generateOtp, timeStep, type OtpParams } from './generate-otp.js';

/**
 * Where a submitted code sits among the counters a verifier may accept. The caller consumes a
 * `match` atomically in the store (`SET counter = c + 1 WHERE counter <= c`); a `replay` is a
 * code that was valid but whose step is already used (RFC 6238 §5.2: the verifier "MUST NOT
 * accept the second attempt"), reported separately so it can be audited (SECURITY.md OTP-09).
 */
export type OtpMatch = { result: 'match'; counter: number } | { result: 'replay'; counter: number } | { result: 'no_match' };

export interface TotpWindow {
  readonly nowMs: number;
  readonly period: number;
  /** Steps accepted on each side of the current one: 1 by default, 0 in strict mode (OTP-03). */
  readonly window: number;
  /** The lowest step not yet used. */
  readonly nextCounter: number;
}

export interface HotpWindow {
  /** The lowest counter not yet used. */
  readonly nextCounter: number;
  /** RFC 4226 §7.4 look-ahead parameter s. */
  readonly lookAhead: number;
}

function sameCode(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function search(secret: Uint8Array, params: OtpParams, code: string, from: number, to: number): number | undefined {
  for (let counter = Math.max(0, from); counter <= to; counter++) {
    if (sameCode(generateOtp(secret, counter, params), code)) return counter;
  }
  return undefined;
}

function classify(found: number | undefined, nextCounter: number): OtpMatch {
  if (found === undefined) return { result: 'no_match' };
  return found >= nextCounter ? { result: 'match', counter: found } : { result: 'replay', counter: found };
}

/** TOTP (RFC 6238 §5.2): steps now−window … now+window; the server clock decides (OTP-08). */
export function matchTotp(secret: Uint8Array, params: OtpParams, code: string, at: TotpWindow): OtpMatch {
  const now = timeStep(at.nowMs, at.period);
  return classify(search(secret, params, code, now - at.window, now + at.window), at.nextCounter);
}

/**
 * HOTP (RFC 4226 §7.2, §7.4): counters next … next+lookAhead. A code for a counter below `next`
 * is looked for only a few steps back, to tell a replay from a wrong code.
 */
export function matchHotp(secret: Uint8Array, params: OtpParams, code: string, at: HotpWindow): OtpMatch {
  const found = search(secret, params, code, at.nextCounter, at.nextCounter + at.lookAhead);
  if (found !== undefined) return { result: 'match', counter: found };
  return classify(search(secret, params, code, at.nextCounter - 3, at.nextCounter - 1), at.nextCounter);
}

/**
 * HOTP resynchronisation (RFC 4226 §7.4): the token has drifted beyond the look-ahead; two
 * consecutive codes must both match, at c and c+1, within `range` counters. Returns the
 * counter of the second code, or undefined.
 */
export function findHotpResync(secret: Uint8Array, params: OtpParams, first: string, second: string, nextCounter: number, range: number): number | undefined {
  for (let counter = nextCounter; counter <= nextCounter + range; counter++) {
    if (sameCode(generateOtp(secret, counter, params), first) && sameCode(generateOtp(secret, counter + 1, params), second)) {
      return counter + 1;
    }
  }
  return undefined;
}
