import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { NO_LOCATIONS, openGeoLocator } from './channels/geoip.js';
import { createPushChannels } from './channels/push/push-channels.js';
import { createEmailChannel } from './channels/email/email-channel.js';
import { createTelephonyChannels } from './channels/telephony-channels.js';
import type { Config } from './config.js';
import { sql } from 'kysely';
import { createMemoryNotifier } from './flows/challenge-notifier.js';
import { createPgNotifier } from './store/pg-notifier.js';
import type { Services } from './services.js';
import { openStore } from './store/database.js';
import { createGroupCommit } from './store/group-commit.js';
import { openKeyring } from './store/keyring.js';
import { createSecretBox } from './store/secret-box.js';

/**
 * The composition root: builds every service from the frozen config, once. Transports (HTTP,
 * CLI) call this and hand the result to flows.
 */
export interface AppOptions {
  clock?: () => Date;
  random?: (bytes: number) => Buffer;
  logger?: Logger;
  /**
   * Whether to open the GeoIP database (`geoip.database`), read whole into memory, that push
   * requests' locations come from. Default true (the server). The CLI passes false: none of its
   * commands shows a location (the command-line authenticator talks to a server over HTTP), so
   * they neither pay for reading the file nor fail on a path that only the server can read.
   */
  geo?: boolean;
}

/** Log fields that may carry secret material are removed before a line is written (LOG-01). */
export const LOG_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.code',
  '*.secret',
  '*.password',
  '*.api_key',
  '*.key',
];

export function createLogger(config: Pick<Config, 'logLevel'>, destination?: NodeJS.WritableStream): Logger {
  const options = { level: config.logLevel, redact: { paths: LOG_REDACT_PATHS, remove: true }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination === undefined ? pino(options) : pino(options, destination);
}

export async function createServices(config: Config, options: AppOptions = {}): Promise<Services> {
  const clock = options.clock ?? (() => new Date());
  const log = options.logger ?? createLogger(config);
  // A configured GeoIP database that cannot be read stops the start before the store is opened.
  const geo = options.geo === false ? NO_LOCATIONS : await openGeoLocator(config.geoip.database, log);
  // The store first: whether a missing keys.json may be generated depends on what the store
  // holds, and the keyring must be the one the store was first started with (openKeyring).
  const store = await openStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl });
  try {
    const db = store.db;
    const keyring = await openKeyring(db, { dataDir: config.dataDir, keys: config.keys, auditKey: config.auditKey, now: clock(), storeLocation: store.location });
    const writes = createGroupCommit(store, keyring.auditKey, clock);
    const secrets = createSecretBox(db, keyring, clock);
    const pushChannels = createPushChannels(config.push);
    const emailChannel = createEmailChannel(config.email, db, secrets, clock);
    // Several processes over one PostgreSQL wake each other's waiters (LISTEN/NOTIFY).
    const notifier =
      config.databaseUrl === undefined
        ? createMemoryNotifier()
        : createPgNotifier(
            config.databaseUrl,
            async (channel, payload) => {
              await sql`select pg_notify(${channel}, ${payload})`.execute(db);
            },
            (error) => log.warn({ err: error }, 'the PostgreSQL notification listener failed; waiters fall back to re-reading'),
          );
    return {
      config,
      // Closing the store stops the listener first.
      store: { ...store, close: () => Promise.all([notifier.close(), pushChannels.close(), emailChannel.close()]).then(() => store.close()) },
      db,
      keyring,
      secrets,
      channels: { ...createTelephonyChannels(config, db, secrets, clock), push: pushChannels, email: emailChannel },
      geo,
      clock,
      random: options.random ?? randomBytes,
      log,
      notifier,
      writes,
      audit: (entry) => writes.audit(entry),
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}
