import { EventEmitter } from 'node:events';
import pg from 'pg';

/**
 * Wake-ups across processes on PostgreSQL (LISTEN/NOTIFY): a decision taken by one server process
 * (or a CLI next to it) wakes the long-polling callers and live streams of every other process
 * in milliseconds, not at their next re-read. `publish` notifies through the store's own
 * connection pool; the listening connection is opened on the first `wait`, so a CLI command that
 * only publishes opens none. If the listening connection drops, it is reopened after a second;
 * meanwhile waiters still re-read the store now and then, so nothing is missed for long.
 */
export interface Notifier {
  publish(key: string): void;
  wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}

const CHANNEL = 'countersign_events';

export function waitOn(emitter: EventEmitter, key: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted === true) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (value: boolean): void => {
      clearTimeout(timer);
      emitter.off(key, onEvent);
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onEvent = (): void => done(true);
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    emitter.on(key, onEvent);
    signal?.addEventListener('abort', onAbort);
  });
}

export function createPgNotifier(url: string, notify: (channel: string, payload: string) => Promise<void>, onError: (error: unknown) => void): Notifier {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  let listener: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;

  function listen(): Promise<void> {
    connecting ??= (async () => {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
      client.on('notification', (message) => {
        if (message.channel === CHANNEL && message.payload !== undefined) emitter.emit(message.payload);
      });
      const reopen = (error?: unknown): void => {
        if (listener === client) listener = undefined;
        connecting = undefined;
        if (error !== undefined) onError(error);
        if (!closed) setTimeout(() => void listen().catch(onError), 1000).unref();
      };
      client.on('error', reopen);
      client.on('end', () => reopen());
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      if (closed) {
        await client.end();
        return;
      }
      listener = client;
    })().catch((error: unknown) => {
      connecting = undefined;
      throw error;
    });
    return connecting;
  }

  return {
    publish(key) {
      emitter.emit(key);
      void notify(CHANNEL, key).catch(onError);
    },
    wait(key, timeoutMs, signal) {
      // The listener connects in the background: a wait never takes longer than its timeout, and
      // without the listener only the other processes' wake-ups are lost (the caller re-reads).
      if (!closed && listener === undefined) void listen().catch(onError);
      return waitOn(emitter, key, timeoutMs, signal);
    },
    async close() {
      closed = true;
      const client = listener;
      listener = undefined;
      if (client !== undefined) await client.end().catch(() => undefined);
    },
  };
}
