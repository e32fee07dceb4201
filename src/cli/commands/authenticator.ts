import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { CountersignError, ERROR_STATUS, invalidInput, type ErrorCode } from '../../core/errors.js';
import { deviceRequestMessage, pushAnswerMessage, type PushDecision } from '../../core/push-signature.js';
import { Secret } from 'otpauth';
import { generateOtp, timeStep } from '../../core/otp/generate-otp.js';
import { readFirstLine } from '../stdin.js';
import { addAccount, defaultStorePath, findAccountForRequest, load, save, type AuthenticatorAccount } from '../authenticator-store.js';
import { print } from '../context.js';

/**
 * `countersign authenticator …`: a push authenticator in the terminal, for people without a
 * phone at hand and for tests. `activate` turns an activation URL into a device (a P-256 key
 * pair whose private half stays in the key file, see ../authenticator-store.ts); `list` shows
 * the sign-ins waiting for an answer; `approve`, `deny` and `report-fraud` answer one, signed
 * with the device key (src/core/push-signature.ts). These commands never open the server's
 * store: they talk to the server's device API over HTTP, like the phone would.
 */
type Options = { json?: boolean; store?: string };

/** What GET /v1/authenticator/pending returns for each request. */
interface PendingRequest {
  id: string;
  type: string;
  application: string | null;
  ip: string | null;
  /** Where the IP address is, when the server has a GeoIP database ("Berlin, Germany"). */
  location: string | null;
  event: { title: string; detail: string | null } | null;
  expires_at: string;
  number_required: boolean;
  pin_required: boolean;
}

/** One line of `authenticator list --json`. */
interface ListedRequest {
  id: string;
  account: string;
  application: string | null;
  ip: string | null;
  /** Where the IP address is, when the server has a GeoIP database ("Berlin, Germany"). */
  location: string | null;
  event: { title: string; detail: string | null } | null;
  expires_at: string;
  number_required: boolean;
  pin_required: boolean;
}

const TIMEOUT_MS = 10_000;
const PENDING_PATH = '/v1/authenticator/pending';

function storePath(options: Options): string {
  return options.store ?? defaultStorePath();
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

function stringOrNull(value: unknown): string | null | undefined {
  return value === null ? null : typeof value === 'string' ? value : undefined;
}

/** The server's base URL and the activation code, from `<base>/authenticator#activate=<code>` (or `?activate=`). */
export function parseActivationUrl(raw: string): { server: string; code: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidInput('URL', 'is not a URL (expected https://…/authenticator#activate=CODE)');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalidInput('URL', 'must be an http or https URL');
  const code = new URLSearchParams(url.hash.replace(/^#/, '')).get('activate') ?? url.searchParams.get('activate');
  if (code === null || code === '') throw invalidInput('URL', 'has no #activate= code (expected https://…/authenticator#activate=CODE)');
  if (!/^[A-Za-z0-9_-]+$/.test(code)) throw invalidInput('URL', 'the activate code is not base64url');
  const path = url.pathname.replace(/\/+$/, '').replace(/\/authenticator$/, '');
  return { server: `${url.origin}${path}`, code };
}

/** A server's `{error: {code, message}}` as a one-line CountersignError, with the server's code when it is one of ours. */
function serverError(server: string, status: number, body: unknown): CountersignError {
  const error = isRecord(body) && isRecord(body['error']) ? body['error'] : undefined;
  const message = typeof error?.['message'] === 'string' ? oneLine(error['message']) : `answered HTTP ${status}`;
  const raw = error?.['code'];
  const code: ErrorCode = typeof raw === 'string' && Object.hasOwn(ERROR_STATUS, raw) ? (raw as ErrorCode) : 'PROVIDER_FAILED';
  return new CountersignError(code, `${server}: ${message}`);
}

/** One HTTP call to a server's device API: JSON in and out, 10 s at most; any failure is one line naming the server. */
async function call(server: string, method: 'GET' | 'POST', path: string, options: { body?: unknown; authorization?: string } = {}): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.authorization !== undefined) headers['authorization'] = options.authorization;
  let response: Response;
  try {
    response = await fetch(`${server}${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
      redirect: 'error',
    });
  } catch (error) {
    const reason =
      error instanceof Error && error.name === 'TimeoutError'
        ? `no answer within ${TIMEOUT_MS / 1000} s`
        : error instanceof Error && isRecord(error.cause) && typeof error.cause['code'] === 'string'
          ? error.cause['code']
          : error instanceof Error
            ? error.message
            : String(error);
    throw new CountersignError('PROVIDER_FAILED', `cannot reach the server ${server} (${oneLine(reason)})`, { cause: error });
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) throw serverError(server, response.status, body);
  if (body === undefined) throw new CountersignError('PROVIDER_FAILED', `${server}: answered HTTP ${response.status} without JSON`);
  return body;
}

function unexpected(server: string, what: string): CountersignError {
  return new CountersignError('PROVIDER_FAILED', `${server}: unexpected answer to ${what}`);
}

function signWith(key: KeyObject, message: string): string {
  return sign('sha256', Buffer.from(message, 'utf8'), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}

function privateKeyOf(account: AuthenticatorAccount): KeyObject {
  try {
    return createPrivateKey(account.private_key);
  } catch {
    // Never the key itself in the message.
    throw new CountersignError('INVALID_FILE', `the private key of ${account.tenant}/${account.username} on ${account.server} cannot be read`);
  }
}

function parsePending(server: string, body: unknown): PendingRequest[] {
  if (!isRecord(body) || !Array.isArray(body['requests'])) throw unexpected(server, `GET ${PENDING_PATH}`);
  return body['requests'].map((item: unknown): PendingRequest => {
    if (!isRecord(item)) throw unexpected(server, `GET ${PENDING_PATH}`);
    const application = stringOrNull(item['application']);
    const ip = stringOrNull(item['ip']);
    // Servers from before locations do not send one: no location then.
    const location = stringOrNull(item['location'] ?? null);
    const rawEvent = item['event'];
    let event: PendingRequest['event'] | undefined;
    if (rawEvent === null) event = null;
    else if (isRecord(rawEvent) && typeof rawEvent['title'] === 'string') {
      const detail = stringOrNull(rawEvent['detail'] ?? null);
      if (detail !== undefined) event = { title: rawEvent['title'], detail };
    }
    const { id, type, expires_at: expiresAt, number_required: numberRequired } = item;
    if (typeof id !== 'string' || typeof type !== 'string' || typeof expiresAt !== 'string' || typeof numberRequired !== 'boolean' || application === undefined || ip === undefined || location === undefined || event === undefined) {
      throw unexpected(server, `GET ${PENDING_PATH}`);
    }
    // Servers from before PIN mode do not say: no PIN then.
    return { id, type, application, ip, location, event, expires_at: expiresAt, number_required: numberRequired, pin_required: item['pin_required'] === true };
  });
}

/** An account's pending requests, fetched with a signed `Authorization: Device …` header. */
async function pendingOf(account: AuthenticatorAccount): Promise<PendingRequest[]> {
  const key = privateKeyOf(account);
  const timestamp = Date.now();
  const signature = signWith(key, deviceRequestMessage(account.device_id, 'GET', PENDING_PATH, timestamp));
  const body = await call(account.server, 'GET', PENDING_PATH, { authorization: `Device ${account.device_id}.${timestamp}.${signature}` });
  return parsePending(account.server, body);
}

function listed(account: AuthenticatorAccount, request: PendingRequest): ListedRequest {
  return {
    id: request.id,
    account: `${account.tenant}/${account.username}`,
    application: request.application,
    ip: request.ip,
    location: request.location,
    event: request.event,
    expires_at: request.expires_at,
    number_required: request.number_required,
    pin_required: request.pin_required,
  };
}

function describe(request: ListedRequest): string {
  const lines = [`${request.id}  ${request.account}  ${request.application ?? '-'}  ${request.ip ?? '-'}${request.location === null ? '' : `  ${oneLine(request.location)}`}`];
  if (request.event !== null) {
    lines.push(`    ${oneLine(request.event.title)}`);
    if (request.event.detail !== null && request.event.detail !== '') lines.push(`    ${oneLine(request.event.detail)}`);
  }
  if (request.number_required) lines.push('    asks for the number shown at sign-in: approve with --number N');
  if (request.pin_required) lines.push('    asks for your PIN: approve reads it from standard input');
  return lines.join('\n');
}

/** Finds the request among the accounts' pending ones, signs the decision and posts it. */
async function answer(id: string, decision: PushDecision, options: Options & { number?: string }): Promise<void> {
  if (options.number !== undefined && !/^\d{1,16}$/.test(options.number)) throw invalidInput('--number', 'must be the digits shown at sign-in');
  const file = load(storePath(options));
  const { account, request } = await findAccountForRequest(file, id, pendingOf);
  let number = '';
  if (decision === 'approve' && request.number_required) {
    if (options.number === undefined) throw invalidInput('--number', `request ${id} asks for the number shown at sign-in: approve it with --number N`);
    number = options.number;
  }
  // PIN mode: the PIN comes from standard input, never from an argument.
  const pin = decision === 'approve' && request.pin_required ? await readFirstLine() : undefined;
  if (pin !== undefined && !/^\d{4,16}$/.test(pin)) throw invalidInput('pin', 'give your PIN (4–16 digits) as the first line of standard input');
  const timestamp = Date.now();
  const signature = signWith(privateKeyOf(account), pushAnswerMessage(request.id, decision, number, timestamp));
  const body = await call(account.server, 'POST', `/v1/authenticator/challenges/${encodeURIComponent(request.id)}/answer`, {
    body: { device_id: account.device_id, decision, number, timestamp, signature, ...(pin === undefined ? {} : { pin }) },
  });
  const what = `POST /v1/authenticator/challenges/${request.id}/answer`;
  if (!isRecord(body) || typeof body['id'] !== 'string' || typeof body['status'] !== 'string') throw unexpected(account.server, what);
  const result = { id: body['id'], status: body['status'] };
  print(options.json, result, () => `${result.id}: ${result.status}`);
}

/** The TOTP secret an activation may carry (offline codes). */
function totpOf(value: unknown): Pick<AuthenticatorAccount, 'totp'> {
  if (!isRecord(value) || typeof value['secret'] !== 'string' || typeof value['digits'] !== 'number' || typeof value['period'] !== 'number') return {};
  return { totp: { secret: value['secret'], algorithm: typeof value['algorithm'] === 'string' ? value['algorithm'] : 'SHA1', digits: value['digits'], period: value['period'] } };
}

export function registerAuthenticatorCommands(program: Command): void {
  const authenticator = program
    .command('authenticator')
    .description('a push authenticator in the terminal: activate this machine, list and answer sign-in requests (talks to the server over HTTP)');
  const common = (c: Command): Command => c.option('--store <file>', 'the key file (default ~/.config/countersign/authenticator.json)').option('--json', 'print JSON');

  common(
    authenticator
      .command('activate <url>')
      .description('activate this machine as a push device with an activation URL (https://…/authenticator#activate=CODE)')
      .option('--name <name>', 'a name for this device (default "<hostname> (CLI)")'),
  ).action(async (raw: string, options: Options & { name?: string }) => {
    const { server, code } = parseActivationUrl(raw);
    const path = storePath(options);
    // Read first: a key file that cannot be used must not cost the one-time code.
    const file = load(path);
    const name = options.name ?? `${hostname()} (CLI)`;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicKeyText = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const body = await call(server, 'POST', '/v1/authenticator/activate', { body: { code, public_key: publicKeyText, name } });
    if (!isRecord(body) || typeof body['device_id'] !== 'string' || typeof body['tenant'] !== 'string' || typeof body['username'] !== 'string') {
      throw unexpected(server, 'POST /v1/authenticator/activate');
    }
    const account: AuthenticatorAccount = {
      server,
      tenant: body['tenant'],
      username: body['username'],
      device_id: body['device_id'],
      name,
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      public_key: publicKeyText,
      added_at: new Date().toISOString(),
      ...totpOf(body['totp']),
    };
    save(path, addAccount(file, account));
    const result = { device_id: account.device_id, tenant: account.tenant, username: account.username, server };
    print(options.json, result, () => `activated ${result.tenant}/${result.username} on ${server} (device ${result.device_id}); keys in ${path}`);
  });

  common(authenticator.command('list').description('the sign-in requests waiting for an answer, for every activated account')).action(async (options: Options) => {
    const file = load(storePath(options));
    const requests: ListedRequest[] = [];
    for (const account of file.accounts) {
      for (const request of await pendingOf(account)) requests.push(listed(account, request));
    }
    print(options.json, requests, () => requests.map(describe).join('\n') || '(no pending requests)');
  });

  common(
    authenticator
      .command('approve <id>')
      .description('approve a sign-in request')
      .option('--number <n>', 'the number shown at sign-in, when the request asks for it'),
  ).action((id: string, options: Options & { number?: string }) => answer(id, 'approve', options));

  common(authenticator.command('deny <id>').description('deny a sign-in request')).action((id: string, options: Options) => answer(id, 'deny', options));

  common(authenticator.command('report-fraud <id>').description('deny a sign-in request and report it as fraud (you did not try to sign in)')).action((id: string, options: Options) =>
    answer(id, 'fraud', options),
  );

  common(authenticator.command('code').description('offline codes (TOTP) of the activated accounts that carry one (push activate --with-totp)')).action((options: Options) => {
    const now = Date.now();
    const codes = load(storePath(options)).accounts.flatMap((a) => {
      if (a.totp === undefined) return [];
      const algorithm = a.totp.algorithm === 'SHA256' || a.totp.algorithm === 'SHA512' ? a.totp.algorithm : 'SHA1';
      const code = generateOtp(Secret.fromBase32(a.totp.secret).bytes, timeStep(now, a.totp.period), { algorithm, digits: a.totp.digits });
      const secondsLeft = a.totp.period - (Math.floor(now / 1000) % a.totp.period);
      return [{ account: `${a.tenant}/${a.username}`, code, seconds_left: secondsLeft }];
    });
    print(options.json, codes, () => codes.map((c) => `${c.account}  ${c.code}  (${c.seconds_left} s left)`).join('\n') || '(no offline codes: activate with an account that carries a TOTP secret: push activate --with-totp)');
  });
}
