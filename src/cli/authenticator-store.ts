import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CountersignError } from '../core/errors.js';

/**
 * The key file of `countersign authenticator …`: the push accounts this machine has activated,
 * each with its device's P-256 private key. JSON `{version: 1, accounts: […]}`, only ever
 * readable by its owner: written with mode 0600 (its directory created 0700) through a
 * temporary file in the same directory and a rename, so a crash never leaves half a file; a
 * file that others may read or write is refused rather than used.
 *
 * The default path is `~/.config/countersign/authenticator.json` (from `os.homedir()`; src does
 * not read the environment, so `$XDG_CONFIG_HOME` is honoured only through `--store FILE`).
 */
export interface AuthenticatorAccount {
  /** The server's base URL: everything before `/authenticator` in the activation URL. */
  server: string;
  tenant: string;
  username: string;
  device_id: string;
  name: string;
  /** PKCS#8 PEM. Never printed. */
  private_key: string;
  /** SPKI DER, standard base64: what the server holds. */
  public_key: string;
  added_at: string;
  /** The TOTP secret for offline codes, when the activation carried one (base32). */
  totp?: { secret: string; algorithm: string; digits: number; period: number };
}

export interface AuthenticatorFile {
  version: 1;
  accounts: AuthenticatorAccount[];
}

const ACCOUNT_FIELDS = ['server', 'tenant', 'username', 'device_id', 'name', 'private_key', 'public_key', 'added_at'] as const;

export function defaultStorePath(): string {
  return join(homedir(), '.config', 'countersign', 'authenticator.json');
}

export function emptyStore(): AuthenticatorFile {
  return { version: 1, accounts: [] };
}

function invalidFile(path: string, problem: string): CountersignError {
  return new CountersignError('INVALID_FILE', `${path}: ${problem}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseAccount(path: string, value: unknown, index: number): AuthenticatorAccount {
  if (!isRecord(value)) throw invalidFile(path, `accounts[${index}] is not an object`);
  for (const field of ACCOUNT_FIELDS) {
    if (typeof value[field] !== 'string' || value[field] === '') throw invalidFile(path, `accounts[${index}].${field} is missing or not a string`);
  }
  const text = (field: (typeof ACCOUNT_FIELDS)[number]): string => String(value[field]);
  return {
    server: text('server'),
    tenant: text('tenant'),
    username: text('username'),
    device_id: text('device_id'),
    name: text('name'),
    private_key: text('private_key'),
    public_key: text('public_key'),
    added_at: text('added_at'),
    ...parseTotp(path, value['totp'], index),
  };
}

/** Parses the text of a key file; `path` only names it in errors. */
function parseTotp(path: string, value: unknown, index: number): Pick<AuthenticatorAccount, 'totp'> {
  if (value === undefined) return {};
  if (
    !isRecord(value) ||
    typeof value['secret'] !== 'string' ||
    typeof value['algorithm'] !== 'string' ||
    typeof value['digits'] !== 'number' ||
    typeof value['period'] !== 'number'
  ) {
    throw invalidFile(path, `accounts[${index}].totp is not {secret, algorithm, digits, period}`);
  }
  return { totp: { secret: value['secret'], algorithm: value['algorithm'], digits: value['digits'], period: value['period'] } };
}

export function parseStore(path: string, text: string): AuthenticatorFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidFile(path, 'is not JSON');
  }
  if (!isRecord(value) || value['version'] !== 1 || !Array.isArray(value['accounts'])) throw invalidFile(path, 'is not a version 1 authenticator file');
  return { version: 1, accounts: value['accounts'].map((account: unknown, index) => parseAccount(path, account, index)) };
}

/**
 * Reads the key file; a file that does not exist yet is an empty store. Refuses (one line) a
 * file that is not a regular file or that its group or others may read or write.
 */
export function load(path: string): AuthenticatorFile {
  let mode: number;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw invalidFile(path, 'is not a regular file');
    mode = stat.mode;
  } catch (error) {
    if (error instanceof CountersignError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyStore();
    throw invalidFile(path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  // Windows has no such modes; everywhere else the private keys must be the owner's alone.
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw invalidFile(path, `holds private keys but is readable by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): run chmod 600 ${path}`);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw invalidFile(path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parseStore(path, text);
}

/** Writes the key file: mode 0600, through a temporary file in the same directory and a rename. */
export function save(path: string, file: AuthenticatorFile): void {
  const dir = dirname(path);
  const text = `${JSON.stringify(file, null, 2)}\n`;
  const temporary = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // 'wx': the random name is ours alone; never follow or reuse someone else's file.
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(temporary, 0o600);
    renameSync(temporary, path);
  } catch (error) {
    try {
      unlinkSync(temporary);
    } catch {
      // Never created, or already renamed.
    }
    throw invalidFile(path, `cannot be written (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * The store with `account` added. One account per server, tenant and username: activating the
 * same user again replaces the older key (whose device the server can no longer reach here).
 */
export function addAccount(file: AuthenticatorFile, account: AuthenticatorAccount): AuthenticatorFile {
  const others = file.accounts.filter((a) => !(a.server === account.server && a.tenant === account.tenant && a.username === account.username));
  return { version: 1, accounts: [...others, account] };
}

/** A pending request as it is matched by id; the caller's type carries the rest. */
export interface HasId {
  id: string;
}

/**
 * Which account a pending request belongs to: lists each account's pending requests (through
 * `pending`, so this module does no HTTP) and matches the id. An account whose server fails is
 * skipped while another may still hold the request; if none does, the first failure is thrown,
 * else NOT_FOUND.
 */
export async function findAccountForRequest<R extends HasId>(
  file: AuthenticatorFile,
  id: string,
  pending: (account: AuthenticatorAccount) => Promise<R[]>,
): Promise<{ account: AuthenticatorAccount; request: R }> {
  if (file.accounts.length === 0) throw new CountersignError('NOT_FOUND', 'no authenticator accounts: run `countersign authenticator activate URL` first');
  let failure: Error | undefined;
  for (const account of file.accounts) {
    let requests: R[];
    try {
      requests = await pending(account);
    } catch (error) {
      failure ??= error instanceof Error ? error : new Error(String(error));
      continue;
    }
    const request = requests.find((r) => r.id === id);
    if (request !== undefined) return { account, request };
  }
  if (failure !== undefined) throw failure;
  throw new CountersignError('NOT_FOUND', `request ${id} not found among the pending requests of any account`);
}
