import { EventEmitter } from 'node:events';

/**
 * Wakes long-polling `GET /v1/challenges/{id}?wait=` callers when a challenge leaves `pending`.
 * In one process this is an in-memory emitter; waiters also re-read the store now and then,
 * so a decision taken by another process (CLI, another node) is seen too. A Redis or
 * PostgreSQL LISTEN implementation of the same interface comes with multi-node push.
 */
export interface ChallengeNotifier {
  publish(challengeId: string): void;
  /** Resolves true when `challengeId` is published, false after `timeoutMs`. */
  wait(challengeId: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
}

export function createMemoryNotifier(): ChallengeNotifier {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    publish(challengeId) {
      emitter.emit(challengeId);
    },
    wait(challengeId, timeoutMs, signal) {
      if (signal?.aborted === true) return Promise.resolve(false);
      return new Promise((resolve) => {
        const done = (value: boolean): void => {
          clearTimeout(timer);
          emitter.off(challengeId, onEvent);
          signal?.removeEventListener('abort', onAbort);
          resolve(value);
        };
        const onEvent = (): void => done(true);
        const onAbort = (): void => done(false);
        const timer = setTimeout(() => done(false), timeoutMs);
        emitter.on(challengeId, onEvent);
        signal?.addEventListener('abort', onAbort);
      });
    },
  };
}
