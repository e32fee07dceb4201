/**
 * Keeps one account's pending requests current while the app is open: the server's live stream
 * (GET /v1/authenticator/stream, Server-Sent Events) read through fetch, because EventSource
 * cannot send the signed Authorization header.
 *
 * The server writes a `pending` event at once and at least every 5 s, and ends a stream after
 * 10 minutes. So the link counts as live only once an event has come over a real event stream
 * (a proxy's HTML page or a buffering proxy never looks live), and a stream silent for 15 s is
 * dropped and opened again. A stream that ends early or carried nothing, and a server that
 * cannot be reached, are retried with exponential backoff and jitter (1 s doubling to 30 s, or
 * the server's Retry-After), fetching /pending every few seconds meanwhile; a healthy stream
 * resets it. nudge() reconnects at once when the page becomes visible, the network comes back,
 * or a Web Push notice arrives.
 */
import type { Account } from './accounts.js';
import { ApiError, apiUrl, deviceAuthorization, fetchPending, isSignatureRefused, plainRefusal, refusal, withClockRetry, type PendingRequest } from './device-api.js';
import { learnServerTime } from './server-clock.js';

export type LinkState = 'connecting' | 'live' | 'polling' | 'refused';

export interface Watcher {
  onRequests(requests: PendingRequest[]): void;
  onState(state: LinkState, detail?: string): void;
}

/** Why the app asks for a fresh look: the page became visible, the network came back, a Web Push notice came. */
export type Nudge = 'visible' | 'online' | 'push';

export interface WatchHandle {
  nudge(reason: Nudge): void;
}

const STREAM_PATH = '/v1/authenticator/stream';
/** Nothing for this long (the server writes every 5 s at most): the stream is dead or buffered. */
const READ_TIMEOUT_MS = 15_000;
/** A stream that spoke this recently is alive; a nudge leaves it open. */
const FRESH_MS = 7_000;
/** A stream that lasted this long and carried events was healthy: reconnect at once, reset the backoff. */
const HEALTHY_MS = 30_000;
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
/** How often /pending is fetched while the stream is down. */
const POLL_MS = 5_000;

/** A point in time on both the monotonic and the wall clock (either may stand still: a sleeping system, a test's fixed clock). */
interface Mark {
  perf: number;
  wall: number;
}
const mark = (): Mark => ({ perf: performance.now(), wall: Date.now() });
const elapsed = (since: Mark): number => Math.max(performance.now() - since.perf, Date.now() - since.wall);

/** 1 s, 2 s, 4 s … 30 s, each between half and all of it (so many devices do not come back in step). */
function backoffMs(failures: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, failures - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

class StreamFailed extends Error {}

/** Splits an event stream into its events and hands each `pending` event's requests on. */
async function readEvents(reader: ReadableStreamDefaultReader<Uint8Array>, onData: () => void, onPending: (requests: PendingRequest[]) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onData();
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (event === 'pending' && data.length > 0) {
        const parsed = JSON.parse(data.join('\n')) as { requests?: PendingRequest[] };
        if (Array.isArray(parsed.requests)) onPending(parsed.requests);
      }
    }
  }
}

/**
 * Opens the stream once and reads it until it ends, `signal` aborts, or it stays silent for
 * READ_TIMEOUT_MS. Throws ApiError when the server refuses it, StreamFailed when what came is
 * not an event stream or went silent.
 */
async function streamOnce(account: Account, signal: AbortSignal, onData: () => void, onPending: (requests: PendingRequest[]) => void): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  signal.addEventListener('abort', stop, { once: true });
  let silent = false;
  let lastData = mark();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watchdog = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      // A timer may fire late (a throttled background tab), never early: check the clock anyway.
      if (elapsed(lastData) < READ_TIMEOUT_MS) return watchdog();
      silent = true;
      controller.abort();
    }, READ_TIMEOUT_MS);
  };
  watchdog();
  try {
    const response = await fetch(apiUrl(STREAM_PATH), {
      headers: { accept: 'text/event-stream', authorization: await deviceAuthorization(account, 'GET', STREAM_PATH) },
      cache: 'no-store',
      signal: controller.signal,
    });
    learnServerTime(response);
    if (!response.ok) throw await refusal(response);
    const type = (response.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'text/event-stream' || response.body === null) {
      await response.body?.cancel().catch(() => undefined);
      throw new StreamFailed(`the server's answer is not an event stream (${type === '' ? 'no content type' : type}): a proxy may be in the way`);
    }
    const reader = response.body.getReader();
    try {
      await readEvents(
        reader,
        () => {
          lastData = mark();
          onData();
          watchdog();
        },
        onPending,
      );
    } finally {
      reader.releaseLock();
    }
  } catch (error) {
    if (silent) throw new StreamFailed(`the live stream went silent for ${READ_TIMEOUT_MS / 1000} s`);
    throw error;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
    controller.abort(); // closes the connection if it is still open
  }
}

function refusedByServer(error: unknown): error is ApiError {
  return isSignatureRefused(error) || (error instanceof ApiError && error.status === 404);
}

/** Watches one account until `signal` aborts; the handle reconnects on demand. */
export function watchAccount(account: Account, watcher: Watcher, signal: AbortSignal): WatchHandle {
  /** The stream being opened or read, if any. */
  let current: { controller: AbortController; lastData: Mark } | undefined;
  /** Set when a nudge dropped the stream on purpose: reconnect without counting a failure. */
  let nudged = false;
  /** Ends the wait between attempts early. */
  let wake: (() => void) | undefined;
  /** A nudge that came while no wait was under way (a /pending fetch in flight): the next wait ends at once. */
  let wakeSoon = false;
  let failures = 0;
  /** Not before this (the server's Retry-After), whatever nudges say. */
  let notBefore = 0;

  const sleep = (ms: number): Promise<boolean> => {
    if (wakeSoon) {
      wakeSoon = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const done = (woken: boolean): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', aborted);
        wake = undefined;
        resolve(woken);
      };
      const aborted = (): void => done(false);
      const timer = setTimeout(() => done(false), Math.max(0, ms));
      signal.addEventListener('abort', aborted, { once: true });
      wake = () => done(true);
    });
  };

  /** Waits `ms` before the next stream attempt, fetching /pending meanwhile. False when the server refused this device. */
  const waitPolling = async (ms: number): Promise<boolean> => {
    const until = performance.now() + ms;
    let pollAt = performance.now();
    /** A nudge came while the server's Retry-After still held: go as soon as it allows. */
    let asked = false;
    while (!signal.aborted) {
      const now = performance.now();
      if (now >= notBefore && (now >= until || asked)) return true;
      if (now >= pollAt && now >= notBefore) {
        try {
          watcher.onRequests(await fetchPending(account));
          watcher.onState('polling');
          pollAt = performance.now() + POLL_MS;
        } catch (error) {
          if (signal.aborted) return true;
          if (isSignatureRefused(error)) {
            watcher.onState('refused', plainRefusal(error));
            return false;
          }
          watcher.onState('polling', error instanceof Error ? error.message : undefined);
          if (error instanceof ApiError && error.retryAfterMs !== undefined) notBefore = performance.now() + error.retryAfterMs;
          pollAt = Infinity; // not again before the next stream attempt
        }
        continue;
      }
      const next = Math.min(until, pollAt);
      if (await sleep(Math.max(next, notBefore) - performance.now())) asked = true;
    }
    return true;
  };

  const run = async (): Promise<void> => {
    watcher.onState('connecting');
    while (!signal.aborted) {
      const started = mark();
      const controller = new AbortController();
      const stop = (): void => controller.abort();
      signal.addEventListener('abort', stop, { once: true });
      const stream = { controller, lastData: started };
      current = stream;
      nudged = false;
      wakeSoon = false;
      let events = 0;
      let retryAfter: number | undefined;
      try {
        await withClockRetry(() =>
          streamOnce(
            account,
            controller.signal,
            () => (stream.lastData = mark()),
            (requests) => {
              if (events++ === 0) watcher.onState('live');
              watcher.onRequests(requests);
            },
          ),
        );
      } catch (error) {
        if (signal.aborted) return;
        if (refusedByServer(error)) {
          // The server no longer accepts this device (removed by an administrator), or this
          // device's clock is far off even after correcting it: a retry would say the same.
          watcher.onState('refused', plainRefusal(error));
          return;
        }
        if (error instanceof ApiError && error.retryAfterMs !== undefined) {
          // Busy (429) or down for maintenance (503): nothing, not even /pending, before it says.
          retryAfter = error.retryAfterMs;
          watcher.onState('polling', error.message);
        }
      } finally {
        current = undefined;
        signal.removeEventListener('abort', stop);
      }
      if (signal.aborted) return;
      if (nudged) continue; // dropped on purpose: open a new one now
      if (events > 0 && elapsed(started) >= HEALTHY_MS) {
        failures = 0; // a healthy stream the server ended (its 10-minute lifetime): open a new one now
        continue;
      }
      failures += 1;
      if (retryAfter !== undefined) notBefore = performance.now() + retryAfter;
      if (!(await waitPolling(backoffMs(failures)))) return;
    }
  };

  void run();

  return {
    nudge(reason) {
      if (signal.aborted) return;
      if (reason === 'online') failures = 0; // a new network: the old failures say nothing about it
      const stream = current;
      if (stream !== undefined) {
        // A stream that spoke within the last few seconds is alive; otherwise it may be a dead
        // connection from before the device slept or changed networks: drop it and reconnect.
        if (reason === 'online' || elapsed(stream.lastData) > FRESH_MS) {
          nudged = true;
          stream.controller.abort();
        }
        return;
      }
      if (wake === undefined) wakeSoon = true;
      else wake();
    },
  };
}
