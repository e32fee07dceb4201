import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import pino from 'pino';
import { createServices, LOG_REDACT_PATHS } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { bootstrapFirstAdmin, createApplication } from '../../src/flows/api-keys.js';
import { findTenant } from '../../src/flows/tenants.js';
import { buildServer } from '../../src/http/server.js';
import type { Services } from '../../src/services.js';
import type { TenantRow } from '../../src/store/schema.js';

/**
 * The test harness: real services on a real store — SQLite in a temporary directory, or, when
 * COUNTERSIGN_TEST_DATABASE_URL is set, a fresh PostgreSQL database made for this test file and
 * dropped after it. Nothing below the routes is mocked; the clock is a settable fake and every
 * log line is captured so tests can check what was (not) logged.
 */
export const TEST_PG_URL = process.env['COUNTERSIGN_TEST_DATABASE_URL'] || undefined;
export type TestDialect = 'sqlite' | 'postgres';
/** Dialects a store contract test runs on: SQLite always, PostgreSQL when configured. */
export const DIALECTS: TestDialect[] = TEST_PG_URL === undefined ? ['sqlite'] : ['sqlite', 'postgres'];
/** The dialect the HTTP and flow tests use in this run. */
export const DEFAULT_DIALECT: TestDialect = TEST_PG_URL === undefined ? 'sqlite' : 'postgres';

export interface FakeClock {
  (): Date;
  set(ms: number): void;
  advance(ms: number): void;
  ms(): number;
}

export function fakeClock(startMs = Date.UTC(2026, 0, 15, 12, 0, 0)): FakeClock {
  let now = startMs;
  const clock = (() => new Date(now)) as FakeClock;
  clock.set = (ms) => {
    now = ms;
  };
  clock.advance = (ms) => {
    now += ms;
  };
  clock.ms = () => now;
  return clock;
}

export interface TestStoreLocation {
  dataDir: string;
  databaseUrl: string | undefined;
  drop(): Promise<void>;
}

/** Makes an empty store location: a temp dir, plus a fresh PostgreSQL database if asked. */
export async function makeStoreLocation(dialect: TestDialect = DEFAULT_DIALECT): Promise<TestStoreLocation> {
  const dataDir = mkdtempSync(join(tmpdir(), 'countersign-test-'));
  if (dialect === 'sqlite') {
    return { dataDir, databaseUrl: undefined, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  if (TEST_PG_URL === undefined) throw new Error('PostgreSQL tests need COUNTERSIGN_TEST_DATABASE_URL');
  const name = `countersign_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return {
    dataDir,
    databaseUrl: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: TEST_PG_URL });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestContext {
  services: Services;
  clock: FakeClock;
  config: Config;
  location: TestStoreLocation;
  /** Every log line written, as parsed JSON objects and raw text. */
  logs: string[];
  close(): Promise<void>;
}

export async function createTestContext(
  options: { dialect?: TestDialect; clock?: FakeClock; config?: Partial<Record<keyof Config, unknown>>; location?: TestStoreLocation; random?: (bytes: number) => Buffer } = {},
): Promise<TestContext> {
  const location = options.location ?? (await makeStoreLocation(options.dialect));
  const clock = options.clock ?? fakeClock();
  const config = loadConfig({ env: {}, overrides: { dataDir: location.dataDir, databaseUrl: location.databaseUrl, logLevel: 'info', ...options.config } });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = pino({ level: 'info', redact: { paths: LOG_REDACT_PATHS, remove: true } }, sink);
  const services = await createServices(config, { clock, logger, ...(options.random === undefined ? {} : { random: options.random }) });
  return {
    services,
    clock,
    config,
    location,
    logs,
    close: async () => {
      await services.store.close();
      if (options.location === undefined) await location.drop();
    },
  };
}

export interface TestApp extends TestContext {
  app: FastifyInstance;
  tenant: TenantRow;
  /** Administrator key for every tenant. */
  adminKey: string;
  /** Application key of the default tenant. */
  appKey: string;
  admin(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown): Promise<{ status: number; body: any }>;
  api(method: 'GET' | 'POST', url: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** A file body (CSV, PSKC) with its content type, as an administrator. */
  upload(url: string, body: string, contentType: string, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  /** How many users a tenant has, read from the store. */
  countUsers(tenantId: string): Promise<number>;
}

/** A server with the default tenant, an administrator key and an application, ready for inject(). */
export async function createTestApp(options: Parameters<typeof createTestContext>[0] = {}): Promise<TestApp> {
  const context = await createTestContext(options);
  const first = await bootstrapFirstAdmin(context.services);
  if (first === undefined) throw new Error('expected a fresh store');
  const tenant = await findTenant(context.services, first.tenant);
  const application = await createApplication(context.services, { kind: 'system' }, tenant, 'test app');
  const app = await buildServer(context.services);
  const call = (key: string) => async (method: string, url: string, body?: unknown) => {
    const response = await app.inject({
      method: method as 'GET',
      url,
      headers: { authorization: `Bearer ${key}`, ...(typeof body === 'string' ? { 'content-type': 'text/csv' } : {}) },
      ...(body === undefined ? {} : typeof body === 'string' ? { payload: body } : { payload: body as Record<string, unknown> }),
    });
    return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
  };
  return {
    ...context,
    app,
    tenant,
    adminKey: first.apiKey,
    appKey: application.api_key,
    admin: call(first.apiKey),
    api: call(application.api_key),
    upload: async (url, body, contentType, headers = {}) => {
      const response = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${first.apiKey}`, 'content-type': contentType, ...headers }, payload: body });
      return { status: response.statusCode, body: response.json() };
    },
    countUsers: async (tenantId) => {
      const { n } = await context.services.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
      return Number(n);
    },
    close: async () => {
      await app.close();
      await context.close();
    },
  };
}
