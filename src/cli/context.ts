import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createLogger, createServices } from '../app.js';
import { loadConfig, type Config } from '../config.js';
import { CountersignError } from '../core/errors.js';
import { findTenant } from '../flows/tenants.js';
import { parseReason, runAsActor, withActorDetail } from '../flows/actor-context.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';

/** The CLI acts as itself in the audit log. */
export const CLI: Principal = { kind: 'cli' };

export interface GlobalOptions {
  dataDir?: string;
  databaseUrl?: string;
  config?: string;
  /** Why the administrator runs the command: recorded on its audit records (`actor_reason`). */
  reason?: string;
}

/**
 * Options every command accepts, so a CLI and a running server can share one store. A command
 * that declares its own `--reason` (a bypass's, a pre-registration's) keeps it: that reason is
 * also the why recorded on its audit records.
 */
export function addStoreOptions(command: Command): Command {
  command
    .option('--data-dir <dir>', 'data directory (default ./data, or COUNTERSIGN_DATA_DIR)')
    .option('--database-url <url>', 'postgres://… to use PostgreSQL (or COUNTERSIGN_DATABASE_URL)')
    .option('--config <file>', 'configuration file (default ./countersign.yaml if present)');
  if (!command.options.some((option) => option.long === '--reason')) command.option('--reason <text>', 'why (at most 500 characters): recorded on the audit records of this command');
  return command;
}

export function configFrom(options: GlobalOptions, overrides: Partial<Record<keyof Config, unknown>> = {}): Config {
  return loadConfig({
    file: options.config,
    overrides: { ...overrides, dataDir: options.dataDir ?? overrides.dataDir, databaseUrl: options.databaseUrl ?? overrides.databaseUrl },
  });
}

/**
 * Opens the store for one command, runs it, and always closes the store again. Without the
 * GeoIP database: no command shows a location (only the server, `serve`, opens it). The
 * command's audit records (actor `cli`) carry `--reason`, checked before anything is opened.
 */
export async function withServices<T>(options: GlobalOptions, run: (services: Services) => Promise<T>): Promise<T> {
  const reason = parseReason('--reason', options.reason);
  const config = configFrom(options);
  const opened = await createServices(config, { logger: createLogger(config, process.stderr), geo: false });
  const services = withActorDetail(opened);
  try {
    return reason === undefined ? await run(services) : await runAsActor({ actor: actorOf(CLI), detail: { actor_reason: reason } }, () => run(services));
  } finally {
    await opened.store.close();
  }
}

export async function tenantOf(services: Services, ref: string | undefined): Promise<TenantRow> {
  if (ref === undefined || ref === '') throw new CountersignError('INVALID_INPUT', '--tenant: is required (a tenant id or name)');
  return findTenant(services, ref);
}

export function readInputFile(path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new CountersignError('INVALID_INPUT', `${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export function print(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json === true ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}
