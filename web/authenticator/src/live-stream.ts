/**
 * Keeps one account's pending requests current while the app is open: the server's live stream
 * (GET /v1/authenticator/stream, Server-Sent Events) read through fetch, because EventSource
 * cannot send the signed Authorization header. The server ends a stream after 10 minutes and
 * the watcher opens a new one with a fresh signature; when the stream cannot be had, it falls
 * back to fetching /pending every few seconds until the stream works again.
 */
import type { Account } from './accounts.js';
import { ApiError, apiUrl, deviceAuthorization, fetchPending, type PendingRequest } from './device-api.js';

export type LinkState = 'connecting' | 'live' | 'polling' | 'refused';

export interface Watcher {
  onRequests(requests: PendingRequest[]): void;
  onState(state: LinkState, detail?: string): void;
}

const STREAM_PATH = '/v1/authenticator/stream';
const RETRY_MS = 4000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Splits an event stream into its events and hands each `pending` event's requests on. */
async function readEvents(body: ReadableStream<Uint8Array>, onPending: (requests: PendingRequest[]) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
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

/** Opens the stream once; resolves when it ends. Throws ApiError when the server refuses it. */
async function streamOnce(account: Account, watcher: Watcher, signal: AbortSignal): Promise<void> {
  const response = await fetch(apiUrl(STREAM_PATH), {
    headers: { accept: 'text/event-stream', authorization: await deviceAuthorization(account, 'GET', STREAM_PATH) },
    cache: 'no-store',
    signal,
  });
  if (!response.ok || response.body === null) {
    let message = `The server answered ${response.status}.`;
    try {
      const body = (await response.json()) as { error?: { code?: string; message?: string } };
      if (typeof body.error?.message === 'string') message = body.error.message;
    } catch {
      // keep the status message
    }
    throw new ApiError(response.status, `HTTP_${response.status}`, message);
  }
  watcher.onState('live');
  await readEvents(response.body, (requests) => watcher.onRequests(requests));
}

/** Watches one account until `signal` aborts. */
export async function watchAccount(account: Account, watcher: Watcher, signal: AbortSignal): Promise<void> {
  watcher.onState('connecting');
  while (!signal.aborted) {
    try {
      await streamOnce(account, watcher, signal);
      continue; // the server ended the stream (its 10-minute lifetime): open a new one at once
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && (error.status === 401 || error.status === 403 || error.status === 404)) {
        // The server no longer accepts this device (removed by an administrator) or this
        // device's clock is far off; a retry would say the same, so stop and say why.
        watcher.onState('refused', error.message);
        return;
      }
    }
    // No stream (offline, a proxy that buffers streams): fetch the list and try again shortly.
    try {
      watcher.onRequests(await fetchPending(account));
      watcher.onState('polling');
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        watcher.onState('refused', error.message);
        return;
      }
      watcher.onState('polling', error instanceof Error ? error.message : undefined);
    }
    await sleep(RETRY_MS, signal);
  }
}
