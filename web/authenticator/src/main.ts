/**
 * The Countersign Authenticator web app: activation from a link (activation.ts), registration
 * from an enrollment link (enrollment.ts), the sign-in
 * requests waiting for an answer (requests.ts), and offline codes (accounts-view.ts), for every
 * account this browser holds (accounts.ts), each watched over the server's live stream
 * (live-stream.ts). Installable: a manifest and a service worker (public/sw.js) that keeps the
 * app usable offline and shows Web Push notices. This file starts it all and wires it together.
 */
import './style.css';
import { initActivation } from './activation.js';
import { initEnrollment } from './enrollment.js';
import { accountLabel, listAccounts, removeAccount, type Account } from './accounts.js';
import { forgetLink, renderAccounts, setLink, tickCodes } from './accounts-view.js';
import { byId } from './dom.js';
import { watchAccount, type Nudge, type WatchHandle } from './live-stream.js';
import { dropAccount, initRequests, renderRequests, setPending, tickRequests } from './requests.js';
import { toast } from './toast.js';

const accounts: Account[] = [];
const watchers = new Map<string, { controller: AbortController; handle: WatchHandle }>();

function showAccounts(): void {
  renderAccounts(accounts, (account) => void forget(account));
}

function watch(account: Account): void {
  const controller = new AbortController();
  const handle = watchAccount(
    account,
    {
      onRequests: (requests) => setPending(account.deviceId, requests),
      onState: (state, detail) => {
        setLink(account.deviceId, state, detail);
        if (state === 'refused') dropAccount(account.deviceId);
      },
    },
    controller.signal,
  );
  watchers.set(account.deviceId, { controller, handle });
}

async function forget(account: Account): Promise<void> {
  watchers.get(account.deviceId)?.controller.abort();
  watchers.delete(account.deviceId);
  await removeAccount(account.deviceId);
  accounts.splice(accounts.indexOf(account), 1);
  forgetLink(account.deviceId);
  dropAccount(account.deviceId);
  showAccounts();
  toast(`Removed ${accountLabel(account)} from this browser.`);
}

function nudgeAll(reason: Nudge): void {
  for (const { handle } of watchers.values()) handle.nudge(reason);
}

async function boot(): Promise<void> {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js', { scope: './' }).catch(() => {
      // Without a service worker the app still works while online; it just cannot be installed.
    });
    // The service worker tells open windows about each Web Push notice: look now, not at the next event.
    navigator.serviceWorker.addEventListener('message', (event: MessageEvent<unknown>) => {
      if (typeof event.data === 'object' && event.data !== null && (event.data as { type?: unknown }).type === 'countersign-push') nudgeAll('push');
    });
    navigator.serviceWorker.startMessages();
  }
  // Back from the background (a phone's screen turned on) or on a network again: a stream from
  // before may be dead without knowing it.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') nudgeAll('visible');
  });
  window.addEventListener('online', () => nudgeAll('online'));

  initRequests(() => accounts);
  accounts.push(...(await listAccounts()));
  showAccounts();
  renderRequests();
  for (const account of accounts) watch(account);
  initActivation((account) => {
    accounts.push(account);
    showAccounts();
    watch(account);
  });
  initEnrollment();
  setInterval(() => {
    tickCodes(accounts);
    tickRequests();
  }, 1000);
}

boot().catch((error: unknown) => {
  byId('fatal').hidden = false;
  byId('fatal').textContent = `The authenticator could not start: ${error instanceof Error ? error.message : String(error)}. This browser must allow IndexedDB and WebCrypto (a private window may not).`;
});
