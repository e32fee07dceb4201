import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CountersignError } from './core/errors.js';
import { normalizeRange } from './core/ip-ranges.js';

/**
 * Configuration: one file (`countersign.yaml` or `.json`) plus `COUNTERSIGN_*` environment
 * variables plus command-line flags (strongest last). Validated once, every problem reported
 * together, then frozen and passed around. No other module reads `process.env`.
 */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** postgres://… for PostgreSQL; undefined for the embedded SQLite store in dataDir. */
  readonly databaseUrl: string | undefined;
  /** Key-encryption keys from config (`id:base64,…`, last one active); undefined → keyring file in dataDir. */
  readonly keys: readonly { readonly id: string; readonly key: Buffer }[] | undefined;
  /** HMAC key of the audit chain when keys come from config. */
  readonly auditKey: Buffer | undefined;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * The reverse proxies (addresses, CIDR ranges, or `loopback` / `linklocal` / `uniquelocal`)
   * whose X-Forwarded-For / -Host / -Proto are believed: the client's address is the last one
   * in X-Forwarded-For not added by one of them. Empty (the default): forwarding headers are
   * ignored and the client is the socket's peer.
   */
  readonly trustedProxies: readonly string[];
  /** Largest request body, in bytes, for imports (CSV, PSKC). Other bodies are limited to 1 MiB. */
  readonly importBodyLimit: number;
  /** Where telephony providers reach this server's webhooks (https://mfa.example.com); undefined = not reachable. */
  readonly publicUrl: string | undefined;
  readonly telephony: TelephonyConfig;
  /** How authenticators are told of a push when they are not streaming: Web Push, FCM, APNs (each optional). */
  readonly push: PushConfig;
  /** Where IP addresses are placed on the map for push requests (a MaxMind DB file); unset = no locations. */
  readonly geoip: GeoIpConfig;
  /** E-mail (fraud alerts, "MFA has been turned on"): an SMTP server, or the local outbox when none is set. */
  readonly email: EmailConfig;
  /** Which webhook endpoint URLs may be added and called. */
  readonly webhooks: WebhooksConfig;
}

export interface EmailConfig {
  /** smtp://user:pass@host:587 or smtps://…:465; undefined = e-mails go to the local outbox (`countersign outbox list`). Never logged. */
  readonly smtpUrl: string | undefined;
  /** The From address, e.g. `Countersign <mfa@contoso.com>`. */
  readonly from: string;
}

export interface WebhooksConfig {
  /** Allow http:// endpoints (tests, development); default false: https only. */
  readonly allowHttp: boolean;
  /** Allow endpoints on loopback, private and link-local addresses (tests, an internal receiver); default false (SSRF). */
  readonly allowPrivate: boolean;
}

export interface GeoIpConfig {
  /** Absolute path of a MaxMind DB (.mmdb) file: GeoLite2 / GeoIP2 City or Country, DB-IP IP to City Lite. */
  readonly database: string | undefined;
}

export interface PushConfig {
  readonly webPush: { readonly publicKey: string; readonly privateKey: string; readonly subject: string; readonly endpointHosts?: readonly string[] } | undefined;
  readonly fcm: { readonly projectId: string; readonly clientEmail: string; readonly privateKey: string; readonly tokenUrl?: string; readonly apiUrl?: string } | undefined;
  readonly apns: { readonly teamId: string; readonly keyId: string; readonly privateKey: string; readonly topic: string; readonly host?: string } | undefined;
}

/**
 * Which provider sends texts and places calls. `outbox` (the default) stores them for a person to
 * read and answer (`countersign outbox`); `twilio` uses Twilio's REST API, TwiML and webhooks;
 * `http` posts texts to any SMS gateway from a template (texts only: calls need twilio or outbox).
 * Credentials live here only, never in logs.
 */
export interface TelephonyConfig {
  readonly provider: 'outbox' | 'twilio' | 'http';
  readonly twilio: TwilioConfig | undefined;
  readonly http: HttpSmsConfig | undefined;
}

export interface TwilioConfig {
  readonly accountSid: string;
  readonly authToken: string;
  /** The sending number (E.164) or a Messaging Service SID (MG…); a tenant's caller ID overrides it for calls. */
  readonly from: string;
  /** https://api.twilio.com; another base URL only for tests against a local server. */
  readonly apiUrl: string;
}

export interface HttpSmsConfig {
  readonly url: string;
  readonly method: 'POST' | 'PUT';
  /** Extra request headers (an Authorization header, say). */
  readonly headers: Readonly<Record<string, string>>;
  /** The body, with {{to}}, {{from}}, {{text}} and {{reference}} replaced (JSON-escaped when the content type is JSON). */
  readonly body: string;
  readonly contentType: string;
  readonly from: string | undefined;
  /** Shared secret an SMS gateway sends (X-Countersign-Token) with texts it receives: POST /v1/telephony/http/inbound. */
  readonly inboundToken: string | undefined;
}

type Source = Record<string, unknown>;

const ENV: Record<string, keyof Config> = {
  COUNTERSIGN_HOST: 'host',
  COUNTERSIGN_PORT: 'port',
  COUNTERSIGN_DATA_DIR: 'dataDir',
  COUNTERSIGN_DATABASE_URL: 'databaseUrl',
  COUNTERSIGN_KEYS: 'keys',
  COUNTERSIGN_AUDIT_KEY: 'auditKey',
  COUNTERSIGN_LOG_LEVEL: 'logLevel',
  COUNTERSIGN_TRUSTED_PROXIES: 'trustedProxies',
  COUNTERSIGN_IMPORT_BODY_LIMIT: 'importBodyLimit',
  COUNTERSIGN_PUBLIC_URL: 'publicUrl',
};

/** Push delivery settings from the environment: `push.<path>` in the file. */
const PUSH_ENV: Record<string, string> = {
  COUNTERSIGN_VAPID_PUBLIC_KEY: 'web_push.public_key',
  COUNTERSIGN_VAPID_PRIVATE_KEY: 'web_push.private_key',
  COUNTERSIGN_VAPID_SUBJECT: 'web_push.subject',
  COUNTERSIGN_VAPID_ENDPOINT_HOSTS: 'web_push.endpoint_hosts',
  COUNTERSIGN_FCM_PROJECT_ID: 'fcm.project_id',
  COUNTERSIGN_FCM_CLIENT_EMAIL: 'fcm.client_email',
  COUNTERSIGN_FCM_PRIVATE_KEY: 'fcm.private_key',
  COUNTERSIGN_APNS_TEAM_ID: 'apns.team_id',
  COUNTERSIGN_APNS_KEY_ID: 'apns.key_id',
  COUNTERSIGN_APNS_PRIVATE_KEY: 'apns.private_key',
  COUNTERSIGN_APNS_TOPIC: 'apns.topic',
  COUNTERSIGN_APNS_HOST: 'apns.host',
};

/** GeoIP settings from the environment: `geoip.<path>` in the file. */
const GEOIP_ENV: Record<string, string> = {
  COUNTERSIGN_GEOIP_DATABASE: 'database',
};

/** Telephony settings from the environment: `telephony.<path>` in the file. */
const TELEPHONY_ENV: Record<string, string> = {
  COUNTERSIGN_TELEPHONY_PROVIDER: 'provider',
  COUNTERSIGN_TWILIO_ACCOUNT_SID: 'twilio.account_sid',
  COUNTERSIGN_TWILIO_AUTH_TOKEN: 'twilio.auth_token',
  COUNTERSIGN_TWILIO_FROM: 'twilio.from',
  COUNTERSIGN_TWILIO_API_URL: 'twilio.api_url',
  COUNTERSIGN_SMS_HTTP_URL: 'http.url',
  COUNTERSIGN_SMS_HTTP_BODY: 'http.body',
  COUNTERSIGN_SMS_HTTP_CONTENT_TYPE: 'http.content_type',
  COUNTERSIGN_SMS_HTTP_AUTHORIZATION: 'http.headers.Authorization',
  COUNTERSIGN_SMS_HTTP_FROM: 'http.from',
  COUNTERSIGN_SMS_HTTP_INBOUND_TOKEN: 'http.inbound_token',
};

/** File keys are snake_case in YAML/JSON (`data_dir`), camelCase in code. */
const FILE_KEYS: Record<string, keyof Config> = {
  host: 'host',
  port: 'port',
  data_dir: 'dataDir',
  database_url: 'databaseUrl',
  keys: 'keys',
  audit_key: 'auditKey',
  log_level: 'logLevel',
  trusted_proxies: 'trustedProxies',
  import_body_limit: 'importBodyLimit',
  public_url: 'publicUrl',
  telephony: 'telephony',
  push: 'push',
  geoip: 'geoip',
  email: 'email',
  webhooks: 'webhooks',
};

/** E-mail and webhook settings from the environment: `<block>.<key>` in the file. */
const EVENTS_ENV: Record<string, [keyof Config, string]> = {
  COUNTERSIGN_SMTP_URL: ['email', 'smtp_url'],
  COUNTERSIGN_EMAIL_FROM: ['email', 'from'],
  COUNTERSIGN_WEBHOOKS_ALLOW_HTTP: ['webhooks', 'allow_http'],
  COUNTERSIGN_WEBHOOKS_ALLOW_PRIVATE: ['webhooks', 'allow_private'],
};

/** Settings that were replaced: naming one is an error that says what to use instead, not a silent no-op. */
const WHY_NOT_TRUST_PROXY = 'trusting every hop let any client choose its address';
const REPLACED_KEYS: Record<string, string> = {
  trust_proxy: `trust_proxy: replaced by trusted_proxies, the list of your proxies' addresses or CIDR ranges (${WHY_NOT_TRUST_PROXY})`,
};
const REPLACED_ENV: Record<string, string> = {
  COUNTERSIGN_TRUST_PROXY: `COUNTERSIGN_TRUST_PROXY: replaced by COUNTERSIGN_TRUSTED_PROXIES, your proxies' addresses or CIDR ranges, comma-separated (${WHY_NOT_TRUST_PROXY})`,
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface LoadConfigOptions {
  env?: Record<string, string | undefined>;
  /** Path of the config file; default COUNTERSIGN_CONFIG, then ./countersign.yaml / .json if present. */
  file?: string | undefined;
  /** Values from command-line flags (camelCase keys), strongest. */
  overrides?: Partial<Record<keyof Config, unknown>>;
  cwd?: string;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];
  const merged: Source = {};

  const file = options.file ?? env['COUNTERSIGN_CONFIG'] ?? findDefaultFile(cwd);
  if (file !== undefined) {
    const fromFile = readConfigFile(resolve(cwd, file), problems);
    for (const [key, value] of Object.entries(fromFile)) {
      const target = FILE_KEYS[key];
      const replaced = REPLACED_KEYS[key];
      if (replaced !== undefined) problems.push(`${file}: ${replaced}`);
      else if (target === undefined) problems.push(`${file}: unknown setting "${key}"`);
      else merged[target] = value;
    }
  }
  for (const [name, target] of Object.entries(ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged[target] = value;
  }
  for (const [name, replaced] of Object.entries(REPLACED_ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') problems.push(replaced);
  }
  for (const [name, path] of Object.entries(TELEPHONY_ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged['telephony'] = setPath(isRecord(merged['telephony']) ? { ...merged['telephony'] } : {}, path.split('.'), value);
  }
  for (const [name, path] of Object.entries(PUSH_ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged['push'] = setPath(isRecord(merged['push']) ? { ...merged['push'] } : {}, path.split('.'), value);
  }
  for (const [name, path] of Object.entries(GEOIP_ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged['geoip'] = setPath(isRecord(merged['geoip']) ? { ...merged['geoip'] } : {}, path.split('.'), value);
  }
  for (const [name, [block, key]] of Object.entries(EVENTS_ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged[block] = { ...(isRecord(merged[block]) ? merged[block] : {}), [key]: value };
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value !== undefined) merged[key] = value;
  }

  const config: Config = {
    host: readString(merged, 'host', '0.0.0.0', problems),
    port: readInt(merged, 'port', 8080, 0, 65535, problems),
    dataDir: resolve(cwd, readString(merged, 'dataDir', './data', problems)),
    databaseUrl: readDatabaseUrl(merged, problems),
    keys: readKeys(merged, problems),
    auditKey: readKeyBytes(merged['auditKey'], 'audit_key', problems),
    logLevel: readLogLevel(merged, problems),
    trustedProxies: readTrustedProxies(merged['trustedProxies'], problems),
    importBodyLimit: readInt(merged, 'importBodyLimit', 64 * 1024 * 1024, 1024, 1024 * 1024 * 1024, problems),
    publicUrl: readUrl(merged['publicUrl'], 'public_url', problems)?.replace(/\/+$/, ''),
    telephony: readTelephony(merged['telephony'], problems),
    push: readPush(merged['push'], problems),
    geoip: readGeoip(merged['geoip'], cwd, problems),
    email: readEmail(merged['email'], problems),
    webhooks: readWebhooks(merged['webhooks'], problems),
  };
  if (config.keys !== undefined && config.auditKey === undefined) {
    problems.push('audit_key: required when keys come from configuration (COUNTERSIGN_AUDIT_KEY, 32 bytes base64)');
  }
  if (problems.length > 0) {
    throw new CountersignError('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
  return Object.freeze(config);
}

function findDefaultFile(cwd: string): string | undefined {
  for (const name of ['countersign.yaml', 'countersign.yml', 'countersign.json']) {
    if (existsSync(resolve(cwd, name))) return name;
  }
  return undefined;
}

function readConfigFile(path: string, problems: string[]): Source {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    problems.push(`${path}: cannot be read`);
    return {};
  }
  try {
    const parsed: unknown = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) {
      problems.push(`${path}: must hold a mapping of settings`);
      return {};
    }
    return parsed as Source;
  } catch (error) {
    problems.push(`${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'} (${(error as Error).message.split('\n')[0] ?? ''})`);
    return {};
  }
}

function readString(source: Source, key: string, fallback: string, problems: string[]): string {
  const value = source[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.trim() === '') {
    problems.push(`${key}: must be a non-empty string`);
    return fallback;
  }
  return value;
}

function readInt(source: Source, key: string, fallback: number, min: number, max: number, problems: string[]): number {
  const value = source[key];
  if (value === undefined) return fallback;
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(number) || number < min || number > max) {
    problems.push(`${key}: must be a whole number from ${min} to ${max}`);
    return fallback;
  }
  return number;
}

function readDatabaseUrl(source: Source, problems: string[]): string | undefined {
  const value = source['databaseUrl'];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^postgres(ql)?:\/\//.test(value)) {
    problems.push('database_url: must be a postgres:// URL (leave it unset for the embedded SQLite store)');
    return undefined;
  }
  return value;
}

function readKeyBytes(value: unknown, name: string, problems: string[]): Buffer | undefined {
  if (value === undefined) return undefined;
  const bytes = typeof value === 'string' ? Buffer.from(value, 'base64') : undefined;
  if (bytes?.length !== 32) {
    problems.push(`${name}: must be 32 bytes, base64-encoded`);
    return undefined;
  }
  return bytes;
}

function readKeys(source: Source, problems: string[]): Config['keys'] {
  const value = source['keys'];
  if (value === undefined) return undefined;
  const entries = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
  if (!Array.isArray(entries) || entries.length === 0) {
    problems.push('keys: must be "id:base64key,…" (32-byte keys, the last one active)');
    return undefined;
  }
  const keys: { id: string; key: Buffer }[] = [];
  for (const entry of entries) {
    const [id, encoded] = typeof entry === 'string' ? entry.split(':', 2) : [];
    const key = readKeyBytes(encoded, `keys (${id ?? '?'})`, problems);
    if (id === undefined || !/^[A-Za-z0-9_-]{1,32}$/.test(id)) problems.push('keys: each key id must be 1–32 letters, digits, - or _');
    else if (key !== undefined) keys.push({ id, key });
  }
  return Object.freeze(keys);
}

function readLogLevel(source: Source, problems: string[]): Config['logLevel'] {
  const value = source['logLevel'] ?? 'info';
  const level = LOG_LEVELS.find((l) => l === value);
  if (level === undefined) problems.push(`log_level: must be one of ${LOG_LEVELS.join(', ')}`);
  return level ?? 'info';
}

/**
 * A list setting: a YAML/JSON list of strings, or one comma-separated string (as environment
 * variables give it). Empty entries are dropped; undefined when unset.
 */
function readList(value: unknown, name: string, problems: string[]): string[] | undefined {
  if (value === undefined) return undefined;
  const entries = typeof value === 'string' ? value.split(',') : value;
  if (!Array.isArray(entries) || entries.some((entry) => typeof entry !== 'string')) {
    problems.push(`${name}: must be a list of strings, or one comma-separated string`);
    return undefined;
  }
  return (entries as string[]).map((entry) => entry.trim()).filter((entry) => entry !== '');
}

/** The names proxy-addr (Fastify's trustProxy) knows for the usual local ranges. */
const PROXY_RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

/** `trusted_proxies`: addresses and CIDR ranges (normalized: 10.1.2.3/8 → 10.0.0.0/8), or the range names above. */
function readTrustedProxies(value: unknown, problems: string[]): readonly string[] {
  const name = 'trusted_proxies (COUNTERSIGN_TRUSTED_PROXIES)';
  const out: string[] = [];
  for (const entry of readList(value, name, problems) ?? []) {
    if (PROXY_RANGE_NAMES.includes(entry.toLowerCase())) {
      out.push(entry.toLowerCase());
      continue;
    }
    const slash = entry.indexOf('/');
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const bits = slash === -1 ? undefined : entry.slice(slash + 1);
    // isIP first: the range parser also takes forms such as 10.1 or 0x0a000001.
    let normalized: string | undefined;
    if (isIP(address) !== 0 && (bits === undefined || /^\d{1,3}$/.test(bits))) {
      try {
        normalized = normalizeRange(entry, name);
      } catch {
        normalized = undefined;
      }
    }
    if (normalized === undefined) problems.push(`${name}: "${entry.slice(0, 60)}" is not an IP address or CIDR range (such as 10.0.0.5, 10.0.0.0/8, 2001:db8::/32, or loopback)`);
    else out.push(normalized);
  }
  return Object.freeze(out);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function setPath(target: Record<string, unknown>, path: string[], value: string): Record<string, unknown> {
  const [head, ...rest] = path;
  if (head === undefined) return target;
  if (rest.length === 0) target[head] = value;
  else target[head] = setPath(isRecord(target[head]) ? { ...target[head] } : {}, rest, value);
  return target;
}

function readUrl(value: unknown, name: string, problems: string[]): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && /^https?:\/\/[^\s]+$/.test(value)) {
    try {
      new URL(value);
      return value;
    } catch {
      // reported below
    }
  }
  problems.push(`${name}: must be an http:// or https:// URL`);
  return undefined;
}

function readText(source: Record<string, unknown>, key: string, name: string, problems: string[], required: boolean): string | undefined {
  const value = source[key];
  if (value === undefined || value === '') {
    if (required) problems.push(`${name}: required`);
    return undefined;
  }
  if (typeof value !== 'string') {
    problems.push(`${name}: must be a string`);
    return undefined;
  }
  return value;
}

function readTelephony(value: unknown, problems: string[]): TelephonyConfig {
  if (value === undefined) return Object.freeze({ provider: 'outbox', twilio: undefined, http: undefined });
  if (!isRecord(value)) {
    problems.push('telephony: must be a mapping (provider, twilio, http)');
    return { provider: 'outbox', twilio: undefined, http: undefined };
  }
  for (const key of Object.keys(value)) if (!['provider', 'twilio', 'http'].includes(key)) problems.push(`telephony: unknown setting "${key}"`);
  const provider = value['provider'] ?? 'outbox';
  if (provider !== 'outbox' && provider !== 'twilio' && provider !== 'http') problems.push('telephony.provider: must be outbox, twilio or http');
  const twilioSource = value['twilio'];
  let twilio: TwilioConfig | undefined;
  if (twilioSource !== undefined || provider === 'twilio') {
    const source = isRecord(twilioSource) ? twilioSource : {};
    for (const key of Object.keys(source)) if (!['account_sid', 'auth_token', 'from', 'api_url'].includes(key)) problems.push(`telephony.twilio: unknown setting "${key}"`);
    const accountSid = readText(source, 'account_sid', 'telephony.twilio.account_sid (COUNTERSIGN_TWILIO_ACCOUNT_SID)', problems, true);
    const authToken = readText(source, 'auth_token', 'telephony.twilio.auth_token (COUNTERSIGN_TWILIO_AUTH_TOKEN)', problems, true);
    const from = readText(source, 'from', 'telephony.twilio.from (COUNTERSIGN_TWILIO_FROM)', problems, true);
    const apiUrl = readUrl(source['api_url'] ?? 'https://api.twilio.com', 'telephony.twilio.api_url', problems);
    if (accountSid !== undefined && !/^AC[0-9a-fA-F]{32}$/.test(accountSid)) problems.push('telephony.twilio.account_sid: must be AC followed by 32 hex digits');
    if (accountSid !== undefined && authToken !== undefined && from !== undefined && apiUrl !== undefined) {
      twilio = Object.freeze({ accountSid, authToken, from, apiUrl: apiUrl.replace(/\/+$/, '') });
    }
  }
  const httpSource = value['http'];
  let http: HttpSmsConfig | undefined;
  if (httpSource !== undefined || provider === 'http') {
    const source = isRecord(httpSource) ? httpSource : {};
    for (const key of Object.keys(source)) {
      if (!['url', 'method', 'headers', 'body', 'content_type', 'from', 'inbound_token'].includes(key)) problems.push(`telephony.http: unknown setting "${key}"`);
    }
    const url = readUrl(source['url'], 'telephony.http.url (COUNTERSIGN_SMS_HTTP_URL)', problems);
    if (source['url'] === undefined) problems.push('telephony.http.url (COUNTERSIGN_SMS_HTTP_URL): required');
    const method = source['method'] ?? 'POST';
    if (method !== 'POST' && method !== 'PUT') problems.push('telephony.http.method: must be POST or PUT');
    const headers = source['headers'] ?? {};
    if (!isRecord(headers) || Object.values(headers).some((h) => typeof h !== 'string')) problems.push('telephony.http.headers: must map header names to strings');
    const body = readText(source, 'body', 'telephony.http.body', problems, false) ?? '{"to":"{{to}}","text":"{{text}}"}';
    const contentType = readText(source, 'content_type', 'telephony.http.content_type', problems, false) ?? 'application/json';
    if (!body.includes('{{text}}')) problems.push('telephony.http.body: must contain {{text}}');
    if (url !== undefined && (method === 'POST' || method === 'PUT') && isRecord(headers)) {
      http = Object.freeze({
        url,
        method,
        headers: Object.freeze({ ...(headers as Record<string, string>) }),
        body,
        contentType,
        from: readText(source, 'from', 'telephony.http.from', problems, false),
        inboundToken: readText(source, 'inbound_token', 'telephony.http.inbound_token', problems, false),
      });
    }
  }
  return Object.freeze({ provider: provider === 'twilio' || provider === 'http' ? provider : 'outbox', twilio, http });
}

/** A block of string settings: every `required` one present, the optional ones kept when given, unknown ones reported. */
function readBlock(value: unknown, name: string, required: readonly string[], optional: readonly string[], problems: string[]): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) {
    problems.push(`${name}: must be a mapping`);
    return undefined;
  }
  for (const key of Object.keys(value)) if (!required.includes(key) && !optional.includes(key)) problems.push(`${name}: unknown setting "${key}"`);
  const out: Record<string, string> = {};
  let complete = true;
  for (const key of [...required, ...optional]) {
    const text = readText(value, key, `${name}.${key}`, problems, required.includes(key));
    if (text === undefined) complete = complete && !required.includes(key);
    // PEM keys from the environment often arrive with their newlines written as \n.
    else out[key] = key === 'private_key' ? text.replaceAll('\\n', '\n') : text;
  }
  return complete ? out : undefined;
}

function readPush(value: unknown, problems: string[]): PushConfig {
  const none: PushConfig = { webPush: undefined, fcm: undefined, apns: undefined };
  if (value === undefined) return Object.freeze(none);
  if (!isRecord(value)) {
    problems.push('push: must be a mapping (web_push, fcm, apns)');
    return none;
  }
  for (const key of Object.keys(value)) if (!['web_push', 'fcm', 'apns'].includes(key)) problems.push(`push: unknown setting "${key}"`);
  // endpoint_hosts is a list (or a comma-separated string), read apart from the block's strings.
  const webSource = value['web_push'];
  const { endpoint_hosts: endpointHostsSource, ...webStrings } = isRecord(webSource) ? webSource : {};
  const web = readBlock(isRecord(webSource) ? webStrings : webSource, 'push.web_push', ['public_key', 'private_key', 'subject'], [], problems);
  const endpointHosts = readList(endpointHostsSource, 'push.web_push.endpoint_hosts', problems);
  for (const host of endpointHosts ?? []) if (!/^(\*\.)?[A-Za-z0-9.-]+$/.test(host)) problems.push(`push.web_push.endpoint_hosts: "${host}" is not a host name (or *.domain)`);
  const fcm = readBlock(value['fcm'], 'push.fcm', ['project_id', 'client_email', 'private_key'], ['token_url', 'api_url'], problems);
  const apns = readBlock(value['apns'], 'push.apns', ['team_id', 'key_id', 'private_key', 'topic'], ['host'], problems);
  return Object.freeze({
    webPush:
      web === undefined
        ? undefined
        : { publicKey: web['public_key'] ?? '', privateKey: web['private_key'] ?? '', subject: web['subject'] ?? '', ...(endpointHosts === undefined || endpointHosts.length === 0 ? {} : { endpointHosts }) },
    fcm:
      fcm === undefined
        ? undefined
        : {
            projectId: fcm['project_id'] ?? '',
            clientEmail: fcm['client_email'] ?? '',
            privateKey: fcm['private_key'] ?? '',
            ...(fcm['token_url'] === undefined ? {} : { tokenUrl: fcm['token_url'] }),
            ...(fcm['api_url'] === undefined ? {} : { apiUrl: fcm['api_url'] }),
          },
    apns:
      apns === undefined
        ? undefined
        : { teamId: apns['team_id'] ?? '', keyId: apns['key_id'] ?? '', privateKey: apns['private_key'] ?? '', topic: apns['topic'] ?? '', ...(apns['host'] === undefined ? {} : { host: apns['host'] }) },
  });
}

/** `geoip.database`: the path of a MaxMind DB file, relative to the working directory; opened at start (channels/geoip.ts). */
function readGeoip(value: unknown, cwd: string, problems: string[]): GeoIpConfig {
  const none: GeoIpConfig = { database: undefined };
  if (value === undefined) return Object.freeze(none);
  if (!isRecord(value)) {
    problems.push('geoip: must be a mapping (database)');
    return none;
  }
  for (const key of Object.keys(value)) if (key !== 'database') problems.push(`geoip: unknown setting "${key}"`);
  const database = readText(value, 'database', 'geoip.database (COUNTERSIGN_GEOIP_DATABASE)', problems, false);
  if (database === undefined) return Object.freeze(none);
  if (database.trim() === '' || database.includes('\0')) {
    problems.push('geoip.database (COUNTERSIGN_GEOIP_DATABASE): must be the path of a MaxMind DB (.mmdb) file');
    return none;
  }
  if (/\.(gz|tgz|zip)$/i.test(database)) {
    problems.push(`geoip.database (COUNTERSIGN_GEOIP_DATABASE): ${database} is an archive: unpack it and point to the .mmdb file inside`);
    return none;
  }
  return Object.freeze({ database: resolve(cwd, database) });
}

/** `email.smtp_url` (COUNTERSIGN_SMTP_URL) and `email.from` (COUNTERSIGN_EMAIL_FROM). */
function readEmail(value: unknown, problems: string[]): EmailConfig {
  const none: EmailConfig = { smtpUrl: undefined, from: 'Countersign <countersign@localhost>' };
  if (value === undefined) return Object.freeze(none);
  if (!isRecord(value)) {
    problems.push('email: must be a mapping (smtp_url, from)');
    return none;
  }
  for (const key of Object.keys(value)) if (key !== 'smtp_url' && key !== 'from') problems.push(`email: unknown setting "${key}"`);
  const smtpUrl = readText(value, 'smtp_url', 'email.smtp_url (COUNTERSIGN_SMTP_URL)', problems, false);
  // The URL may carry a password: the problem names the setting, never the value.
  if (smtpUrl !== undefined && !/^smtps?:\/\/[^\s/]+/.test(smtpUrl)) problems.push('email.smtp_url (COUNTERSIGN_SMTP_URL): must be an smtp:// or smtps:// URL');
  const from = readText(value, 'from', 'email.from (COUNTERSIGN_EMAIL_FROM)', problems, false) ?? none.from;
  if (!/^[^\r\n<>]*<?[^\s@<>]+@[^\s@<>]+>?$/.test(from)) problems.push('email.from (COUNTERSIGN_EMAIL_FROM): must be an address such as mfa@contoso.com or "Contoso MFA <mfa@contoso.com>"');
  return Object.freeze({ smtpUrl, from });
}

/** `webhooks.allow_http` and `webhooks.allow_private`: both false unless a test or a development setup says so. */
function readWebhooks(value: unknown, problems: string[]): WebhooksConfig {
  const none: WebhooksConfig = { allowHttp: false, allowPrivate: false };
  if (value === undefined) return Object.freeze(none);
  if (!isRecord(value)) {
    problems.push('webhooks: must be a mapping (allow_http, allow_private)');
    return none;
  }
  for (const key of Object.keys(value)) if (key !== 'allow_http' && key !== 'allow_private') problems.push(`webhooks: unknown setting "${key}"`);
  const flag = (key: string): boolean => {
    const flagValue = value[key];
    if (flagValue === undefined || flagValue === false || flagValue === 'false') return false;
    if (flagValue === true || flagValue === 'true') return true;
    problems.push(`webhooks.${key}: must be true or false`);
    return false;
  };
  return Object.freeze({ allowHttp: flag('allow_http'), allowPrivate: flag('allow_private') });
}
