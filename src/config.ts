import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CountersignError } from './core/errors.js';

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
  /** Trust X-Forwarded-For from these proxies (Fastify trustProxy); false = use the socket address. */
  readonly trustProxy: boolean | string;
  /** Largest request body, in bytes, for imports (CSV, PSKC). Other bodies are limited to 1 MiB. */
  readonly importBodyLimit: number;
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
  COUNTERSIGN_TRUST_PROXY: 'trustProxy',
  COUNTERSIGN_IMPORT_BODY_LIMIT: 'importBodyLimit',
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
  trust_proxy: 'trustProxy',
  import_body_limit: 'importBodyLimit',
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
      if (target === undefined) problems.push(`${file}: unknown setting "${key}"`);
      else merged[target] = value;
    }
  }
  for (const [name, target] of Object.entries(ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged[target] = value;
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
    trustProxy: readTrustProxy(merged, problems),
    importBodyLimit: readInt(merged, 'importBodyLimit', 64 * 1024 * 1024, 1024, 1024 * 1024 * 1024, problems),
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

function readTrustProxy(source: Source, problems: string[]): boolean | string {
  const value = source['trustProxy'];
  if (value === undefined || value === false || value === 'false') return false;
  if (value === true || value === 'true') return true;
  if (typeof value === 'string' && value.trim() !== '') return value;
  problems.push('trust_proxy: must be true, false, or a comma-separated list of proxy addresses/CIDRs');
  return false;
}
