import { EventEmitter } from 'node:events';
import { waitOn } from '../store/pg-notifier.js';

/**
 * Wakes long-polling `GET /v1/challenges/{id}?wait=` callers when a challenge leaves `pending`,
 * and authenticators' live streams when a push arrives. In one process (SQLite) this is an
 * in-memory emitter; on PostgreSQL, store/pg-notifier.ts carries the same wake-ups between
 * processes with LISTEN/NOTIFY. Waiters also re-read the store now and then in any case.
 */
export interface ChallengeNotifier {
  publish(challengeId: string): void;
  /** Resolves true when `challengeId` is published, false after `timeoutMs`. */
  wait(challengeId: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}

export function createMemoryNotifier(): ChallengeNotifier {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    publish(challengeId) {
      emitter.emit(challengeId);
    },
    wait: (challengeId, timeoutMs, signal) => waitOn(emitter, challengeId, timeoutMs, signal),
    close: async () => undefined,
  };
}
