/**
 * Shared shapes for OATH hardware token files (the Azure MFA CSV and RFC 6030 PSKC).
 * Parsers are pure: text in, tokens and refusals out. Storing, encrypting the seeds at rest
 * and assigning them to users is the import flow's job.
 */

export type OtpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

export interface ImportedToken {
  /** Where it came from, for reports: "line 3" (CSV, 1-based incl. header) or "KeyPackage 2" (PSKC, 1-based). */
  position: string;
  serial: string;
  /** CSV upn / PSKC UserId; null = unassigned (goes to the tenant's inventory). */
  username: string | null;
  kind: 'hotp' | 'totp';
  /** Raw key bytes. Never log them. */
  secret: Uint8Array;
  algorithm: OtpAlgorithm;
  digits: 6 | 8;
  /** TOTP time step in seconds; null for HOTP. */
  period: 30 | 60 | null;
  /** HOTP moving factor (0 when absent); 0 for TOTP. */
  counter: number;
  manufacturer: string | null;
  model: string | null;
}

export interface RefusedEntry {
  position: string;
  reason: string;
}

export interface TokenFileResult {
  format: 'csv' | 'pskc';
  tokens: ImportedToken[];
  refused: RefusedEntry[];
}

/**
 * Shortest seed we accept from any token file: 80 bits. RFC 4226 §4 requires 128 bits and
 * recommends 160, but the Azure MFA CSV documents 80-bit (16 Base32 characters) seeds, so
 * that is the floor both formats share.
 */
export const MIN_SECRET_BYTES = 10;

/** Quote a value taken from the file for a refusal reason: bounded, control characters escaped. */
export function quoteFileValue(value: string): string {
  const short = value.length > 64 ? `${value.slice(0, 64)}…` : value;
  return JSON.stringify(short);
}
