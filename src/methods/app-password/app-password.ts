import { hash, parseOptions, verify } from '@node-rs/argon2';

/**
 * An app password (SPEC concept "app password"; Azure MFA "app passwords" for clients that cannot
 * do MFA: IMAP, EAS, old SMTP): a password Countersign generates, never one a person chooses.
 *
 * The secret is 28 lowercase letters a–z from the injected CSPRNG — 28 × log2(26) ≈ 131.6 bits,
 * above NIST 800-63B's 112 bits and SECURITY.md's "high entropy" (APP-01) — shown in 7 groups of
 * 4 ("abcd efgh …") so it can be read off a screen and typed on a phone's letter keyboard without
 * switching to digits or symbols. Whatever a client sends is normalized before it is checked:
 * spaces and hyphens are dropped and letters lowercased, so "ABCD-EFGH…" or the groups run
 * together are the same password.
 *
 * Stored only as an argon2id PHC string (SECURITY.md APP-01 cites NIST 800-63B §3.1.1.2, the
 * password storage rules, and PWD-01 asks for argon2id at m = 19 MiB, t = 2, p = 1 with the
 * parameters kept, so they can be raised), keyed with a pepper (argon2's secret input) that lives
 * in the keyring, not in the database (PWD-01: "a pepper or HMAC key lives in KMS").
 */
export const APP_PASSWORD_LETTERS = 28;
export const APP_PASSWORD_GROUP = 4;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';
/** log2(26^28): what a guesser faces. */
export const APP_PASSWORD_BITS = APP_PASSWORD_LETTERS * Math.log2(ALPHABET.length);

export const ARGON2_PARAMETERS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** A new password, uniformly from the random source (rejection sampling: 234 = 9 × 26 is the largest multiple of 26 in a byte). */
export function generateAppPassword(random: (bytes: number) => Buffer): string {
  let letters = '';
  while (letters.length < APP_PASSWORD_LETTERS) {
    for (const byte of random(APP_PASSWORD_LETTERS)) {
      if (byte < 234 && letters.length < APP_PASSWORD_LETTERS) letters += ALPHABET[byte % ALPHABET.length] ?? '';
    }
  }
  return formatAppPassword(letters);
}

/** 7 groups of 4 letters, separated by spaces: how a password is shown (once). */
export function formatAppPassword(letters: string): string {
  return (letters.match(new RegExp(`.{1,${APP_PASSWORD_GROUP}}`, 'g')) ?? []).join(' ');
}

/**
 * The canonical letters of what a client sent, or undefined when it cannot be an app password
 * (wrong length or characters): such a guess is refused without hashing anything.
 */
export function normalizeAppPassword(input: string): string | undefined {
  const letters = input.replace(/[\s-]/g, '').toLowerCase();
  return new RegExp(`^[a-z]{${APP_PASSWORD_LETTERS}}$`).test(letters) ? letters : undefined;
}

/** The PHC string to store for a password (given as shown or as its canonical letters). */
export async function hashAppPassword(password: string, pepper: Buffer): Promise<string> {
  const letters = normalizeAppPassword(password);
  if (letters === undefined) throw new Error('not an app password');
  return hash(letters, { ...ARGON2_PARAMETERS, secret: pepper });
}

/** Whether `letters` (normalized) is the password of `stored`; argon2 compares in constant time. */
export async function appPasswordMatches(stored: string, letters: string, pepper: Buffer): Promise<boolean> {
  try {
    return await verify(stored, letters, { secret: pepper });
  } catch {
    // A malformed stored string is no match (and never an exception that reaches the caller).
    return false;
  }
}

/** True when `stored` was made with weaker parameters than today's: it is rehashed at its next use. */
export function appPasswordNeedsRehash(stored: string): boolean {
  if (!stored.startsWith('$argon2id$')) return true;
  try {
    const options = parseOptions(stored);
    return options.memoryCost < ARGON2_PARAMETERS.memoryCost || options.timeCost < ARGON2_PARAMETERS.timeCost || options.parallelism < ARGON2_PARAMETERS.parallelism;
  } catch {
    return true;
  }
}
